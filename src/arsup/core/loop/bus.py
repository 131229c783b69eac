"""The loop's one way out: every event goes to every subscriber, in one order across the loop's threads.

Called from the loop thread, the proposer thread, each slot's thread and the
control callers (a note, a policy change). `_emitting` is held while one
event reaches all subscribers, so no subscriber sees two events interleaved
or out of order; it is reentrant because a subscriber may cause an event.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from arsup.core.events import Event, LoopState, Notice, StateChanged

logger = logging.getLogger(__name__)
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._emitting = threading.RLock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._emitting:
            self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        with self._emitting:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken display must not stop the research
                    logger.exception("a subscriber failed on %s", type(event).__name__)

    def state(self, state: LoopState, detail: str = "") -> None:
        self.emit(StateChanged(state, detail))

    def notice(self, text: str, level: str = "info") -> None:
        self.emit(Notice(text, level))
