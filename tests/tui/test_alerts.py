"""A question or a new best reaches a person who looks elsewhere: the bell and a desktop notification."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from textual.pilot import Pilot

from arsup.config import NotifyConfig
from arsup.core import policy
from arsup.core.events import ApprovalRequested, ExperimentFinished, SessionStarted
from arsup.core.experiment import Experiment, Status
from arsup.tui.alerts import desktop_notification, new_best_words, question_words
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from tests.tui.conftest import RecordingControls, drive, until

BASELINE = Experiment("0001", "t", "c0", "baseline", "arsup", commit="c0", status=Status.KEEP, metric=3.0,
                      is_baseline=True)
BETTER = Experiment("0002", "t", "c0", "wider\x07\x1b]0;pwned\x07", "llm", commit="c2", status=Status.KEEP, metric=2.5)
WORSE = Experiment("0003", "t", "c2", "deeper", "llm", commit="c3", status=Status.DISCARD, metric=2.7)


def test_the_sequences_carry_no_control_character_of_the_text() -> None:
    sent = desktop_notification("tinylm: new best\x07\x1b]52;c;evil\x1b\\ (0002)\n" + "x" * 500)
    assert sent.startswith("\x1b]9;arsup: tinylm: new best ]52;c;evil \\ (0002) x") and sent.count("\x1b") == 2
    osc9, osc777 = sent.split("\x07")[:2]
    assert osc777.startswith("\x1b]777;notify;arsup;tinylm: new best") and len(osc9) < 250
    assert sent.endswith("\x07") and sent.count("\x07") == 2


def test_the_words() -> None:
    question = ApprovalRequested(policy.RUN, WORSE, Future(), {}, "q3")
    assert question_words("tinylm", question) == "tinylm waits for you: train 0003 ('deeper')?"
    assert new_best_words("tinylm", "val_bpb", BETTER).startswith("tinylm: new best val_bpb 2.500000 (0002: wider")


def alerts_of(notify: NotifyConfig) -> list[tuple[str, str]]:
    """What a screen says aloud for: a replayed question (none), the baseline, a discard, a new best, a question."""
    bridge = Bridge()
    app = SupervisorApp(RecordingControls(), bridge, notify=notify)
    heard: list[tuple[str, str]] = []
    app.bell = lambda: heard.append(("bell", ""))  # type: ignore[method-assign]
    app.write_to_terminal = lambda data: heard.append(("terminal", data))  # type: ignore[method-assign]
    bridge(SessionStarted("t", "autoresearch/t", "c0", 0, project="/srv/tinylm"))
    bridge(ApprovalRequested(policy.RUN, BASELINE, Future(), {}, "q1"))  # from the snapshot: already known

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.pending is not None, what="the replayed question")
        bridge(ExperimentFinished(BASELINE, BASELINE))
        bridge(ExperimentFinished(WORSE, BASELINE))
        bridge(ExperimentFinished(BETTER, BETTER))
        bridge(ApprovalRequested(policy.RUN, WORSE, Future(), {}, "q4"))
        await until(pilot, lambda: len(app.view.history) == 3 and app.view.pending is not None
                    and app.view.pending.question_id == "q4", what="the events")
        await pilot.pause(0.1)

    drive(app, go)
    return heard


@pytest.mark.slow
def test_a_new_best_and_a_question_ring_and_notify() -> None:
    heard = alerts_of(NotifyConfig())
    assert [kind for kind, _ in heard] == ["bell", "terminal", "bell", "terminal"]
    assert "tinylm: new best val_bpb 2.500000 (0002: wider" in heard[1][1]
    assert "\x1b]9;arsup: tinylm waits for you: train 0003 ('deeper')?\x07" in heard[3][1]


@pytest.mark.slow
def test_each_alert_can_be_turned_off() -> None:
    assert [kind for kind, _ in alerts_of(NotifyConfig(bell=False))] == ["terminal", "terminal"]
    assert [kind for kind, _ in alerts_of(NotifyConfig(desktop=False))] == ["bell", "bell"]
    assert alerts_of(NotifyConfig(bell=False, desktop=False)) == []


@pytest.mark.slow
def test_headless_writes_nothing_to_a_terminal() -> None:
    app = SupervisorApp(None, Bridge())

    async def go(pilot: Pilot[Any]) -> None:
        assert app.is_headless
        app.write_to_terminal("\x1b]9;arsup: x\x07")  # no terminal to reach: nothing happens

    drive(app, go)
