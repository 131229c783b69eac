"""Proposals made ahead of need, so the hardware never waits for the agent.

In karpathy's own overnight run the GPU sat idle for the 20-25 s the agent
took to think after every run. Here proposer threads make the next proposals
while the current runs train; the loop takes prepared proposals in the order
they were finished.

Invariants:

* `make` runs on the `workers` proposer threads only, each one call at a
  time: with one worker (every agent but one that says it can do more at
  once, see `agents.base.lanes_of`) the agent never sees two calls at once,
  and the loop's threads are free to train.
* The queue and the makes under way never hold more than `depth` proposals
  beyond those the loop is waiting for, and grow past that only after
  `ahead()`: nothing is made (no tokens spent) that the loop did not allow.
* Nothing made is dropped: `close()` returns every item never taken, so the
  loop can record it; an error of `make` reaches the loop at its next `take`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
POLL_S = 0.2  # how often a waiting take looks at its cancel event
JOIN_S = 30.0  # how long close() waits for a make under way (an agent that ignores its cancel event)


class Pipeline(Generic[T]):
    def __init__(self, make: Callable[[], T | None], depth: int, workers: int = 1) -> None:
        self.depth = depth
        self._make = make
        self._cond = threading.Condition()
        self._queue: deque[T] = deque()
        self._waiting = 0  # takes blocked for an item
        self._ahead = False  # the loop allows making up to `depth` ahead
        self._busy = 0  # makes under way
        self._dry = False  # a make returned None: no more items will come (those under way still may)
        self._error: BaseException | None = None
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"arsup-proposer-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def ahead(self) -> None:
        """Allow making up to `depth` items beyond what is asked for (the loop calls it when a run starts)."""
        with self._cond:
            self._ahead = True
            self._cond.notify_all()

    def push(self, item: T) -> None:
        """Put an item first in line (the loop hands one back to run again)."""
        with self._cond:
            self._queue.appendleft(item)
            self._cond.notify_all()

    def take(self, cancel: threading.Event) -> T | None:
        """The next item, made now if none is ready; None when `make` ran dry or `cancel` is set."""
        with self._cond:
            self._ahead = False  # until the loop starts its next run
            self._waiting += 1
            self._cond.notify_all()
            try:
                while not self._queue:
                    if self._error is not None:
                        raise self._error
                    if (self._dry and not self._busy) or cancel.is_set() or self._closed:
                        return None
                    self._cond.wait(POLL_S)
                return self._queue.popleft()
            finally:
                self._waiting -= 1

    def close(self) -> list[T]:
        """Stop making (the caller cancels a make under way); return the items never taken, oldest first."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(JOIN_S)
        with self._cond:
            left, self._queue = list(self._queue), deque()
        return left

    def _wanted(self) -> bool:
        target = self._waiting + (self.depth if self._ahead else 0)
        return not self._dry and self._error is None and len(self._queue) + self._busy < target

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._wanted():
                    self._cond.wait()
                if self._closed:
                    return
                self._busy += 1
            try:
                item = self._make()
            except BaseException as exc:  # handed to the loop's thread, which decides what it means
                with self._cond:
                    self._error = self._error or exc
                    self._busy -= 1
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy -= 1
                if item is None:
                    self._dry = True
                else:
                    self._queue.append(item)
                self._cond.notify_all()
                if item is None:
                    return
