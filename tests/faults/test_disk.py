"""A full disk: arsup's problem, never the run's. The project lives on a 30 MB tmpfs that fills.

A run that printed its metric is not a crash for want of disk; the loop ends
with one message naming the disk, what filled it and the fix (exit 2, a
state-folder problem); the experiment that was training is measured again
after the restart; and a run's own flood never fills the disk.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from arsup.core.events import ExperimentStarted, Notice, SessionEnded
from arsup.core.experiment import Status
from tests.conftest import edit, fill, git, make_engine, make_project, results_rows, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records, leftover_processes

pytestmark = pytest.mark.slow  # real loops on a small tmpfs they fill

# Waits, when the test asks for it, until the disk is full; then prints its metric and exits 0.
WAITS_FOR_A_FULL_DISK = textwrap.dedent(
    """\
    import math
    import os
    import time

    LR = 0.0001
    WAIT = 0

    if WAIT and (os.path.exists("fill-me") or os.environ.get("FILL_ME")):
        print("training", flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = os.statvfs(".")
            if stats.f_bavail * stats.f_frsize < 64 * 1024:
                break
            time.sleep(0.05)
    print("---")
    print(f"val_bpb: {(math.log10(LR) + 2.5) ** 2 + 1.0:.6f}")
    """
)

# Prints its metric, then (when the test asks for it) fills the disk with a checkpoint git ignores.
FILLS_THE_DISK = textwrap.dedent(
    """\
    import math
    import os
    import time

    LR = 0.0001
    WAIT = 0

    print("---")
    print(f"val_bpb: {(math.log10(LR) + 2.5) ** 2 + 1.0:.6f}", flush=True)
    if WAIT and os.path.exists("fill-me"):
        time.sleep(0.5)  # the metric is in the log
        try:
            with open("ckpt.bin", "ab", buffering=0) as checkpoint:
                while True:
                    checkpoint.write(bytes(1 << 16))
        except OSError:
            pass
    """
)

MORE_LR_AND_WAIT = edit("LR = 0.0001", "LR = 0.003") + edit("WAIT = 0", "WAIT = 1")


def _project(disk: Path, train: str) -> Path:
    """A project on the small disk; the test asks a run to wait or fill with `fill-me`, a file git ignores
    (inside the project: a sandboxed run sees nothing beside it)."""
    root = make_project(disk / "repo", train=train)
    (root / ".gitignore").write_text("fill-me\nckpt.bin\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore what the tests and the runs write")
    return root


def _arsup(root: Path, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "t1", *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def _fill_once_training(disk: Path, log: Path) -> threading.Thread:
    """Fill the disk as soon as the run says it trains (another program's file, beside the project)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.is_file() and b"training" in log.read_bytes():
                fill(disk)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_disk_that_fills_during_a_run_ends_the_loop_and_the_run_is_measured_again(small_disk: Path) -> None:
    root = _project(small_disk, WAITS_FOR_A_FULL_DISK)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "higher LR", "edits": MORE_LR_AND_WAIT})
    (root / "fill-me").write_text("")
    filling = _fill_once_training(small_disk, root / ".arsup" / "runs" / "0002" / "run.log")

    ended = _arsup(root, script)
    filling.join()
    said = ended.stdout + ended.stderr
    assert ended.returncode == 2, said
    assert "Traceback" not in said and "GitCommandError" not in said and "OSError" not in said
    last = [line for line in said.splitlines() if line.startswith("arsup: error:")]
    assert len(last) == 1, said
    assert f"the disk at {small_disk} is full" in last[0]  # the mount point
    assert ".arsup/runs holds " in last[0] and "0002/run.log" in last[0]  # what arsup's runs take of it
    assert "free some space" in last[0] and "experiment 0002 is measured again" in last[0]
    assert "no val_bpb" not in said and "crash" not in said

    journal = (root / ".arsup" / "journal.jsonl").read_bytes()
    still = _arsup(root, script)  # started again on a disk still full: the same message, nothing touched
    assert still.returncode == 2 and "Traceback" not in still.stderr, still.stdout + still.stderr
    assert f"the disk at {small_disk} is full" in still.stderr and "experiment 0002 is measured again" in still.stderr
    assert (root / ".arsup" / "journal.jsonl").read_bytes() == journal

    (small_disk / "filler.bin").unlink()  # the person frees the disk, and starts again
    (root / "fill-me").unlink()
    again = _arsup(root, script, "--max-experiments", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "measuring it first" not in again.stdout  # arsup's own commit is not a person's
    rows = results_rows(root)
    assert [(row[3], row[4]) for row in rows] == [("keep", "baseline"), ("keep", "higher LR")]
    assert len({row[0] for row in rows}) == 2  # one row per commit
    records = [r["experiment"] for r in journal_records(root) if r["event"] == "experiment"]
    statuses = {record["id"]: record["status"] for record in records}
    assert statuses == {"0001": "keep", "0002": "keep"}
    assert git(root, "rev-parse", "HEAD") == git(root, "rev-parse", "refs/arsup/t1/0002")
    assert_invariants(root, protected)


def test_a_run_that_floods_its_log_never_fills_the_disk(small_disk: Path) -> None:
    flood = "import sys\nfor i in range(1_000_000):\n    sys.stdout.write(f'step {i:07d} of a flood of 60 MB\\n')\n"
    root = make_project(small_disk / "repo", train=flood + WAITS_FOR_A_FULL_DISK)
    protected = fingerprint(root, ["prepare.py"])
    engine, events = make_engine(root, write_script(root), max_experiments=1)
    engine.run()
    baseline = engine.history[-1]
    assert baseline.status == Status.KEEP and baseline.metric == 3.25  # the run went on, and its metric counts
    log = root / ".arsup" / "runs" / "0001" / "run.log"
    notices = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any(str(log) in text and "free" in text for text in notices), notices
    assert re.search(rb"\[arsup: log cut here; \d+ bytes dropped; the run went on\]\n", log.read_bytes())
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert ended == [SessionEnded("reached the budget of 1 experiment")]
    assert_invariants(root, protected)


def test_a_disk_full_when_arsup_records_the_run_is_one_message(small_disk: Path) -> None:
    """The run prints its metric, then fills the disk: the journal, results.tsv and git have no room left."""
    root = _project(small_disk, FILLS_THE_DISK)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "higher LR", "edits": MORE_LR_AND_WAIT})
    (root / "fill-me").write_text("")
    engine, events = make_engine(root, script)
    engine.run()
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert len(ended) == 1 and ended[0].error and ended[0].state_folder, ended
    assert f"the disk at {small_disk} is full" in ended[0].reason and "ckpt.bin" not in ended[0].reason
    assert "free some space" in ended[0].reason

    (root / "ckpt.bin").unlink()
    (root / "fill-me").unlink()
    engine, events = make_engine(root, script, max_experiments=1)
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP]
    assert all(e.agent != "person" for e in engine.history)
    assert [row[3] for row in results_rows(root)] == ["keep", "keep"]
    assert_invariants(root, protected)


def test_a_disk_that_fills_as_a_run_starts_is_the_disk_s_problem(small_disk: Path) -> None:
    """Filled right after the run is recorded as started, before arsup journals its process: whichever write
    fails first (the journal's, the log's) the loop ends with the disk's message and nothing of the run is left."""
    root = _project(small_disk, WAITS_FOR_A_FULL_DISK)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})

    def fill_as_it_starts(event: object) -> None:
        if isinstance(event, ExperimentStarted) and event.experiment.id == "0002":
            fill(small_disk)

    engine, events = make_engine(root, script)
    engine.subscribe(fill_as_it_starts)
    engine.run()
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert len(ended) == 1 and ended[0].state_folder and f"the disk at {small_disk} is full" in ended[0].reason
    assert "experiment 0002 is measured again" in ended[0].reason

    (small_disk / "filler.bin").unlink()
    engine, events = make_engine(root, script, max_experiments=1)
    engine.run()
    assert [(e.id, e.status) for e in engine.history] == [("0001", Status.KEEP), ("0002", Status.KEEP)]
    assert_invariants(root, protected)


def test_a_journal_that_cannot_be_written_as_a_run_starts_ends_the_loop_and_the_run(small_disk: Path) -> None:
    """The journal's own write fails (here a folder took its place) after the run started: one message naming
    the journal, the state folder's exit code, and the run ended with the loop, not left behind."""
    root = _project(small_disk, WAITS_FOR_A_FULL_DISK)
    protected = fingerprint(root, ["prepare.py"])
    journal = root / ".arsup" / "journal.jsonl"
    aside = small_disk / "journal.jsonl"
    script = write_script(root, {"hypothesis": "higher LR", "edits": MORE_LR_AND_WAIT})
    (root / "fill-me").write_text("")  # the run waits 20 s for a disk that does not fill

    def break_the_journal(event: object) -> None:
        if isinstance(event, ExperimentStarted) and event.experiment.id == "0002":
            journal.rename(aside)
            journal.mkdir()

    engine, events = make_engine(root, script)
    engine.subscribe(break_the_journal)
    engine.run()
    assert leftover_processes(root) == []  # the run ended with the loop
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert len(ended) == 1 and ended[0].error and ended[0].state_folder, ended
    assert ended[0].reason.startswith(f"cannot use {journal}: Is a directory")

    journal.rmdir()
    aside.rename(journal)
    (root / "fill-me").unlink()
    engine, events = make_engine(root, script, max_experiments=1)
    engine.run()
    assert [(e.id, e.status) for e in engine.history][:1] == [("0001", Status.KEEP)]
    assert_invariants(root, protected)


def test_with_slots_a_full_disk_ends_every_run_and_one_is_measured_again(small_disk: Path) -> None:
    root = _project(small_disk, WAITS_FOR_A_FULL_DISK)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "higher LR", "edits": MORE_LR_AND_WAIT},
        {"hypothesis": "lower LR", "edits": edit("LR = 0.0001", "LR = 0.001") + edit("WAIT = 0", "WAIT = 1")},
    )
    filling = _fill_once_training(small_disk, root / ".arsup" / "runs" / "0002" / "run.log")
    two = {"slots": {"cpu": 2}, "acceptance": {"mode": "greedy"}}
    engine, events = make_engine(root, script, project={"env": {"FILL_ME": "1"}}, **two)  # worktrees: no fill-me
    engine.run()
    filling.join()
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert len(ended) == 1 and ended[0].state_folder, ended
    assert "experiments 0002, 0003 are measured again" in ended[0].reason

    (small_disk / "filler.bin").unlink()
    engine, events = make_engine(root, script, max_experiments=1, **two)
    engine.run()
    finished = {e.id: (e.status, e.reason) for e in engine.history}
    assert finished["0002"][0] == Status.KEEP
    assert finished["0003"] == (Status.SKIPPED, "not measured (a full disk)")
    assert all(status != Status.CRASH for status, _ in finished.values())
    assert_invariants(root, protected)
