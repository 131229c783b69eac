"""The only door from engine and monitor threads into the screen: events become Textual messages.

Widgets may only be touched on the app's own loop, so the engine's
subscriber and the monitor's callback do nothing but `post_message`, which
Textual makes thread-safe. The bridge subscribes before `engine.prepare()`
(which already emits the session's first events, before any app runs) and
holds what arrives until the screen attaches; messages go to the main
screen and bubble up to the app, so a screen that is closing receives (and
passes on) nothing. After detach, events are dropped instead of failing
inside the engine thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from arsup.core.events import ApprovalRequested, Event, Notice, SessionEnded
from arsup.core.monitor import Sample


class EngineEvent(Message):
    """One engine event, delivered on the app's loop."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class MonitorSampled(Message):
    """One GPU/host sample from the monitor thread."""

    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample


class ApprovalClosed(Message):
    """An approval's future is done: answered here, or cancelled by the engine (stop, policy change)."""

    def __init__(self, request: ApprovalRequested) -> None:
        super().__init__()
        self.request = request


class Bridge:
    """Engine subscriber and monitor callback in one; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: MessagePump | None = None
        self._held: list[Message] = []
        self._detached = False
        self.ended: SessionEnded | None = None  # how the loop ended, for the exit code

    def __call__(self, event: Event) -> None:
        """The engine subscriber (runs in engine threads)."""
        if isinstance(event, SessionEnded):
            self.ended = event
        self._post(EngineEvent(event))
        if isinstance(event, ApprovalRequested):
            request = event
            event.future.add_done_callback(lambda _future: self._closed(request))

    def sampled(self, sample: Sample) -> None:
        """The monitor callback (runs in the monitor thread); samples before attach are not worth keeping."""
        with self._lock:
            target = self._target
        if target is not None:
            self._send(target, MonitorSampled(sample))

    def attach(self, target: MessagePump) -> None:
        """Start delivering to `target` (the main screen), first what was held."""
        with self._lock:
            self._target, held, self._held = target, self._held, []
            for message in held:
                self._send(target, message)

    def detach(self) -> None:
        """The app is closing: from now on events are dropped."""
        with self._lock:
            self._target, self._held, self._detached = None, [], True

    def _closed(self, request: ApprovalRequested) -> None:
        self._post(ApprovalClosed(request))

    def _post(self, message: Message) -> None:
        with self._lock:
            if self._target is None:
                if not self._detached:
                    self._held.append(message)
                return
            target = self._target
        self._send(target, message)

    @staticmethod
    def _send(target: MessagePump, message: Message) -> None:
        with contextlib.suppress(RuntimeError):  # the app's loop closed between our check and the post
            target.post_message(message)


class LogToScreen(logging.Handler):
    """Warnings the core logs (a run's escaped processes, a failing GPU reader) become notices on screen.

    While the screen is up, Textual captures stderr, so a warning printed
    there would never be seen.
    """

    def __init__(self, bridge: Bridge) -> None:
        super().__init__(logging.WARNING)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        self.bridge(Notice(record.getMessage(), "error" if record.levelno >= logging.ERROR else "warning"))


def answer(future: Future[Any], value: Any) -> bool:
    """Set an approval's answer unless the engine already withdrew the question; True if it was set."""
    if future.done():
        return False
    try:
        future.set_result(value)
    except InvalidStateError:  # cancelled by the engine a moment ago
        return False
    return True
