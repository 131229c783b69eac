"""The real thing in a real terminal: `arsup demo` under tmux, driven by keys, read with capture-pane.

This is what a person does on a GPU box: approve the baseline, watch it
train, approve an idea and kill it, see the crash in the history, quit and
stop. It checks what Pilot cannot: the console script, the terminal driver,
and that no training process outlives the program.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.terminal import EXIT_MARK, Tmux

# slow: arsup itself under tmux
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

def trainings_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        info = process.info
        if info["cwd"] == str(folder) and any("train.py" in part for part in info["cmdline"] or []):
            found.append(process)
    return found


def arsup(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arsup", *args], cwd=folder, capture_output=True, text=True, timeout=60)


def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


SCREEN = f"unset COLUMNS LINES; {sys.executable} -m arsup"  # COLUMNS/LINES from elsewhere would override the pane


def test_demo_under_tmux_approve_kill_stop(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    tmux = Tmux(f"{SCREEN} demo --policy runs --time-budget 2 --dir {demo}; echo {EXIT_MARK}$?; sleep 60", tmp_path)
    try:
        tmux.wait_for("Train this experiment?  0001", "baseline", timeout=60)
        tmux.keys("a")
        tmux.wait_for("● training", "0001 live")
        tmux.wait_for("Train this experiment?  0002", timeout=120)
        tmux.keys("a")
        tmux.wait_for("● training", "0002 live")
        tmux.keys("k")  # up in the tree, as in vim: nothing is killed
        tmux.keys("x")
        tmux.wait_for("Kill the training of 0002?")
        tmux.keys("y")
        tmux.wait_for("1 crashed", "Train this experiment?  0003", timeout=60)
        tmux.keys("Escape")
        history = tmux.wait_for("0002 crash")
        assert "0001 keep" in history
        tmux.keys("a")
        tmux.wait_for("● training", "0003 live")
        tmux.keys("q")
        tmux.wait_for("detach")
        tmux.keys("S")  # stop now
        tmux.wait_for(EXIT_MARK, timeout=60)
        assert f"{EXIT_MARK}0" in tmux.screen()
        wait_until(lambda: arsup(demo, "status").returncode == 3, "the loop to end")
        assert not trainings_in(demo)
    finally:
        tmux.close()
    rows = [row.split("\t") for row in (demo / "results.tsv").read_text().splitlines()[1:]]
    assert [row[3] for row in rows] == ["keep", "crash", "crash"]  # 0003 was stopped: recorded, not lost


def test_a_kill_of_the_baseline_asks_first_says_who_killed_it_and_exits_non_zero(tmp_path: Path) -> None:
    """The night lost to one key: `k` is up, `x` asks, `n` keeps the run; `y` kills, and the end says so."""
    demo = tmp_path / "demo"
    tmux = Tmux(f"{SCREEN} demo --policy runs --time-budget 5 --dir {demo}; echo {EXIT_MARK}$?; sleep 60", tmp_path)
    try:
        tmux.wait_for("Train this experiment?  0001", "baseline", timeout=60)
        tmux.keys("a")
        tmux.wait_for("● training", "0001 live")
        tmux.keys("k")
        tmux.keys("x")
        tmux.wait_for("Kill the training of 0001?", "the night cannot go on without the baseline")
        tmux.keys("n")
        time.sleep(1)
        assert "0001 live" in tmux.screen() and "Kill the training" not in tmux.screen()
        tmux.keys("x")
        tmux.wait_for("Kill the training of 0001?")
        tmux.keys("y")
        ended = tmux.wait_for("was killed by you", timeout=60)
        assert "the baseline crashed" not in ended and "fix the training script" not in ended
        tmux.keys("Escape")
        time.sleep(0.5)  # not read as alt+q
        tmux.keys("q")
        said = tmux.wait_for(EXIT_MARK, timeout=30)
        assert "arsup: error: the baseline (0001) was killed by you" in said.replace("\n", " ")
        assert f"{EXIT_MARK}0" not in said, said
    finally:
        tmux.close()


def test_the_loop_outlives_the_terminal_and_screens_come_and_go(tmp_path: Path) -> None:
    """The SSH story: drop the terminal mid-run, steer from the command line, re-attach twice, stop."""
    demo = tmp_path / "demo"
    first = Tmux(f"{SCREEN} demo --policy runs --time-budget 2 --dir {demo}", tmp_path, name="first")
    try:
        first.wait_for("Train this experiment?  0001", "baseline", timeout=60)
        first.keys("a")
        first.wait_for("● training", "0001 live")
    finally:
        first.close()  # the drop: the terminal and the screen are gone
    status = arsup(demo, "status")
    assert status.returncode == 0, status.stdout
    wait_until(lambda: "waiting: train 0002" in arsup(demo, "status").stdout, "the loop to ask about 0002")
    approved = arsup(demo, "approve")
    assert approved.returncode == 0 and "approved: train 0002" in approved.stdout
    one = Tmux(f"{SCREEN} attach; echo {EXIT_MARK}$?; sleep 60", demo, name="one")
    two = Tmux(f"{SCREEN} attach; echo {EXIT_MARK}$?; sleep 60", demo, name="two")
    try:
        one.wait_for("● training", "0002 live")
        one.keys("x")  # kill from an attached screen
        one.wait_for("Kill the training of 0002?")
        one.keys("y")
        one.wait_for("Train this experiment?  0003", timeout=60)
        two.wait_for("Train this experiment?  0003", timeout=30)  # both screens see the same question
        two.keys("a")  # the second screen answers; the first one's dialog closes
        one.wait_for("● training", "0003 live", timeout=60)
        assert "0002 crash" in two.wait_for("0002 crash")
        for screen in (one, two):
            screen.keys("q")
            screen.wait_for("detach")
            screen.keys("d")
            after = screen.wait_for(EXIT_MARK, timeout=30)
            assert f"{EXIT_MARK}0" in after and "detached; the loop goes on" in after
    finally:
        one.close()
        two.close()
    assert arsup(demo, "status").returncode == 0  # still running with nobody attached
    assert arsup(demo, "stop").returncode == 0
    wait_until(lambda: arsup(demo, "status").returncode == 3, "the loop to end")
    wait_until(lambda: not trainings_in(demo), "the training to end", timeout=30)
    records = [json.loads(line) for line in (demo / ".arsup" / "journal.jsonl").read_text().splitlines()]
    finals = {r["experiment"]["id"]: r["experiment"]["status"] for r in records if r["event"] == "experiment"}
    assert finals["0001"] == "keep" and finals["0002"] == "crash" and finals["0003"] == "crash"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=demo, capture_output=True, text=True).stdout == ""
