"""The only door from other threads into the screen: events and samples become Textual messages.

Widgets may only be touched on the app's own loop, so the event subscriber
(an in-process engine's, or a control client's reader) and the monitor's
callback do nothing but `post_message`, which Textual makes thread-safe.
The bridge is fed before any app runs (an engine's `prepare()`, a client's
snapshot) and holds what arrives until the screen attaches; those events
are marked `replayed`: they tell what happened before the screen opened,
and nobody needs to be alerted to them again. Messages go to the main
screen and bubble up to the app, so a screen that is closing receives (and
passes on) nothing. After detach, events are dropped instead of failing
inside the sender's thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from textual.message import Message
from textual.message_pump import MessagePump

from arsup.core.events import ApprovalRequested, Event, Notice, SessionEnded
from arsup.core.monitor import Sample


class LoopEvent(Message):
    """One loop event, delivered on the app's loop; `replayed` when it arrived before the screen did."""

    def __init__(self, event: Event, replayed: bool = False) -> None:
        super().__init__()
        self.event = event
        self.replayed = replayed


class MonitorSampled(Message):
    """One GPU/host sample from the monitor thread."""

    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample


class ApprovalClosed(Message):
    """An approval's future is done: answered here, or cancelled by the loop (answered elsewhere, withdrawn)."""

    def __init__(self, request: ApprovalRequested) -> None:
        super().__init__()
        self.request = request


class Bridge:
    """Event subscriber and monitor callback in one; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: MessagePump | None = None
        self._held: list[Message] = []
        self._detached = False
        self._ended = threading.Event()
        self.ended: SessionEnded | None = None  # how the loop ended (the first word on it), for the exit code

    def __call__(self, event: Event) -> None:
        """The event subscriber (runs in the loop's or the client's threads)."""
        if isinstance(event, SessionEnded) and self.ended is None:
            self.ended = event
            self._ended.set()
        self._post(LoopEvent(event))
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

    def wait_ended(self, timeout: float) -> bool:
        """True once the loop has said it ended (from any thread; the app's loop may be stuck)."""
        return self._ended.wait(timeout)

    def _closed(self, request: ApprovalRequested) -> None:
        self._post(ApprovalClosed(request))

    def _post(self, message: Message) -> None:
        with self._lock:
            if self._target is None:
                if not self._detached:
                    if isinstance(message, LoopEvent):
                        message.replayed = True
                    self._held.append(message)
                return
            target = self._target
        self._send(target, message)

    @staticmethod
    def _send(target: MessagePump, message: Message) -> None:
        with contextlib.suppress(RuntimeError):  # the app's loop closed between our check and the post
            target.post_message(message)


class LogToScreen(logging.Handler):
    """Warnings logged in the screen's process (a failing GPU reader, a line from the loop that could
    not be read) become notices on screen; the loop's own warnings arrive as `Notice` events.

    While the screen is up, Textual captures stderr, so a warning printed
    there would never be seen.
    """

    def __init__(self, bridge: Bridge) -> None:
        super().__init__(logging.WARNING)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        self.bridge(Notice(record.getMessage(), "error" if record.levelno >= logging.ERROR else "warning"))
