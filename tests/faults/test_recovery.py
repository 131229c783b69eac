"""A restart after arsup was killed at the worst moment: the branch, the journal and the files agree again."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.experiment import Status
from arsup.core.journal import Journal
from arsup.core.vcs import GitError
from tests.conftest import TOY_TRAIN, edit, git, make_engine, make_project, needs_bwrap, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories


def _killed_after_the_commit(project: Path) -> tuple[str, str]:
    """Play a kill -9 during a post-commit hook: the commit exists, the journal says 'proposed'."""
    engine, _ = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    parent = git(project, "rev-parse", "HEAD")
    ghost = engine.history[0].copy()
    ghost.id, ghost.parent, ghost.commit, ghost.files = "0002", parent, parent, ["train.py"]
    ghost.status, ghost.hypothesis, ghost.is_baseline = Status.PROPOSED, "wider", False
    Journal(project).record(ghost)
    (project / "train.py").write_text(TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 99"))
    git(project, "commit", "-qam", "arsup 0002: wider")
    return parent, git(project, "rev-parse", "HEAD")


def test_a_kill_just_after_the_commit_resets_the_branch_to_the_parent(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    parent, unmeasured = _killed_after_the_commit(project)
    engine, _ = make_engine(project, write_script(project))
    engine.close()
    assert git(project, "rev-parse", "HEAD") == parent
    recovered = engine.history[-1]
    assert (recovered.id, recovered.status) == ("0002", Status.INVALID)
    assert git(project, "rev-parse", "refs/arsup/t1/0002") == unmeasured  # the attempt stays reachable
    assert "WIDTH = 64" in (project / "train.py").read_text()
    assert_invariants(project, protected)


def test_recovery_refuses_to_touch_a_persons_uncommitted_edit(project: Path) -> None:
    parent, _ = _killed_after_the_commit(project)
    mine = TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 7  # my own idea")
    (project / "train.py").write_text(mine)
    with pytest.raises(GitError, match="train.py"):
        make_engine(project, write_script(project))
    assert (project / "train.py").read_text() == mine


def test_a_write_cut_short_by_a_kill_is_recognised_as_arsups_and_undone(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "x", "edits": edit("WIDTH = 64", "WIDTH = 65")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    # The journal says 'proposed' with the bytes arsup meant to write; the file holds exactly them.
    import hashlib

    planned = TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 65").encode()
    ghost = engine.history[0].copy()
    ghost.id, ghost.files, ghost.status, ghost.is_baseline = "0002", ["train.py"], Status.PROPOSED, False
    ghost.written = {"train.py": hashlib.sha256(planned).hexdigest()}
    Journal(project).record(ghost)
    (project / "train.py").write_bytes(planned)
    engine, _ = make_engine(project, script)
    engine.close()
    assert engine.history[-1].status == Status.INVALID
    assert (project / "train.py").read_text() == TOY_TRAIN
    assert_invariants(project, protected)


def test_a_run_that_outlived_a_killed_arsup_is_ended_on_restart(project: Path) -> None:
    """Where the reaper could not take it down (no PR_SET_PDEATHSIG, say), the journal's pid can."""
    import subprocess

    import psutil

    protected = fingerprint(project, ["prepare.py"])
    engine, _ = make_engine(project, write_script(project), max_experiments=1)
    engine.run()
    survivor = subprocess.Popen(["sleep", "300"], cwd=project, start_new_session=True)
    ghost = engine.history[0].copy()
    ghost.id, ghost.status, ghost.is_baseline, ghost.hypothesis = "0002", Status.RUNNING, False, "x"
    journal = Journal(project)
    journal.record(ghost)
    journal.append(
        "run_started", tag="t1", experiment="0002", seed=0, pid=survivor.pid, pgid=survivor.pid,
        create_time=psutil.Process(survivor.pid).create_time(),
    )
    engine, events = make_engine(project, write_script(project))
    engine.close()
    assert survivor.wait(timeout=5) is not None
    assert any("left running by an arsup that was killed" in getattr(e, "text", "") for e in events)
    assert engine.history[-1].status == Status.CRASH
    assert_invariants(project, protected)


def test_a_proposal_queued_when_arsup_is_killed_is_skipped_after_the_restart_with_its_cost(project: Path) -> None:
    """The next proposal is made (and paid for) while a run trains; a kill -9 then must not lose it."""
    import json
    import subprocess
    import sys
    import time

    from tests.faults.test_signals import SILENT, final_statuses

    protected = fingerprint(project, ["prepare.py"])
    script = write_script(
        project,
        {"hypothesis": "slow", "files": {"train.py": SILENT}, "usage": {"calls": 1, "cost_usd": 0.25}},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65"), "usage": {"calls": 1, "cost_usd": 0.5}},
    )
    command = [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "q9"]
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = project / ".arsup" / "runs" / "0002" / "run.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "training" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    deadline = time.monotonic() + 10  # the next proposal is made while 0002 trains (queue = 1)
    while "0003" not in final_statuses(project) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL: nothing of arsup's runs after this
    proc.communicate(timeout=10)
    assert final_statuses(project).get("0003", ("", ""))[0] == "queued"

    restart = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=60)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "recovered experiment 0003: skipped, queued, never run: arsup was killed" in restart.stdout
    queued = next(e for e in Journal(project).experiments("q9") if e.id == "0003")
    assert (queued.status, queued.hypothesis, queued.made_for) == (Status.SKIPPED, "wider", "0001")
    assert queued.agent_data["usage"] == {"calls": 1, "cost_usd": 0.5}
    ends = [json.loads(line) for line in (project / ".arsup" / "journal.jsonl").read_text().splitlines()
            if '"session_end"' in line]
    assert ends[-1]["spend"]["cost_usd"] == 0.75  # the slow run's proposal and the one that never ran
    assert_invariants(project, protected)


def test_a_write_cut_short_is_undone_though_a_later_proposal_was_queued(project: Path) -> None:
    """With `queue = 2` the journal holds a queued proposal after the one being written: only the one
    being written left bytes in the work tree, and they are recognised as arsup's."""
    import hashlib

    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "x", "edits": edit("WIDTH = 64", "WIDTH = 65")})
    engine, _ = make_engine(project, script, max_experiments=1)
    engine.run()
    planned = TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 65").encode()
    journal = Journal(project)
    writing, queued = engine.history[0].copy(), engine.history[0].copy()
    writing.id, writing.status, writing.is_baseline = "0002", Status.QUEUED, False
    queued.id, queued.status, queued.is_baseline, queued.hypothesis = "0003", Status.QUEUED, False, "narrower"
    journal.record(writing)  # both made while 0001 trained, in this order
    journal.record(queued)
    writing.files, writing.status = ["train.py"], Status.PROPOSED  # then 0002's turn came
    writing.written = {"train.py": hashlib.sha256(planned).hexdigest()}
    journal.record(writing)
    (project / "train.py").write_bytes(planned)
    engine, _ = make_engine(project, script)
    engine.close()
    recovered = {e.id: (e.status, e.reason) for e in engine.history}
    assert recovered["0002"] == (Status.INVALID, "interrupted before its run")
    assert recovered["0003"] == (Status.SKIPPED, "queued, never run: arsup was killed")
    assert (project / "train.py").read_text() == TOY_TRAIN
    assert_invariants(project, protected)


# Trains silently, with a helper that left the run's session (a daemon, say): both outlive a dead reaper.
ORPHANED = TOY_TRAIN + """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print("training", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("kind", ["none", pytest.param("bwrap", marks=needs_bwrap)])
def test_nothing_of_a_run_survives_arsup_and_its_reaper_killed_together(tmp_path: Path, kind: str) -> None:
    """`pkill -9 -f arsup`, the OOM killer: the reaper dies first, so nothing takes the tree down; the restart does.
    In a sandbox the PID namespace goes with the reaper (bubblewrap's --die-with-parent)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    project = make_project(tmp_path / "repo", sandbox={"kind": kind})
    protected = fingerprint(project, ["prepare.py"])
    script = write_script(project, {"hypothesis": "slow", "files": {"train.py": ORPHANED}})
    command = [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "t1"]
    arsup = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = project / ".arsup" / "runs" / "0002" / "run.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "\ntraining\n" in log.read_text()):  # not the toy's "training_seconds"
        assert arsup.poll() is None and time.monotonic() < deadline, arsup.communicate()
        time.sleep(0.05)
    (reaper,) = psutil.Process(arsup.pid).children()
    run = reaper.children(recursive=True)
    assert len(run) >= 2  # the training and its helper (and the shell, if it did not exec)
    try:
        for victim in (arsup, reaper):  # frozen first, so that neither sees the other die and acts on it
            victim.send_signal(signal.SIGSTOP)
        reaper.kill()
        arsup.kill()
        arsup.communicate(timeout=10)
        psutil.wait_procs([reaper], timeout=5)
        time.sleep(0.5)  # what would end by itself has ended
        alive = [p for p in run if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if kind == "none":
            assert alive and all(p.ppid() not in (reaper.pid, arsup.pid) for p in alive)  # orphans, re-parented
        else:
            assert alive == []

        engine, events = make_engine(project, script)
        engine.close()
        gone, left = psutil.wait_procs(alive, timeout=5)
        assert not left, f"still running after the restart: {left}"
    finally:
        for proc in run:  # a failure must not leave them to the rest of the session
            try:
                proc.kill()
            except psutil.Error:
                pass
    if kind == "none":
        assert any("left running by an arsup that was killed" in getattr(e, "text", "") for e in events)
    assert engine.history[-1].status == Status.CRASH
    assert_invariants(project, protected)
