"""The real thing in a real terminal: `arsup demo` under tmux, driven by keys, read with capture-pane.

This is what a person does on a GPU box: approve the baseline, watch it
train, approve an idea and kill it, see the crash in the history, quit and
stop. It checks what Pilot cannot: the console script, the terminal driver,
and that no training process outlives the program.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

EXIT_MARK = "ARSUP-EXIT="


class Tmux:
    """One detached 120x40 session on a private server (never the person's own tmux)."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"arsup-test-{os.getpid()}"
        self.captures: list[str] = []
        self._tmux("new-session", "-d", "-s", "arsup", "-x", "120", "-y", "40", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "arsup")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "arsup", *keys)

    def wait_for(self, *texts: str, timeout: float = 90) -> str:
        """The screen once it shows every one of `texts`; fails showing the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                self.captures.append(screen)
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {texts}; it shows:\n{screen}")
            time.sleep(0.25)

    def close(self) -> None:
        self._tmux("kill-server")


def trainings_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        info = process.info
        if info["cwd"] == str(folder) and any("train.py" in part for part in info["cmdline"] or []):
            found.append(process)
    return found


def test_demo_under_tmux_approve_kill_quit(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    command = (  # COLUMNS/LINES inherited from elsewhere would override the pane's real size
        f"unset COLUMNS LINES; {sys.executable} -m arsup demo --policy runs --time-budget 2 --dir {demo}; "
        f"echo {EXIT_MARK}$?; sleep 60"
    )
    tmux = Tmux(command, tmp_path)
    try:
        tmux.wait_for("Train this experiment?  0001", "baseline", timeout=60)
        tmux.keys("a")
        tmux.wait_for("● training", "0001 live")
        tmux.wait_for("Train this experiment?  0002", timeout=120)
        tmux.keys("a")
        tmux.wait_for("● training", "0002 live")
        tmux.keys("k")
        tmux.wait_for("1 crashed", "Train this experiment?  0003", timeout=60)
        tmux.keys("Escape")
        history = tmux.wait_for("0002 crash")
        assert "0001 keep" in history
        tmux.keys("a")
        tmux.wait_for("● training", "0003 live")
        tmux.keys("q")
        tmux.wait_for("A run is training")
        tmux.keys("s")
        tmux.wait_for(EXIT_MARK, timeout=60)
        assert f"{EXIT_MARK}0" in tmux.screen()
        assert not trainings_in(demo)
    finally:
        tmux.close()
    rows = [row.split("\t") for row in (demo / "results.tsv").read_text().splitlines()[1:]]
    assert [row[3] for row in rows] == ["keep", "crash", "crash"]  # 0003 was stopped: recorded, not lost


def test_closing_the_terminal_stops_the_run_and_records_it(tmp_path: Path) -> None:
    """An SSH drop: the terminal goes away (SIGHUP) mid-run; nothing may be left training or half written."""
    demo = tmp_path / "demo"
    tmux = Tmux(f"unset COLUMNS LINES; {sys.executable} -m arsup demo --dir {demo}", tmp_path)
    try:
        tmux.wait_for("● training", "0001 live", timeout=90)
        arsup = next(p for p in psutil.process_iter(["cmdline"]) if "demo" in (p.info["cmdline"] or []))
        assert trainings_in(demo)
    finally:
        tmux.close()  # the pane's terminal disappears: SIGHUP
    arsup.wait(60)
    deadline = time.monotonic() + 10
    while trainings_in(demo) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not trainings_in(demo)
    journal = [json.loads(line) for line in (demo / ".arsup" / "journal.jsonl").read_text().splitlines()]
    last = [r["experiment"] for r in journal if r["event"] == "experiment"][-1]
    assert (last["id"], last["status"], last["reason"]) == ("0001", "crash", "stopped: the terminal closed (SIGHUP)")
    assert journal[-1]["event"] == "session_end"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=demo, capture_output=True, text=True).stdout == ""
