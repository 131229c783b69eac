"""Events held before the app exists (and marked replayed), delivered once it attaches, dropped after it closes."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from textual.message import Message

from arsup.core import policy
from arsup.core.events import ApprovalRequested, Notice, SessionEnded
from arsup.core.experiment import Experiment
from arsup.tui.bridge import ApprovalClosed, Bridge, LogToScreen, LoopEvent


class FakeApp:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def post_message(self, message: Message) -> bool:
        self.messages.append(message)
        return True


def test_hold_attach_detach() -> None:
    bridge, app = Bridge(), FakeApp()
    bridge(Notice("recovered 0003"))
    bridge.attach(app)  # type: ignore[arg-type]
    bridge(Notice("live"))
    bridge.detach()
    bridge(SessionEnded("stopped by user"))
    texts = [m.event.text for m in app.messages if isinstance(m, LoopEvent) and isinstance(m.event, Notice)]
    assert texts == ["recovered 0003", "live"]
    assert [m.replayed for m in app.messages] == [True, False]  # held: it happened before the screen came
    assert len(app.messages) == 2 and bridge.ended is not None  # the end is still known, for the exit code
    assert bridge.wait_ended(0)


def test_the_first_end_is_the_one_kept() -> None:
    bridge = Bridge()
    assert not bridge.wait_ended(0)
    bridge(SessionEnded("crashes in a row", error=True))
    bridge(SessionEnded("the loop closed the connection"))  # a client adds this when the socket closes
    assert bridge.ended == SessionEnded("crashes in a row", error=True)


def test_a_closed_approval_is_reported_whichever_side_closes_it() -> None:
    bridge, app = Bridge(), FakeApp()
    bridge.attach(app)  # type: ignore[arg-type]
    future: Future[Any] = Future()
    request = ApprovalRequested(policy.RUN, Experiment("0001", "t", "c", "baseline", "arsup"), future, {})
    bridge(request)
    future.cancel()  # the engine withdrew it
    assert isinstance(app.messages[-1], ApprovalClosed) and app.messages[-1].request is request
    assert not policy.settle(future, policy.Answer(True))
    fresh: Future[Any] = Future()
    assert policy.settle(fresh, policy.Answer(True)) and not policy.settle(fresh, policy.Answer(False))
    assert fresh.result() == policy.Answer(True)


def test_a_closed_loop_does_not_break_the_engine_thread() -> None:
    class Closed(FakeApp):
        def post_message(self, message: Message) -> bool:
            raise RuntimeError("Event loop is closed")

    bridge = Bridge()
    bridge.attach(Closed())  # type: ignore[arg-type]
    bridge(Notice("late"))  # no exception


def test_core_warnings_become_notices() -> None:
    bridge, app = Bridge(), FakeApp()
    bridge.attach(app)  # type: ignore[arg-type]
    handler = LogToScreen(bridge)
    logger = logging.getLogger("arsup.core.runner")
    logger.addHandler(handler)
    try:
        logger.info("not shown")
        logger.warning("run %s: processes escaped the tree", 42)
    finally:
        logger.removeHandler(handler)
    notices = [m.event for m in app.messages if isinstance(m, LoopEvent)]
    assert notices == [Notice("run 42: processes escaped the tree", "warning")]
