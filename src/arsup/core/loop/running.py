"""The slots open now, and the run each has under way: what a kill or a stop reaches.

`_lock` guards the slot list and each slot's `run`. A run is started under
it (`start`), so a stop that comes while it starts either finds it and
kills it, or comes before and is seen by `start` itself; it is called from
the thread that outlives the run (the reaper's death signal follows it).
A kill or a stop comes from any thread.
"""

from __future__ import annotations

import threading

from arsup.core import runner
from arsup.core.loop.flags import Flags
from arsup.core.slots import Slot


class Running:
    def __init__(self, flags: Flags) -> None:
        self.flags = flags
        self._lock = threading.Lock()
        self._slots: list[Slot] = []  # the first is the project folder itself

    def open(self, slots: list[Slot]) -> None:
        with self._lock:
            self._slots += slots

    def start(self, slot: Slot, run: runner.RunHandle) -> None:
        with self._lock:
            slot.run = run
            run.start()
            if self.flags.stopped.is_set():
                run.kill(self.flags.stop_reason)

    def done(self, slot: Slot) -> None:
        with self._lock:
            slot.run = None

    def kill(self, reason: str) -> None:
        """Kill every slot's run under way (each is recorded with `reason`)."""
        with self._lock:
            for slot in self._slots:
                if slot.run is not None:
                    slot.run.kill(reason)

    def close_worktrees(self) -> list[Slot]:
        """Forget the slots' worktrees (the project folder's slot stays); those forgotten, to give back."""
        with self._lock:
            opened, self._slots = [slot for slot in self._slots if slot.worktree], self._slots[:1]
        return opened
