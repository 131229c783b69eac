"""The doom-loop guard: an agent proposing the same idea with new numbers is told, then stopped or paused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from arsup.core.events import Notice, Paused, SessionEnded
from arsup.core.journal import Journal
from tests.conftest import edit, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it

LR_AGAIN = [edit("LR = 0.0001", f"LR = {value}") for value in ("0.00005", "0.00002", "0.00001", "0.000005", "0.000001")]


def _script(root: Path) -> Path:
    return write_script(root, *({"hypothesis": f"lower LR, try {n}", "edits": e} for n, e in enumerate(LR_AGAIN)))


def test_headless_it_stops_with_the_list(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    protected = fingerprint(root, ["prepare.py"])
    engine, events = make_engine(root, _script(root), acceptance={"mode": "greedy"}, watchdog={"same_idea": 3})
    engine.run()
    ended = next(e for e in events if isinstance(e, SessionEnded))
    assert ended.error and "3 experiments in a row changed the same place (LR)" in ended.reason
    assert "0002, 0003, 0004" in ended.reason and "leave a note" in ended.reason
    recorded = Journal(root).experiments("t1")
    assert [e.status for e in recorded] == ["keep", "discard", "discard", "discard", "skipped"]  # LR goes down: worse
    assert recorded[-1].reason.startswith("queued, never run")  # proposed ahead: recorded, not lost
    assert_invariants(root, protected)


def test_on_screen_it_pauses_once_and_the_next_streak_counts_anew(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    engine, events = make_engine(root, _script(root), acceptance={"mode": "greedy"}, watchdog={"same_idea": 3},
                                 slots={"queue": 0})
    engine.interactive = True
    engine.start()
    deadline = time.monotonic() + 60
    while not any(isinstance(e, Paused) for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    said = [e.text for e in events if isinstance(e, Notice) and e.level == "error"]
    assert any("3 experiments in a row changed the same place (LR)" in s and "paused" in s for s in said), said
    engine.resume()
    assert engine.wait(60)
    ended = next(e for e in events if isinstance(e, SessionEnded))
    assert not ended.error and ended.reason == "the agent has no more ideas"  # two more LRs: no second pause
    assert sum(isinstance(e, Paused) for e in events) == 1
    assert_invariants(root, fingerprint(root, ["prepare.py"]))
