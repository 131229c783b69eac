"""The scheduler's slots and the night's end: a real engine, two CPU slots, a CLI agent of the test's own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents import create_agent
from arsup.core.experiment import Status
from arsup.core.loop import Engine
from tests.conftest import make_project

pytestmark = pytest.mark.slow

# The first call to start thinks for 2 s; any later one answers at once. Each widens the model its own way.
SLOW_FIRST = """\
import os, pathlib, sys, time
try:
    os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL))
    time.sleep(2.0)
except FileExistsError:
    pass
train = pathlib.Path("train.py")
train.write_text(train.read_text().replace("WIDTH = 64", f"WIDTH = {65 + os.getpid() % 1000}"))
print("HYPOTHESIS: a wider model")
"""


def test_the_budgets_last_experiment_is_not_given_up_while_its_slot_waits_for_the_agent(tmp_path: Path) -> None:
    """With a budget of 3 (the baseline and two), one slot's proposal comes late: the other slot's experiment is
    judged meanwhile, and the budget, counting the one still being proposed, is then used up. The late one
    is still made and trained; only no fourth is started."""
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    script = tmp_path / "agent.py"
    script.write_text(SLOW_FIRST)
    cfg = config.load(root, {
        "budget": {"max_experiments": 3}, "slots": {"cpu": 2, "queue": 0},
        "agent": {"kind": "command", "command": f"{sys.executable} {script} {tmp_path / 'first'}"},
    })
    engine = Engine(cfg, root, create_agent(cfg, root), tag="t1")
    engine.prepare()
    engine.run()
    baseline, *proposed = engine.history
    assert len(proposed) == 2 and all(e.status in Status.TRAINED for e in proposed), [
        (e.id, e.status, e.reason) for e in engine.history
    ]
    slow = max(proposed, key=lambda e: e.propose_s)
    assert slow.propose_s >= 2.0  # the late one, made and trained
