"""Driving the screen in tests: a real engine on a real repo as the screen's controls, a Pilot, and waits.

The screen holds no engine: `live_app` subscribes the bridge to an engine
in this process, hands the engine over as `Controls`, and starts it in
`on_ready`, as the launcher starts a client's feed. Every engine prepared
here is stopped (or let go, if it never started) when the test ends.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from textual.app import App
from textual.pilot import Pilot

from arsup import config
from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.agents.script import ScriptAgent
from arsup.core.events import ExperimentStarted, SessionStarted
from arsup.core.experiment import Experiment, Status
from arsup.core.loop import Engine
from arsup.core.monitor import FixedGpuReader, Monitor
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from tests.conftest import TOY_TRAIN, make_project

SLOW = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"
NO_GPU = "no NVIDIA GPU found (test: no driver)"

_prepared: list[Engine] = []
_started: list[Engine] = []


class GatedAgent(ScriptAgent):
    """A script agent that proposes only once `gate` is set: the test, not the clock, says when it has thought,
    so a step that must come before a proposal does not race the agent on a loaded machine."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate

    def propose(self, context: AgentContext) -> Proposal | None:
        self.gate.wait(60)
        return super().propose(context)


def script_engine(
    root: Path, *proposals: dict[str, Any], approve: str = "auto", gate: threading.Event | None = None
) -> Engine:
    """An engine whose agent replays `proposals`, greedy, one quick run per experiment; not prepared.
    With `gate`, each proposal waits for it (`GatedAgent`)."""
    script = root.parent / "proposals.jsonl"
    script.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    overrides = {"policy": {"approve": approve}, "acceptance": {"mode": "greedy"}}
    agent = ScriptAgent(script) if gate is None else GatedAgent(script, gate)
    engine = Engine(config.load(root, overrides), root, agent, tag="tui")
    engine.interactive = True  # a person watches: a crash streak pauses and asks instead of ending the loop
    _prepared.append(engine)
    return engine


def start(engine: Engine) -> None:
    """Start a prepared engine's loop (the screen's `on_ready` in tests)."""
    engine.start()
    _started.append(engine)


def quiet_monitor() -> Monitor:
    return Monitor(interval=0.5, gpu_reader=FixedGpuReader([], error=NO_GPU))


def live_app(
    root: Path,
    *proposals: dict[str, Any],
    approve: str = "auto",
    key_map: dict[str, str] | None = None,
    theme: str = "",
    gate: threading.Event | None = None,
) -> SupervisorApp:
    """The screen over a prepared engine in this process, which it owns; the loop starts after the first frame."""
    engine = script_engine(root, *proposals, approve=approve, gate=gate)
    bridge = Bridge()
    engine.subscribe(bridge)
    engine.prepare()
    return SupervisorApp(
        engine, bridge, on_ready=lambda: start(engine), owns_loop=True, monitor=quiet_monitor(),
        key_map=key_map, theme=theme,
    )


def engine_of(app: SupervisorApp) -> Engine:
    """The engine behind a `live_app`, for what only the test may look at."""
    assert isinstance(app.controls, Engine)
    return app.controls


@pytest.fixture(autouse=True)
def _no_loop_left() -> Iterator[None]:
    """A test that leaves (or detaches from) a running loop gets it stopped here."""
    yield
    while _prepared:
        engine = _prepared.pop()
        if engine in _started:
            engine.stop()
            assert engine.wait(60), "an engine did not stop"
        else:
            engine.close()
    _started.clear()


class RecordingControls:
    """`Controls` that only remember what they were asked: a screen with a live look and no loop."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        self._record("answer", question_id, approved, files)
        return True

    def kill(self) -> None:
        self._record("kill")

    def pause(self) -> None:
        self._record("pause")

    def resume(self) -> None:
        self._record("resume")

    def add_note(self, text: str) -> None:
        self._record("add_note", text)

    def set_policy(self, name: str) -> None:
        self._record("set_policy", name)

    def stop(self) -> None:
        self._record("stop")

    def stop_after_run(self) -> None:
        self._record("stop_after_run")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


def drive(app: App[Any], steps: Callable[[Pilot[Any]], Awaitable[None]], **run_test: Any) -> None:
    """Run `app` headless (`app.run_test(**run_test)`, in an event loop of its own) and take `steps` with its
    pilot; the app has closed when this returns, so what a test asserts after it is what the screen left."""

    async def go() -> None:
        async with app.run_test(**run_test) as pilot:
            await steps(pilot)

    asyncio.run(go())


async def until(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Let the app run until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = type(pilot.app.screen).__name__
            raise AssertionError(f"timed out waiting for {what or condition} (the screen shows {shown})")
        await pilot.pause(0.05)


async def show_tab(pilot: Pilot[Any], app: SupervisorApp, pane: str, ready: Callable[[], object] = lambda: True) -> None:
    """Switch the history pane to the tab `pane` ("tab-table", "tab-chart") and wait until `ready()`.

    Right after the start the tree takes focus, and the tabs answer that focus by
    showing the tree's tab: on a loaded machine that answer can land after a
    switch made this early (a test's, not a person's), so the switch is made
    again while it was undone."""
    from textual.widgets import TabbedContent

    tabs = app.main.query_one("#history-tabs", TabbedContent)

    def shown() -> object:
        if tabs.active != pane:
            tabs.active = pane
            return False
        return ready()

    await until(pilot, shown, what=f"the {pane} tab")


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


def night() -> list[Experiment]:
    """A baseline kept and three ideas discarded."""
    base = Experiment("0001", "t", "c0", "baseline", "script", commit="c1", status=Status.KEEP, metric=1.0,
                      is_baseline=True)
    tried = [Experiment(f"{n:04d}", "t", "c1", f"idea {n}", "script", commit=f"d{n}", status=Status.DISCARD,
                        metric=1.1) for n in (2, 3, 4)]
    return [base, *tried]


def screen_with(running: Experiment | None = None) -> tuple[SupervisorApp, RecordingControls]:
    """A live-looking screen with no loop: a short night's history (and `running` in flight) as events."""
    controls, bridge = RecordingControls(), Bridge()
    history = night()
    bridge(SessionStarted("t", "autoresearch/t", "c1", len(history), history=history))
    if running is not None:
        bridge(ExperimentStarted(running))
    return SupervisorApp(controls, bridge), controls
