"""A full disk is arsup's problem, never the run's: the loop looks before each experiment and after each run.

On a full disk the loop records nothing more but which experiments are to
be measured again (room kept for that: disk.Reserve), then ends with the
state folder's error (exit 2). Called on the loop and slot threads; `_lock`
guards `_full`, so the marks are written once, whoever finds it first.
"""

from __future__ import annotations

import threading
from pathlib import Path

from arsup.core import disk, journal
from arsup.core.experiment import Status


class DiskWatch:
    def __init__(self, root: Path, log: journal.Journal, tag: str) -> None:
        self.root, self.journal, self.tag = root, log, tag
        self.reserve = disk.Reserve(log.dir)  # room for the last lines, should the disk fill
        self._lock = threading.Lock()
        self._full: disk.DiskFull | None = None

    def is_full(self, error: BaseException | None = None) -> bool:
        return disk.is_full(self.journal.dir, error)

    def at_start(self) -> disk.DiskFull:
        """A start on a full disk: said like the loop's stop, with what is still to be measured again."""
        marked = sorted(self.journal.unmeasured())
        return disk.DiskFull(disk.full_message(self.root, self.journal.dir, disk.free_bytes(self.journal.dir), marked))

    def stop(self, why: str = "") -> disk.DiskFull:
        """The loop ends: the disk has no room for what it records (`why`: the write that failed, if one
        did). Said once, with what fills the disk.

        The reserve is given back first, so the lines that follow have room:
        each experiment recorded as running is marked to be measured again at
        the next start (its run proved nothing about the code), and nothing
        else is touched (no git call on a full disk: the restart does the rest)."""
        with self._lock:
            if self._full is None:
                free = disk.free_bytes(self.journal.dir)
                self.reserve.release()
                running = [e.id for e in self.journal.experiments(self.tag) if e.status == Status.RUNNING]
                marked = []
                try:
                    for experiment_id in running:
                        self.journal.append("unmeasured", tag=self.tag, experiment=experiment_id, reason="a full disk")
                        marked.append(experiment_id)
                except journal.JournalError:
                    pass  # not even the reserve's room: the restart finds it interrupted, a crash
                self._full = disk.DiskFull(disk.full_message(self.root, self.journal.dir, free, marked, why))
            return self._full
