"""The figures of a night: from a real loop's journal, and from hand-made records for the edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup import config
from arsup.core.checks import ablate, verify
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.journal import Journal
from arsup.core.summary import summarize
from tests.conftest import TOY_TRAIN, make_engine, make_project, write_script
from tests.core.test_checks import night  # noqa: F401  (fixture)


@pytest.mark.slow
def test_a_real_night_with_its_checks(night: Path) -> None:  # noqa: F811
    verify(config.load(night), night, "night", None, seeds=2)
    ablate(config.load(night), night, "night", seeds=2)
    ledger = Journal(night)
    summary = summarize("night", ledger.experiments("night"), "val_bpb", "minimize", ledger.events())
    assert (summary.experiments, summary.trained, summary.kept, summary.crashed) == (3, 2, 2, 0)
    assert summary.keep_rate == 1.0 and summary.crash_rate == 0.0
    assert summary.baseline == pytest.approx(1.0) and summary.best == pytest.approx(0.85)
    assert summary.gain == pytest.approx(0.15) and summary.gain_pct == pytest.approx(15.0)
    assert summary.noise_sigma == pytest.approx(0.02) and summary.noise_runs == 9
    assert summary.gpu_hours is not None and 0 < summary.gpu_hours < summary.wall_hours
    baseline, a, b = summary.kept_changes
    assert baseline.gain is None and a.gain == pytest.approx(0.1) and b.gain == pytest.approx(0.05)
    assert a.gain_pct == pytest.approx(10.0) and b.seeds == 3 and b.p_value is not None
    assert "-A = 0\n+A = 1" in a.diff and "+B = 1" in b.diff
    assert b.verify["values"] and b.verify["mean"] == pytest.approx(0.86)  # seeds 0 and 1
    assert a.verify is None
    assert a.ablation["contribution"] == pytest.approx(0.1) and b.ablation["contribution"] == pytest.approx(0.05)
    assert [p.best for p in summary.points] == pytest.approx([1.0, 0.9, 0.85])
    assert summary.source == "arsup" and summary.cost_usd == 0.0 and summary.cost_per_improvement == 0.0


@pytest.mark.slow
def test_a_night_on_cpu_slots_counts_slot_hours_and_one_on_a_gpu_counts_gpu_hours(tmp_path: Path) -> None:
    """The session record says which GPUs the slots had; the report's hours are named after it."""
    from arsup.report.markdown import headline, night_markdown

    root = make_project(tmp_path / "repo")
    script = write_script(root, {"hypothesis": "raise LR", "files": {"train.py": TOY_TRAIN.replace("0.0001", "0.001")}})
    for tag, slots in (("cpu", {"cpu": 1}), ("gpu", {"gpus": ["0"]})):  # "0": a GPU by index, even on this box
        engine, _ = make_engine(root, script, tag=tag, max_experiments=1, slots=slots)
        engine.run()
    ledger = Journal(root)
    sessions = {e["tag"]: e for e in ledger.events() if e["event"] == "session"}
    assert sessions["cpu"]["gpus"] == [] and sessions["gpu"]["gpus"] == ["0"]
    cpu, gpu = (summarize(tag, ledger.experiments(tag), "val_bpb", "minimize", ledger.events()) for tag in sessions)
    assert cpu.gpus_used is False and gpu.gpus_used is True
    assert cpu.gpu_hours is not None and gpu.gpu_hours is not None  # the same key for scripts, whatever it counts
    assert "slot-hours" in headline(cpu) and "GPU" not in headline(cpu) and "GPU-hours" in headline(gpu)
    on_cpu = night_markdown(cpu, "c.png")
    assert "| **slot-hours** |" in on_cpu and "; the runs had no GPU) |" in on_cpu
    assert "| **GPU-hours** |" in night_markdown(gpu, "c.png") and "slot-hours" not in night_markdown(gpu, "c.png")


def test_a_journal_that_does_not_say_which_gpus_counts_slot_hours_and_says_what_a_slot_is() -> None:
    from arsup.report.markdown import night_markdown

    experiments = [_record("1", Status.KEEP, 0.5, is_baseline=True, runs=[RunResult(0, "", wall_s=3600.0)])]
    older = [{"event": "session", "tag": "t", "branch": "autoresearch/t", "head": "abc", "agent": "llm"}]
    assert summarize("t", experiments, "acc", "maximize").gpus_used is None  # an imported night: no session
    summary = summarize("t", experiments, "acc", "maximize", older)  # an arsup before the record said
    assert summary.gpus_used is None and summary.gpu_hours == pytest.approx(1.0)
    report = night_markdown(summary, "c.png")
    assert "| **slot-hours** | 1.00 h (training time summed over runs, seeds included; one slot is one GPU on a " \
           "GPU box, and this journal does not say whether the runs had one) |" in report
    resumed = [*older, {**older[0], "gpus": []}, {**older[0], "gpus": ["GPU-aaa"]}, {**older[0], "tag": "u"}]
    assert summarize("t", experiments, "acc", "maximize", resumed).gpus_used is True  # some session had a GPU
    assert summarize("t", experiments, "acc", "maximize", resumed[:2]).gpus_used is None  # one session unknown
    assert summarize("t", experiments, "acc", "maximize", resumed[1:2]).gpus_used is False


def _record(id_: str, status: str, metric: float | None, **fields) -> Experiment:
    fields.setdefault("agent", "llm")
    return Experiment(id=id_, tag="t", parent="p", hypothesis=f"idea {id_}", commit=id_ * 7,
                      status=status, metric=metric, **fields)


def test_rates_costs_and_the_running_best_when_maximizing() -> None:
    usage = {"usage": {"calls": 2, "cost_usd": 0.5}}
    experiments = [
        _record("1", Status.KEEP, 0.50, is_baseline=True, started_at=100.0, finished_at=160.0,
                runs=[RunResult(0, "", wall_s=60.0)]),
        _record("2", Status.DISCARD, 0.40, agent_data=usage, runs=[RunResult(0, "", wall_s=60.0)], finished_at=300),
        _record("3", Status.CRASH, None, agent_data=usage, runs=[RunResult(0, "", wall_s=30.0)], finished_at=400),
        _record("4", Status.INVALID, None, agent_data=usage),
        _record("5", Status.KEEP, 0.60, agent_data=usage, runs=[RunResult(0, "", wall_s=60.0)], finished_at=3700),
        _record("6", Status.SKIPPED, None),
    ]
    summary = summarize("t", experiments, "acc", "maximize")
    assert (summary.trained, summary.kept, summary.discarded, summary.crashed) == (3, 1, 1, 1)
    assert (summary.invalid, summary.skipped) == (1, 1)
    assert summary.keep_rate == pytest.approx(1 / 3) and summary.crash_rate == pytest.approx(1 / 3)
    assert summary.gain == pytest.approx(0.1) and summary.gain_pct == pytest.approx(20.0)
    assert summary.best_id == "5" and summary.noise_sigma is None
    assert summary.cost_usd == 2.0 and summary.llm_calls == 8 and summary.cost_per_improvement == 2.0
    assert summary.gpu_hours == pytest.approx(210 / 3600) and summary.wall_hours == pytest.approx(1.0)
    assert [(p.id, p.metric, p.best) for p in summary.points] == [
        ("1", 0.5, 0.5), ("2", 0.4, 0.5), ("3", None, 0.5), ("5", 0.6, 0.6),
    ]
    assert summary.points[-1].hours == pytest.approx(1.0)


def test_a_night_without_a_result() -> None:
    summary = summarize("t", [_record("1", Status.CRASH, None, is_baseline=True)], "val_bpb", "minimize")
    assert summary.best is None and summary.gain is None and summary.keep_rate is None
    assert summary.kept_changes == [] and summary.wall_hours is None and summary.gpu_hours is None


def test_a_baseline_that_crashed_before_it_was_measured_is_said_apart_from_the_nights_crashes() -> None:
    """The wrong `[metric] name` crashed the first baseline; set right, the baseline ran again. The night's
    trials (and its crash rate) are those after the baseline; the failed attempt is counted on its own."""
    from arsup.report.markdown import headline, night_markdown

    experiments = [
        _record("1", Status.CRASH, None, is_baseline=True, reason="no `val_bpb:` line; the log has `val_loss:`"),
        _record("2", Status.KEEP, 3.25, is_baseline=True),
        _record("3", Status.DISCARD, 5.4),
        _record("4", Status.CRASH, None),
    ]
    summary = summarize("t", experiments, "val_loss", "minimize")
    assert (summary.trained, summary.crashed, summary.baseline_crashes) == (2, 1, ["1"])
    assert summary.crash_rate == pytest.approx(0.5)  # one of the two trials, not two crashes of two
    assert headline(summary).endswith("4 experiments, 0 kept, 1 crashed, and 1 baseline attempt that crashed")
    report = night_markdown(summary, "c.png")
    assert "1 crashed; 0 invalid, 0 skipped; the baseline crashed 1 time before it was measured (1)" in report


def test_two_agents_on_one_night_side_by_side_in_the_summary_and_the_report() -> None:
    from arsup.report.markdown import night_markdown

    def by(agent: str, cost: float) -> dict:
        return {"agent": agent, "agent_data": {"usage": {"calls": 1, "cost_usd": cost}}}

    experiments = [
        _record("0000", Status.KEEP, 1.00, is_baseline=True, agent="arsup"),
        _record("0001", Status.KEEP, 0.90, **by("claude-code", 0.40)),
        _record("0002", Status.DISCARD, 0.95, **by("codex", 0.10)),
        _record("0003", Status.KEEP, 0.85, **by("claude-code", 0.20)),
        _record("0004", Status.KEEP, 0.84, **by("codex", 0.05)),
        _record("0005", Status.INVALID, None, **by("codex", 0.05)),
        _record("0006", Status.KEEP, 0.80, agent="person", is_baseline=True),  # a person's commit: nobody's
    ]
    summary = summarize("t", experiments, "val_bpb", "minimize")
    claude, codex = summary.agents
    assert (claude.agent, claude.proposed, claude.trained, claude.kept) == ("claude-code", 2, 2, 2)
    assert claude.gain == pytest.approx(0.15) and claude.cost_per_keep == pytest.approx(0.30)
    assert (codex.agent, codex.proposed, codex.trained, codex.kept) == ("codex", 3, 2, 1)
    assert codex.gain == pytest.approx(0.01) and codex.cost_usd == pytest.approx(0.20)
    report = night_markdown(summary, "chart.png")
    assert "## Agents" in report
    assert "| agent | proposed | trained | kept | improvement | cost | per keep |" in report
    assert "| claude-code | 2 | 2 | 2 | 0.150000 | $0.60 | $0.30 |" in report
    assert "| codex | 3 | 2 | 1 | 0.010000 | $0.20 | $0.20 |" in report


def test_one_agent_has_no_comparison_table() -> None:
    from arsup.report.markdown import night_markdown

    experiments = [_record("0000", Status.KEEP, 1.0, is_baseline=True, agent="arsup"),
                   _record("0001", Status.KEEP, 0.9)]
    summary = summarize("t", experiments, "val_bpb", "minimize")
    assert [a.agent for a in summary.agents] == ["llm"] and "## Agents" not in night_markdown(summary, "c.png")
