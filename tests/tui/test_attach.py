"""The screen attached to a loop served over its control socket, as `arsup attach` runs it.

The loop is an engine in this process behind a real `ControlServer`; the
screen gets a real `ControlClient` as its controls and knows the loop only
by the socket, exactly as when the loop is another process.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from arsup import config
from arsup.core.loop import Engine
from arsup.core.events import ApprovalRequested
from arsup.core.experiment import Status
from arsup.core.service import ControlClient, ControlServer, LoopNotRunning
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from arsup.tui.launch import run_attached, screen
from arsup.tui.screens import ApprovalScreen, QuitScreen
from tests.conftest import edit
from tests.tui.conftest import SLOW, drive, finish, quiet_monitor, script_engine, start, until

pytestmark = pytest.mark.slow  # a Textual app attached over the socket to a real loop

HIGHER_LR = {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")}
WIDER = {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")}


def served(engine: Engine, root: Path) -> ControlServer:
    """Prepare the engine, serve it on the socket, start its loop."""
    server = ControlServer(engine, root)
    engine.subscribe(server)
    engine.prepare()
    server.start()
    start(engine)
    return server


@pytest.fixture
def loop_server(repo: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Engine, ControlServer]]:
    proposals, approve = request.param
    engine = script_engine(repo, *proposals, approve=approve)
    server = served(engine, repo)
    yield engine, server
    engine.stop()
    engine.wait(30)
    server.stop()


@pytest.mark.parametrize("loop_server", [((HIGHER_LR, WIDER), "runs")], indirect=True)
def test_approve_from_the_screen_and_see_another_client_answer(repo: Path, loop_server: Any) -> None:
    engine, _ = loop_server
    bridge = Bridge()
    client = ControlClient(repo, on_event=bridge)
    for event in client.connect():
        bridge(event)
    app = screen(config.load(repo), bridge, client, on_ready=client.start, monitor=quiet_monitor())
    other = ControlClient(repo)

    def pending_id() -> str:
        return app.view.pending.experiment.id if app.view.pending is not None else ""

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the baseline's question")
        assert app.view.project_name == "repo" and app.view.policy == "runs" and app.view.pid > 0
        await pilot.press("a")  # through the question's local future, then the socket
        await until(pilot, lambda: pending_id() == "0002" and isinstance(app.screen, ApprovalScreen))
        snapshot = await asyncio.to_thread(other.connect)
        question = next(e for e in snapshot if isinstance(e, ApprovalRequested))
        assert await asyncio.to_thread(other.answer, question.question_id, False)  # another client says no
        # The answered question's dialog closes; the next question may open at once (made ahead), so
        # what is checked is that no dialog asks about 0002 any more, and that 0003's question comes.
        await until(
            pilot,
            lambda: not (isinstance(app.screen, ApprovalScreen) and app.screen.request.experiment.id == "0002"),
            what="the answered question's dialog to close",
        )
        await until(pilot, lambda: pending_id() == "0003", what="the next question")
        await pilot.press("escape", "P")  # runs -> keeps: the loop no longer asks about runs
        await until(pilot, lambda: app.view.policy == "keeps", what="the policy, over the socket")
        await finish(pilot, app)
        await pilot.press("q")  # the loop ended: no dialog
        await until(pilot, lambda: not app.is_running, what="the app to close")

    try:
        drive(app, go, size=(120, 40))
    finally:
        other.close()
        client.close()
    assert [(e.hypothesis, e.status) for e in engine.history] == [
        ("baseline", Status.KEEP), ("higher LR", Status.SKIPPED), ("wider", Status.DISCARD),
    ]
    assert engine.policy == "keeps" and not app.detached


def test_attaching_where_no_loop_runs(repo: Path) -> None:
    with pytest.raises(LoopNotRunning):
        run_attached(repo, config.load(repo))


def run_headless(monkeypatch: pytest.MonkeyPatch, drive: Callable[[Pilot[Any]], Awaitable[None]]) -> None:
    """Make `SupervisorApp.run` run without a terminal, driven by `drive`."""
    monkeypatch.setattr(
        SupervisorApp, "run", lambda app: App.run(app, headless=True, size=(120, 40), auto_pilot=drive)
    )


@pytest.mark.parametrize("loop_server", [(({"hypothesis": "slow", "files": {"train.py": SLOW}},), "auto")],
                         indirect=True)
def test_run_attached_detaches_then_stops(repo: Path, loop_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = loop_server

    async def detach(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, SupervisorApp)
        await until(pilot, lambda: app.view.running is not None, what="the training")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("d")

    run_headless(monkeypatch, detach)
    out = io.StringIO()
    assert run_attached(repo, config.load(repo), out=out) == 0
    assert out.getvalue() == (
        f"arsup: detached; the loop goes on (pid {os.getpid()}). `arsup attach` to come back, `arsup stop` to end it.\n"
    )
    assert not engine.wait(0.5)  # the loop and its training go on

    async def stop(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, SupervisorApp)
        await until(pilot, lambda: app.view.running is not None, what="the training, seen from the snapshot")
        await pilot.press("q", "S")

    run_headless(monkeypatch, stop)
    out = io.StringIO()
    assert run_attached(repo, config.load(repo), out=out) == 0
    assert out.getvalue().splitlines() == [
        "arsup: stopped by user",
        f"arsup: results in {repo / 'results.tsv'}, journal in {repo / '.arsup' / 'journal.jsonl'}",
    ]
    assert engine.wait(30)
    assert [e.status for e in engine.history] == [Status.KEEP, Status.CRASH]
