from __future__ import annotations

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.headless import experiment_line


def _experiment(**fields: object) -> Experiment:
    base = dict(id="0007", tag="t", parent="p", hypothesis="LR 0.0005 -> 0.003:\tTPE\npick", agent="tuner")
    return Experiment(**{**base, **fields})


def test_a_confirmed_keep_shows_its_evidence() -> None:
    runs = [RunResult(seed=i, log_path="") for i in range(3)]
    kept = _experiment(status=Status.KEEP, metric=0.981234, p_value=0.0123, gain_sigma=4.21, runs=runs)
    line = experiment_line(kept, kept, "val_bpb")
    assert line == (
        "0007  keep     val_bpb   0.981234  best   0.981234  LR 0.0005 -> 0.003: TPE pick  (p 0.0123, +4.2 sigma, 3 runs)"
    )


def test_a_keep_shows_its_holdout_beside_the_metric() -> None:
    kept = _experiment(status=Status.KEEP, metric=0.981234, holdout=0.990001)
    assert experiment_line(kept, kept, "val_bpb").endswith("TPE pick  holdout 0.990001")


def test_a_crash_shows_no_metric_and_its_reason() -> None:
    crashed = _experiment(status=Status.CRASH, metric=None, reason="exit code 1\nTraceback")
    assert experiment_line(crashed, None, "val_bpb").endswith("-  best          -  LR 0.0005 -> 0.003: TPE pick  [exit code 1 Traceback]")


def test_a_discard_that_had_a_better_mean_says_why() -> None:
    # Demo 0006: a 25% gain discarded at p 0.0514, and the line said only "discard".
    reason = ("mean gain +0.400000 (5.0 sigma) over 3 paired seeds, p = 0.0514: "
              "not significant: p 0.051 > 0.05 after 3 runs")
    dropped = _experiment(status=Status.DISCARD, metric=1.21, p_value=0.0514, gain_sigma=5.0, reason=reason)
    assert experiment_line(dropped, None, "val_bpb").endswith("  [not significant: p 0.051 > 0.05 after 3 runs]")


def test_a_time_capped_run_is_flagged_on_the_line() -> None:
    runs = [RunResult(seed=0, log_path="", steps=181, capped=181 / 341)]
    baseline = _experiment(status=Status.KEEP, metric=3.912, runs=runs)
    assert experiment_line(baseline, baseline, "val_bpb").endswith(
        "  [time-capped at 53% of the steps: compare with care]"
    )


def test_a_night_of_several_agents_says_which_made_each_experiment() -> None:
    import io

    from arsup.core.events import ExperimentFinished, SessionStarted
    from arsup.headless import Printer

    kept = _experiment(status=Status.KEEP, metric=0.98, agent="codex")
    for agents, shown in (("claude-code+codex", "(codex) LR 0.0005 -> 0.003: TPE pick"),
                          ("codex", "best   0.980000  LR 0.0005 -> 0.003: TPE pick")):
        out = io.StringIO()
        printer = Printer(out)
        printer(SessionStarted("t", "autoresearch/t", "c0ffee0", 0, agent=agents))
        printer(ExperimentFinished(kept, kept))
        assert shown in out.getvalue().splitlines()[-1]
