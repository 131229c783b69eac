from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from arsup.core.agents.base import AgentContext
from arsup.core.agents.script import ScriptAgent
from arsup.core.experiment import Experiment, Status


def _context(history: list[Experiment] | None = None, cancel: threading.Event | None = None) -> AgentContext:
    return AgentContext(
        instructions="", files={}, history=history or [], metric="val_bpb", goal="minimize",
        time_budget=1, cancel=cancel or threading.Event(),
    )


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_replays_in_order_then_runs_out(tmp_path: Path) -> None:
    agent = ScriptAgent(_write(tmp_path, {"hypothesis": "a", "edits": "x"}, "", {"hypothesis": "b", "files": {"t.py": "y"}}))
    first, second = agent.propose(_context()), agent.propose(_context())
    assert (first.hypothesis, first.edits, first.meta) == ("a", "x", {"line": 1})
    assert (second.hypothesis, second.files, second.meta) == ("b", {"t.py": "y"}, {"line": 3})
    assert agent.propose(_context()) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "p.jsonl:1: not valid JSON"),
        ({"edits": "x"}, '"hypothesis" must be a non-empty string'),
        ({"hypothesis": "a"}, 'exactly one of "edits" and "files"'),
        ({"hypothesis": "a", "edits": "x", "think": 1}, "unknown key(s) think"),
        ({"hypothesis": "a", "edits": "x", "think_s": -1}, '"think_s" must be'),
        ({"hypothesis": "a", "edits": "x", "usage": {"cost_usd": "1"}}, '"usage" must map'),
    ],
)
def test_bad_lines_are_reported_with_their_number(tmp_path: Path, line: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ScriptAgent(_write(tmp_path, line))
    assert message in str(info.value)


def test_a_line_may_say_what_a_model_would_have_cost(tmp_path: Path) -> None:
    usage = {"calls": 1, "cost_usd": 0.25}
    agent = ScriptAgent(_write(tmp_path, {"hypothesis": "a", "edits": "x", "usage": usage}))
    assert agent.propose(_context()).meta == {"line": 1, "usage": usage}  # what the spend and the budget add up


def test_resume_skips_lines_already_used(tmp_path: Path) -> None:
    agent = ScriptAgent(_write(tmp_path, *({"hypothesis": h, "edits": "x"} for h in "abc")))
    done = Experiment(id="0002", tag="t", parent="p", hypothesis="b", agent="script", status=Status.KEEP)
    done.agent_data = {"line": 2}
    assert agent.propose(_context([done])).hypothesis == "c"


def test_think_time_is_cut_short_by_a_stop(tmp_path: Path) -> None:
    agent = ScriptAgent(_write(tmp_path, {"hypothesis": "slow", "edits": "x", "think_s": 30}))
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    assert agent.propose(_context(cancel=cancel)) is None
    assert time.monotonic() - started < 5
