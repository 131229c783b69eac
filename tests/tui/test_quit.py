"""Leaving the screen: detach (the loop goes on), stop after this run, stop now, cancel; and stop signals."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from arsup.core.events import SessionEnded, SessionStarted
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from arsup.tui.screens import QuitScreen
from tests.tui.conftest import SLOW, RecordingControls, drive, engine_of, live_app, training_processes, until

pytestmark = pytest.mark.slow  # Textual apps, one over a real loop


def test_esc_cancels_and_d_detaches_leaving_the_loop_running(repo: Path) -> None:
    app = live_app(repo, {"hypothesis": "slow", "files": {"train.py": SLOW}})

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.running is not None and app.view.running.id == "0002")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert app.screen is app.main and app.is_running and not app.stopping
        await pilot.press("q", "d")
        await until(pilot, lambda: not app.is_running, what="the screen to close")

    drive(app, go, size=(120, 40))
    engine = engine_of(app)
    assert app.detached and app.return_code == 0 and app.view.ended is None
    assert not engine.wait(0.5) and training_processes()  # the loop and its training go on without the screen
    engine.stop()
    assert engine.wait(30) and not training_processes()


def signalled_app(owns_loop: bool) -> tuple[SupervisorApp, Bridge, RecordingControls]:
    controls, bridge = RecordingControls(), Bridge()
    bridge(SessionStarted("t", "autoresearch/t", "c0", 0))
    return SupervisorApp(controls, bridge, owns_loop=owns_loop), bridge, controls


def test_a_stop_signal_detaches_from_a_loop_of_another_process() -> None:
    app, _, controls = signalled_app(owns_loop=False)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        app._on_stop_signal(signal.SIGTERM)
        await until(pilot, lambda: not app.is_running, what="the screen to close")

    drive(app, go)
    assert app.detached and app.signalled == signal.SIGTERM and controls.calls == []


def test_a_stop_signal_stops_a_loop_the_screen_owns() -> None:
    app, bridge, controls = signalled_app(owns_loop=True)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        app._on_stop_signal(signal.SIGTERM)
        await until(pilot, lambda: controls.calls == [("stop", ())], what="the stop")
        assert app.is_running and app._state_label() == "stopping…"  # until the loop says it ended
        bridge(SessionEnded("stopped by user"))
        await until(pilot, lambda: not app.is_running, what="the screen to close")

    drive(app, go)
    assert not app.detached and app.return_code == 0


def test_stop_after_this_run_waits_for_the_end() -> None:
    app, bridge, controls = signalled_app(owns_loop=False)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        await pilot.press("q", "s")
        await until(pilot, lambda: controls.calls == [("stop_after_run", ())], what="the control")
        assert app.is_running and not app.check_action("pause", ()) and not app.check_action("kill", ())
        bridge(SessionEnded("stopped after the run, as asked"))
        await until(pilot, lambda: not app.is_running, what="the screen to close")

    drive(app, go)
    assert not app.detached


def test_a_loop_that_ended_on_its_state_folder_leaves_the_screen_with_exit_2() -> None:
    """A full disk (or a journal arsup cannot write) is a state-folder problem, as for headless: exit 2."""
    app, bridge, _ = signalled_app(owns_loop=True)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        bridge(SessionEnded("the disk at /data is full (0 bytes free of 30 MB)", error=True, state_folder=True))
        await until(pilot, lambda: app.screen is not app.main, what="the error")
        await pilot.press("escape", "q")  # the error read, then leave
        await until(pilot, lambda: not app.is_running, what="the screen to close")

    drive(app, go)
    assert app.return_code == 2
