"""`arsup hook stop` as the agent session runs it: a real process, against a real loop with the external agent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents.external import ExternalAgent
from arsup.core.events import Event, ExperimentFinished, Notice, Proposing
from arsup.core.loop import Engine
from arsup.core.service import ControlServer
from tests.conftest import make_project

pytestmark = pytest.mark.slow


def hook(root: Path) -> tuple[int, dict, float]:
    """One Stop hook call: its exit code, its JSON answer ({} when it printed none) and its wall time."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "arsup", "hook", "stop", "--dir", str(root)], cwd=root.parent,
                          input='{"hook_event_name": "Stop", "stop_hook_active": false}', capture_output=True,
                          text=True, timeout=30)
    wall = time.monotonic() - started
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, wall


def test_the_stop_hook_blocks_while_the_night_runs_then_lets_an_idle_agent_stop_and_says_so(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", agent={"max_idle_blocks": 2})
    assert hook(root)[:2] == (0, {})  # no loop here: nothing to keep going for
    agent = ExternalAgent()
    engine = Engine(config.load(root), root, agent, tag="hook")
    server = ControlServer(engine, root, agent)
    events: list[Event] = []
    for subscriber in (events.append, server, agent):
        engine.subscribe(subscriber)
    engine.prepare()
    server.start()
    engine.start()
    try:
        deadline = time.monotonic() + 60
        while not (any(isinstance(e, ExperimentFinished) for e in events) and isinstance(events[-1], Proposing)):
            assert time.monotonic() < deadline, "the loop never asked for a proposal"
            time.sleep(0.05)
        time.sleep(0.3)  # the proposer is in propose: the agent has the loop's notices
        answers = [hook(root) for _ in range(3)]
        assert [code for code, _, _ in answers] == [0, 0, 0]
        for _, said, _ in answers[:2]:
            assert said["decision"] == "block" and "call propose" in said["reason"]
        assert "decision" not in answers[2][1]
        assert "stopped after 2 reminders without a new proposal" in answers[2][1]["systemMessage"]
        deadline = time.monotonic() + 10
        while not any(isinstance(e, Notice) and "stopped after 2 reminders" in e.text for e in events):
            assert time.monotonic() < deadline, "the person was not told"
            time.sleep(0.05)
        print("hook wall times (s):", [round(wall, 3) for _, _, wall in answers])
        assert max(wall for _, _, wall in answers) < 2.0  # < 200 ms on an idle machine; CI machines are shared
    finally:
        engine.stop()
        assert engine.wait(30)
        server.stop()
    assert hook(root)[:2] == (0, {})  # the night is over: the agent may stop
