"""The controls' flags, which every part of the loop reads: set by the person (or a signal), waited on by the loop.

Set from any thread (the control callers, a signal handler, a failing slot);
read by the loop, the proposer and the slots. Each is a threading.Event, so no
lock is needed; `stop_reason` is written once, by the first stop, before
`stopped` is set, so a reader that sees the stop sees its reason.
"""

from __future__ import annotations

import threading

STOPPED_BY_USER = "stopped by user"
POLL_S = 0.2  # how often waits look at the stop flag


class Flags:
    def __init__(self) -> None:
        self.stopped = threading.Event()  # stop now: the run is killed, nothing new starts
        self.after_run = threading.Event()  # stop once the experiments under way are done
        self.paused = threading.Event()  # finish the current step, then wait
        self.winding_down = threading.Event()  # the slots take nothing new (a stop, or an end reached)
        self.proposals_cancel = threading.Event()  # a proposal under way ends (the loop stops)
        self.stop_reason = STOPPED_BY_USER  # what a stop is recorded as (a person, or a signal)

    def stop(self, reason: str) -> None:
        """The first stop's reason is the one recorded; every wait of the loop wakes."""
        if not self.stopped.is_set():
            self.stop_reason = reason
        self.stopped.set()
        self.proposals_cancel.set()
        self.winding_down.set()

    def wait_while_paused(self, cancel: threading.Event | None = None) -> None:
        """Until resumed, or `cancel` (default: the stop) is set."""
        cancel = cancel or self.stopped
        while self.paused.is_set() and not cancel.is_set():
            cancel.wait(POLL_S)
