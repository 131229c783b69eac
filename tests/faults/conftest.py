"""The four invariants every fault test asserts, whatever the fault did.

A fault may end an experiment, a session or arsup itself, but it must never
leave behind: a protected file that changed, a process of the run, a journal
that does not parse, or a dirty work tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import git


def fingerprint(root: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each named file, taken before the fault."""
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in names}


def leftover_processes(root: Path) -> list[psutil.Process]:
    """Processes (but this one) working in the project folder: a run's tree, escapees included."""
    inside = str(root.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cwd = proc.info["cwd"] or ""
        if cwd == inside or cwd.startswith(inside + os.sep):
            found.append(proc)
    return found


def journal_records(root: Path, bad: int = 0) -> list[dict]:
    """Every line of the journal as a JSON event, but exactly `bad` lines the test itself damaged."""
    path = root / ".arsup" / "journal.jsonl"
    records, unreadable = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "event" in record:
            records.append(record)
        else:
            unreadable += 1
    assert unreadable == bad, f"{unreadable} unreadable journal lines"
    return records


def assert_invariants(root: Path, protected: dict[str, str], settle_s: float = 3.0, bad: int = 0) -> None:
    assert fingerprint(root, list(protected)) == protected, "a protected file changed"
    deadline = time.monotonic() + settle_s
    while leftover_processes(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftover_processes(root) == [], "a process of the run is still alive"
    journal_records(root, bad)
    assert git(root, "status", "--porcelain") == "", "the work tree is not clean"


def start_arsup(root: Path, script: Path, tag: str, experiment: str, timeout: float = 60.0) -> subprocess.Popen[str]:
    """`arsup run --headless` in its own process, returned once `experiment`'s run printed a `training` line.

    A whole line, not the text: the toy training's `training_seconds:` would match at the end of its run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", tag],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log = root / ".arsup" / "runs" / experiment / "run.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and "training" in log.read_text(errors="replace").splitlines()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc
