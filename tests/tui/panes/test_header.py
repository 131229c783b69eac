"""The header's fields: what a person checks at a glance."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from arsup.core.events import ExperimentFinished, SessionEnded, SessionStarted, StateChanged
from arsup.core.experiment import Experiment, Status
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from arsup.tui.palette import Palette
from arsup.tui.panes.header import HeaderInfo, HeaderPane, fields
from arsup.view import SessionView
from tests.tui.conftest import RecordingControls, drive, until


def test_fields() -> None:
    view = SessionView("val_bpb", "minimize", 30, branch="autoresearch/nov28", project="/srv/tinylm", policy="runs",
                       agent="llm", model="openai/qwen")
    base = Experiment("0001", "t", "c", "baseline", "arsup", commit="c", status=Status.KEEP, metric=3.0)
    base.is_baseline = True
    best = Experiment("0002", "t", "c", "h", "llm", commit="d", status=Status.KEEP, metric=2.5,
                      agent_data={"usage": {"calls": 3, "cost_usd": 0.12, "prompt_tokens": 900}})
    view.apply(ExperimentFinished(base, base))
    view.apply(ExperimentFinished(best, best))
    view.apply(StateChanged("proposing"))
    info = HeaderInfo("proposing", 3725)
    shown = [f.plain for f in fields(view, info, Palette.from_variables({}))]
    assert shown == [
        "tinylm", "autoresearch/nov28", "llm openai/qwen", "val_bpb ↓ minimize", "policy runs",
        "baseline 3.000000", "best 2.500000 (-0.500000)", "exp 1 kept + baseline · 0 discarded · 0 crashed",
        "1:02:05", "$0.12 (3 calls)", "● proposing",
    ]


def test_a_time_capped_baseline_is_flagged() -> None:
    from arsup.core.experiment import RunResult

    view = SessionView("val_bpb", "minimize", 30, branch="b", project="/srv/tinylm", policy="runs", agent="llm")
    runs = [RunResult(seed=0, log_path="", steps=341), RunResult(seed=1, log_path="", steps=181, capped=181 / 341)]
    base = Experiment("0001", "t", "c", "baseline", "arsup", commit="c", status=Status.KEEP, metric=3.3, runs=runs)
    base.is_baseline = True
    view.apply(ExperimentFinished(base, base))
    shown = [f.plain for f in fields(view, HeaderInfo("training", 60), Palette.from_variables({}))]
    assert "⚠ baseline time-capped at 53% of the steps (1 of 2 runs): compare with care" in shown
    assert sum("time-capped" in f for f in shown) == 1  # the best is the baseline: said once


def test_the_clock_and_the_duty_stop_when_the_loop_has_ended() -> None:
    now = [1000.0]
    bridge = Bridge()
    bridge(SessionStarted("t", "autoresearch/t", "c1", 0, started_at=1000.0))
    app = SupervisorApp(RecordingControls(), bridge, clock=lambda: now[0])

    def shown() -> str:
        return " ".join(f.plain for f in app.main.query_one(HeaderPane)._fields)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        now[0] = 1065.0
        bridge(SessionEnded("reached the budget of 6 experiments"))
        await until(pilot, lambda: app.view.ended is not None and "0:01:05" in shown(), what="the end")
        now[0] = 5000.0
        app._tick()
        assert "0:01:05" in shown()

    drive(app, go, size=(120, 40))


def test_a_note_and_a_stop_after_the_run_stay_on_screen_until_they_take_effect() -> None:
    from arsup.core.events import NoteAdded, Proposing, StopAfterRunAsked

    bridge = Bridge()
    bridge(SessionStarted("t", "autoresearch/t", "c1", 0))
    app = SupervisorApp(RecordingControls(), bridge)

    def shown() -> str:
        return " ".join(f.plain for f in app.main.query_one(HeaderPane)._fields)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.branch, what="the session")
        bridge(StateChanged("training", "0002"))
        bridge(NoteAdded("try a smaller model"))
        bridge(StopAfterRunAsked())  # asked from another screen or `arsup stop --after-run`
        await until(pilot, lambda: "✎ note for the next proposal: try a smaller model" in shown(), what="the note")
        assert "stopping after this run" in shown()
        bridge(Proposing("0003"))  # its prompt has the note
        await until(pilot, lambda: "✎" not in shown(), what="the note read")

    drive(app, go, size=(120, 40))
