"""The loop as a process of its own: started once, found again, deaf to SIGHUP, and clear when it cannot start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from arsup.background import LoopFailed, ensure_loop, running_loop
from tests.conftest import TOY_TRAIN, git
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # starts arsup's detached loop on git repositories


def _stop(root: Path, pid: int) -> None:
    done = subprocess.run([sys.executable, "-m", "arsup", "stop"], cwd=root, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the loop did not stop"
        time.sleep(0.05)


def test_a_background_loop_is_started_once_and_outlives_a_hangup(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    pid, started = ensure_loop(project, ["--tag", "bg", "--policy", "runs"])  # waits on its first question
    try:
        assert started and running_loop(project) == pid
        loop = psutil.Process(pid)
        assert os.getsid(pid) == pid  # its own session: no terminal can take it down
        assert ensure_loop(project, ["--tag", "bg"]) == (pid, False)
        loop.send_signal(signal.SIGHUP)  # what a dropped SSH session would send
        time.sleep(0.5)
        assert loop.is_running() and running_loop(project) == pid
        status = subprocess.run([sys.executable, "-m", "arsup", "status"], cwd=project, capture_output=True, text=True)
        assert status.returncode == 0 and "waiting: train 0001 (the baseline)?" in status.stdout
    finally:
        _stop(project, pid)
    log = (project / ".arsup" / "loop.log").read_text()
    assert "--- arsup loop starting" in log and "arsup: branch autoresearch/bg" in log and "stopped by user" in log
    assert_invariants(project, protected)


def test_a_loop_that_cannot_start_says_why(project: Path) -> None:
    (project / "train.py").write_text(TOY_TRAIN + "# my own edit\n")
    with pytest.raises(LoopFailed, match="uncommitted changes in files arsup edits or protects: train.py") as failed:
        ensure_loop(project, ["--tag", "bg"])
    assert failed.value.exit_code == 2
    assert running_loop(project) == 0
    git(project, "checkout", "train.py")
