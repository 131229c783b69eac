"""Driving the screen in tests: a real engine on a real repo, a Pilot, and waits on conditions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest
from textual.pilot import Pilot

from arsup import config
from arsup.core.agents.script import ScriptAgent
from arsup.core.engine import Engine
from arsup.core.monitor import FixedGpuReader, Monitor
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from tests.conftest import TOY_TRAIN, make_project

SLOW = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"
NO_GPU = "no NVIDIA GPU found (test: no driver)"


def live_app(
    root: Path,
    *proposals: dict[str, Any],
    approve: str = "auto",
    key_map: dict[str, str] | None = None,
    theme: str = "",
) -> SupervisorApp:
    """The screen over a prepared engine that replays `proposals`; one quick run per experiment."""
    script = root.parent / "proposals.jsonl"
    script.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    overrides = {"policy": {"approve": approve}, "acceptance": {"mode": "greedy"}}
    engine = Engine(config.load(root, overrides), root, ScriptAgent(script), tag="tui")
    bridge = Bridge()
    engine.subscribe(bridge)
    engine.prepare()
    monitor = Monitor(interval=0.5, gpu_reader=FixedGpuReader([], error=NO_GPU))
    return SupervisorApp(engine, bridge, monitor=monitor, key_map=key_map, theme=theme)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


async def until(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Let the app run until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


async def finish(pilot: Pilot[Any], app: SupervisorApp) -> None:
    """Wait for the loop to end by itself."""
    await until(pilot, lambda: app.view.ended is not None, 60, "the loop to end")


def training_processes() -> list[psutil.Process]:
    """Any train.py still running under this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("train.py" in part for part in child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
