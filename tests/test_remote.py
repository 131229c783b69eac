"""Every screen action as a command, against a real headless loop in another process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TOY_TRAIN, git, write_script
from tests.faults.conftest import assert_invariants, fingerprint

ARSUP = [sys.executable, "-m", "arsup"]
SLOW = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"


def arsup(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ARSUP, *args], cwd=root, capture_output=True, text=True, timeout=60)


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def journal(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / ".arsup" / "journal.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_headless_loop_is_steered_from_the_command_line(project: Path, tmp_path: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(
        project,
        {"hypothesis": "slow", "files": {"train.py": SLOW}},
        {"hypothesis": "slow and wide", "files": {"train.py": SLOW.replace("WIDTH = 64", "WIDTH = 65")}},
    )
    out = tmp_path / "loop.out"
    with open(out, "w") as sink:
        loop = subprocess.Popen(
            [*ARSUP, "run", "--headless", "--policy", "runs", "--agent", f"script:{script}", "--tag", "cli"],
            cwd=project, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_for(lambda: "arsup: waiting: train 0001 (the baseline)?" in out.read_text(), "the first question")
        status = arsup(project, "status")
        assert status.returncode == 0, status.stdout
        assert f"arsup: loop pid {loop.pid} on autoresearch/cli" in status.stdout
        assert "waiting: train 0001 (the baseline)? answer with `arsup approve` or `arsup skip`" in status.stdout

        approved = arsup(project, "approve")
        assert (approved.returncode, approved.stdout.strip()) == (0, "arsup: approved: train 0001 (the baseline)")
        wait_for(lambda: "waiting: train 0002 ('slow')?" in out.read_text(), "the second question")
        assert arsup(project, "note", "try", "smaller", "models").returncode == 0
        assert arsup(project, "approve").returncode == 0
        log = project / ".arsup" / "runs" / "0002" / "run.log"
        wait_for(lambda: log.exists() and "training" in log.read_text(), "experiment 0002 to train")
        assert arsup(project, "approve").returncode == 1  # nothing waits now
        killed = arsup(project, "kill")
        assert killed.returncode == 0, killed.stdout
        wait_for(lambda: "0002  crash" in out.read_text(), "the kill to be recorded")
        wait_for(lambda: "waiting: train 0003" in out.read_text(), "the third question")
        assert arsup(project, "policy", "auto").returncode == 0  # the waiting run goes ahead unasked
        log = project / ".arsup" / "runs" / "0003" / "run.log"
        wait_for(lambda: log.exists() and "training" in log.read_text(), "experiment 0003 to train")
        assert arsup(project, "stop").returncode == 0
        assert loop.wait(30) == 0
    finally:
        if loop.poll() is None:
            loop.kill()
    text = out.read_text()
    assert "[killed by user]" in text and "arsup: stopped by user" in text
    notes = [e["text"] for e in journal(project) if e["event"] == "note"]
    assert notes == ["try smaller models"]
    assert [e["policy"] for e in journal(project) if e["event"] == "policy"] == ["auto"]
    gone = arsup(project, "status")
    assert gone.returncode == 3 and "no arsup loop runs in" in gone.stdout
    assert_invariants(project, protected)
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "autoresearch/cli"


def test_status_names_what_each_slot_trains() -> None:
    from arsup.core.events import ExperimentStarted, SessionStarted
    from arsup.core.experiment import Experiment
    from arsup.remote import status_lines
    from arsup.view import SessionView

    view = SessionView()
    view.apply(SessionStarted("t", "autoresearch/t", "h", 0, project="/p"))
    view.apply(ExperimentStarted(Experiment("0004", "t", "c", "wider  model", "llm"), "gpu1"))
    view.apply(ExperimentStarted(Experiment("0005", "t", "c", "lower LR", "llm"), "gpu0"))
    lines = status_lines(view, 42)
    assert [line for line in lines if line.startswith("running")] == [
        "running [gpu0]: 0005 lower LR", "running [gpu1]: 0004 wider model",
    ]


def test_status_says_a_pending_pause_a_stop_after_the_run_and_the_notes_as_replayed_to_a_late_client() -> None:
    """What the loop was asked and has not done yet: a late `arsup status` sees it through the replay too."""
    from arsup.core.events import (
        NoteAdded, Paused, Proposing, SessionStarted, StateChanged, StopAfterRunAsked,
    )
    from arsup.core.service import Replay
    from arsup.remote import status_lines
    from arsup.view import SessionView

    replay = Replay()
    for event in (
        SessionStarted("t", "autoresearch/t", "h", 0, project="/p"),
        NoteAdded("an old note", read=True),
        Proposing("0002"),
        NoteAdded("try a smaller model"),  # after the proposal's prompt: it waits for the next one
        StateChanged("training", "0002"),
        Paused(),
        StopAfterRunAsked(),
    ):
        replay.add(event)
    view = SessionView()
    for event in replay.events():
        view.apply(event)
    lines = status_lines(view, 42)
    assert "pause asked: the loop pauses after the current step" in lines
    assert "stop asked: the loop ends after the experiments under way" in lines
    assert "note: an old note" in lines
    assert "note: try a smaller model (waiting: the agent reads it from its next proposal)" in lines
    assert view.waiting_notes == ["try a smaller model"]
    view.apply(Proposing("0003"))
    assert view.waiting_notes == [] and "waiting" not in " ".join(status_lines(view, 42))
