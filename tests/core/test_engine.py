"""The loop end to end on real git repos, real processes and a replayed agent."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

from arsup import config
from arsup.core.loop import Engine
from arsup.core.events import Event, ExperimentFinished, ExperimentStarted, Notice, RunOutput, SessionEnded
from arsup.core.experiment import Status
from arsup.core.journal import Journal
from arsup.core.vcs import GitError
from tests.conftest import TOY_TRAIN, edit, git, make_engine, make_project, results_rows, write_script

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


def test_full_cycle_keep_discard_crash_invalid(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "raise LR toward the optimum", "edits": edit("LR = 0.0001", "LR = 0.003")},
        {"hypothesis": "widen the model", "edits": edit("WIDTH = 64", "WIDTH = 128")},
        {"hypothesis": "break it", "edits": edit("WIDTH = 64", "WIDTH = 64\nraise SystemExit(3)")},
        {"hypothesis": "touch the data", "edits": edit("DATA = 'fixed'", "DATA = 'x'", path="prepare.py")},
        {"hypothesis": "print a NaN", "edits": edit("print(\"---\")", "loss = float('nan')\nprint(\"---\")")},
    )
    engine, events = make_engine(project, script)
    engine.run()

    statuses = [(e.hypothesis, e.status) for e in engine.history]
    assert statuses == [
        ("baseline", Status.KEEP),
        ("raise LR toward the optimum", Status.KEEP),
        ("widen the model (proposed for 0001, re-applied on 0002)", Status.DISCARD),  # made while 0002 trained
        ("break it", Status.CRASH),
        ("touch the data", Status.INVALID),
        ("print a NaN", Status.CRASH),
    ]
    baseline, kept, discarded, crashed, invalid, nan = engine.history
    assert baseline.metric == pytest.approx(3.25) and kept.metric == pytest.approx(1.0 + (0.5229 - 0.5) ** 2, abs=1e-3)
    assert crashed.reason == "exit code 3" and "raise SystemExit" not in crashed.crash_tail
    assert "protected" in invalid.reason and invalid.commit == invalid.parent
    assert nan.reason == "val_bpb is nan"
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "the agent has no more ideas"

    # The branch holds the kept line; every trained attempt stays reachable.
    assert git(project, "rev-parse", "HEAD") == kept.commit
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "autoresearch/t1"
    assert "LR = 0.003" in (project / "train.py").read_text()
    for experiment in (baseline, kept, discarded, crashed, nan):
        assert git(project, "rev-parse", f"refs/arsup/t1/{experiment.id}") == experiment.commit
    assert git(project, "status", "--porcelain") == ""
    assert (project / "prepare.py").read_text() == "DATA = 'fixed'\n"

    # results.tsv: one row per trained experiment, written like autoresearch.
    rows = results_rows(project)
    assert [r[3] for r in rows] == ["keep", "keep", "discard", "crash", "crash"]
    assert rows[0] == [baseline.commit[:7], "3.250000", "2.0", "keep", "baseline"]
    assert rows[3][1:3] == ["0.000000", "0.0"]

    # The journal rebuilds the same experiments, diffs included.
    rebuilt = Journal(project).experiments("t1")
    assert [(e.id, e.status, e.metric) for e in rebuilt] == [(e.id, e.status, e.metric) for e in engine.history]
    assert "+LR = 0.003" in rebuilt[1].diff
    assert (project / ".arsup" / "runs" / kept.id / "diff.patch").read_text() == kept.diff
    assert "seed 0" in (project / ".arsup" / "runs" / kept.id / "run.log").read_text()


def test_maximize_goal(tmp_path: Path) -> None:
    train = "ACC = 0.5\nprint('---')\nprint(f'val_accuracy: {ACC:.6f}')\n"
    root = make_project(tmp_path / "repo", train=train, metric={"name": "val_accuracy", "goal": "maximize"})
    script = write_script(
        root,
        {"hypothesis": "better", "edits": edit("ACC = 0.5", "ACC = 0.7")},
        {"hypothesis": "worse", "edits": edit("ACC = 0.5", "ACC = 0.6")},
    )
    engine, _ = make_engine(root, script)
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP, Status.SKIPPED]
    assert engine.history[2].reason.startswith("proposed for 0001; no longer applies on 0002: train.py")
    assert engine.best().metric == pytest.approx(0.7)


def test_dirty_editable_file_refuses_to_start(project: Path) -> None:
    (project / "train.py").write_text("LR = 1\n")
    with pytest.raises(GitError, match="train.py"):
        make_engine(project, write_script(project))


def test_secrets_do_not_reach_the_training(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-ok")
    train = TOY_TRAIN + "import os\nprint('env', sorted(k for k in os.environ if 'KEY' in k))\n"
    root = make_project(project.parent / "secret", train=train, project={"pass_env": ["WANDB_API_KEY"]})
    engine, _ = make_engine(root, write_script(root), max_experiments=1)
    engine.run()
    log = Path(engine.history[0].runs[0].log_path).read_text()
    assert "env ['WANDB_API_KEY']" in log
    assert "sk-secret" not in (root / ".arsup" / "journal.jsonl").read_text()


def test_baseline_crash_ends_with_the_reason(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train="raise RuntimeError('boom')\n")
    engine, events = make_engine(root, write_script(root, {"hypothesis": "x", "edits": edit("a", "b")}))
    engine.run()
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert "baseline crashed (exit code 1)" in end.reason
    assert "RuntimeError: boom" in engine.history[0].crash_tail


def test_timeout_kills_a_hanging_run(tmp_path: Path) -> None:
    train = "import time\nprint('starting', flush=True)\ntime.sleep(60)\n"
    root = make_project(tmp_path / "repo", train=train, project={"time_budget": 0.5, "timeout": 1})
    engine, _ = make_engine(root, write_script(root))
    started = time.monotonic()
    engine.run()
    assert time.monotonic() - started < 10
    crashed = engine.history[0]
    assert crashed.status == Status.CRASH and crashed.reason.startswith("timed out")
    assert crashed.runs[0].timed_out


def test_stop_during_a_run_records_it_and_cleans_up(project: Path) -> None:
    slow = "import time\nprint('training', flush=True)\ntime.sleep(60)\n"
    script = write_script(project, {"hypothesis": "slow", "files": {"train.py": TOY_TRAIN + slow}})
    engine, events = make_engine(project, script)
    started = threading.Event()

    def watch(event: Event) -> None:
        if isinstance(event, RunOutput) and event.experiment_id == "0002" and "training" in event.lines:
            started.set()

    engine.subscribe(watch)
    thread = engine.start()
    assert started.wait(20)
    t0 = time.monotonic()
    engine.stop()
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - t0 < 5
    last = engine.history[-1]
    assert (last.status, last.reason) == (Status.CRASH, "stopped by user")
    assert [r[3] for r in results_rows(project)] == ["keep", "crash"]
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "rev-parse", "HEAD") == engine.history[0].commit
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stopped by user"
    assert not [p for p in psutil.Process().children(recursive=True) if "train.py" in " ".join(p.cmdline())]


def test_resume_continues_ids_without_a_second_baseline(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "one", "edits": edit("LR = 0.0001", "LR = 0.001")},
        {"hypothesis": "two", "edits": edit("WIDTH = 64", "WIDTH = 65")},
        {"hypothesis": "three", "edits": edit("WIDTH = 64", "WIDTH = 66")},
    )
    engine, _ = make_engine(project, script, max_experiments=2)
    engine.run()
    assert [e.id for e in engine.history] == ["0001", "0002"]
    engine, events = make_engine(project, script)
    engine.run()
    assert [e.hypothesis for e in engine.history] == ["baseline", "one", "two", "three"]
    assert [e.id for e in engine.history] == ["0001", "0002", "0003", "0004"]
    assert len(results_rows(project)) == 4


def test_recovers_an_experiment_left_running_by_a_killed_arsup(project: Path) -> None:
    script = write_script(project, {"hypothesis": "one", "edits": edit("LR = 0.0001", "LR = 0.001")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    # Play a kill -9 in the middle of experiment 0002: committed, journalled as running, never finished.
    journal = Journal(project)
    (project / "train.py").write_text(TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 99"))
    git(project, "commit", "-qam", "arsup 0002: half done")
    head = git(project, "rev-parse", "HEAD")
    ghost = engine.history[0].copy()
    ghost.id, ghost.commit, ghost.files, ghost.status, ghost.hypothesis = "0002", head, ["train.py"], Status.RUNNING, "x"
    journal.record(ghost)
    engine, events = make_engine(project, write_script(project))
    engine.close()
    assert git(project, "rev-parse", "HEAD") == engine.history[0].commit
    recovered = engine.history[-1]
    assert (recovered.id, recovered.status) == ("0002", Status.CRASH)
    assert "interrupted" in recovered.reason
    assert [r[3] for r in results_rows(project)] == ["keep", "crash"]
    assert git(project, "status", "--porcelain") == ""


def test_events_carry_copies(project: Path) -> None:
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    started = next(e for e in events if isinstance(e, ExperimentStarted))
    finished = next(e for e in events if isinstance(e, ExperimentFinished))
    assert started.experiment.status == Status.RUNNING and finished.experiment.status == Status.KEEP
    assert finished.best is not None and finished.best.id == finished.experiment.id


class _BrokenAgent:
    name = "broken"

    def propose(self, context: object) -> None:
        raise ValueError("[agent.space] NOPE is not a constant in the editable files")

    def observe(self, experiment: object) -> None:
        pass


def test_an_agent_that_fails_ends_the_session_with_its_reason(project: Path) -> None:
    engine = Engine(config.load(project), project, _BrokenAgent(), tag="t1")
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.prepare()
    engine.run()
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert end.reason == "the broken agent failed: [agent.space] NOPE is not a constant in the editable files"
    assert [e.status for e in engine.history] == [Status.KEEP]
    assert git(project, "status", "--porcelain") == ""


def test_a_repeated_idea_is_refused_with_a_pointer(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.0000001")},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
        {"hypothesis": "higher LR again", "edits": edit("LR = 0.0001", "LR = 1e-7")},
    )
    engine, _ = make_engine(project, script)
    engine.run()
    again = engine.history[-1]
    assert again.status == Status.INVALID
    assert again.reason.startswith("this repeats experiment 0002 (discard")
    assert "LR = 1e-07" in again.reason


def test_a_second_arsup_on_the_same_repo_is_refused(project: Path) -> None:
    from arsup.core.journal import RepoBusy

    first, _ = make_engine(project, write_script(project))
    with pytest.raises(RepoBusy, match=f"pid {os.getpid()}"):
        make_engine(project, write_script(project))
    first.close()
    second, _ = make_engine(project, write_script(project))
    second.close()


def test_a_project_in_a_subfolder_of_a_repository(tmp_path: Path) -> None:
    """Monorepos: the project folder is below the repository's top; every path stays project-relative."""
    top = make_project(tmp_path / "mono" / "research" / "lm").parents[1]
    shutil.rmtree(top / "research" / "lm" / ".git")  # one repository, at the top
    (top / "README.md").write_text("the monorepo\n")
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "monorepo")
    root = top / "research" / "lm"
    script = write_script(
        top,
        {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 128")},
    )
    engine, _ = make_engine(root, script)
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP, Status.DISCARD]
    assert engine.history[1].files == ["train.py"]
    assert "a/train.py" in engine.history[1].diff  # diffs are project-relative too
    assert "WIDTH = 64" in (root / "train.py").read_text() and "LR = 0.003" in (root / "train.py").read_text()
    assert git(top, "status", "--porcelain") == ""  # .arsup/ and results.tsv are excluded where they are
    assert (root / ".arsup" / "journal.jsonl").is_file() and (root / "results.tsv").is_file()


def test_a_persons_commit_on_the_run_branch_is_measured_before_it_counts(project: Path) -> None:
    engine, _ = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    (project / "train.py").write_text(TOY_TRAIN.replace("LR = 0.0001", "LR = 0.003"))
    git(project, "commit", "-qam", "my own LR")
    mine = git(project, "rev-parse", "HEAD")
    engine, events = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    measured = engine.history[-1]
    assert (measured.agent, measured.status, measured.commit) == ("person", Status.KEEP, mine)
    assert measured.hypothesis == "a person's commit: my own LR" and len(measured.runs) == 5
    assert measured.metric == pytest.approx(1.0 + (0.5229 - 0.5) ** 2, abs=1e-3)
    assert engine.best().id == measured.id
    assert any("outside arsup" in getattr(e, "text", "") for e in events)
    assert git(project, "rev-parse", "HEAD") == mine


def test_a_new_tag_says_whose_results_it_replaces(project: Path) -> None:
    engine, _ = make_engine(project, write_script(project), tag="nov1", max_experiments=1)
    engine.run()
    engine, events = make_engine(project, write_script(project), tag="nov2", max_experiments=1)
    engine.close()
    said = [e.text for e in events if isinstance(e, Notice)]
    assert any("held the rows of tag nov1" in text and "arsup rebuild --tag nov1" in text for text in said)
    assert results_rows(project) == []


def test_a_note_over_the_cap_is_refused_before_anything_is_recorded(project: Path) -> None:
    from arsup.core.controls import NOTE_MAX_CHARS

    engine, events = make_engine(project, write_script(project))
    with pytest.raises(ValueError, match=f"a note is at most {NOTE_MAX_CHARS:,} characters"):
        engine.add_note("x" * 100_000)
    assert engine.notes == [] and not any(isinstance(e, Notice) and "note" in e.text for e in events)
    engine.add_note("tip" + " " * NOTE_MAX_CHARS + "top")  # what counts is what the agent reads: spaces collapsed
    engine.add_note("z" * NOTE_MAX_CHARS)
    assert engine.notes == ["tip top", "z" * NOTE_MAX_CHARS]
    engine.close()
