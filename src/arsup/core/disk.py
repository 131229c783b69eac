"""The disk under the project: when it is full, what arsup says, and the room it keeps for its last lines.

A full disk is arsup's problem, not the run's: the loop stops before it
records anything on a disk that has no room (a journal line torn in half, a
git reset that fails halfway), with one message that names the disk, what
fills it and the fix. The rules this module keeps:

* A disk is full below ``FULL_BELOW_BYTES`` free, or when an error in a
  chain of causes says so (ENOSPC, EDQUOT, or git's words for them).
* ``Reserve`` holds a small file of real blocks in the state folder from the
  start of a session. When the loop stops on a full disk it deletes the file
  first, so the lines that say why (and which experiment is to be measured
  again) have room even on a disk another program filled to the last byte.
* Reading what filled the disk costs one walk of ``.arsup/runs``; nothing
  here writes but the reserve.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from arsup.core.journal import JournalError

logger = logging.getLogger(__name__)

FULL_BELOW_BYTES = 1 << 20  # less free space than this, and arsup records nothing more on the disk
RESERVE_NAME = "reserve"  # .arsup/reserve: room kept for the last lines (see Reserve)
RESERVE_BYTES = 256 * 1024
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_GIT_FULL_WORDS = ("no space left on device", "disk quota exceeded")
_BIGGEST = 3  # how many of the biggest files under .arsup/runs the message names


class DiskFull(JournalError):
    """The disk under the state folder is full; the text names it, what fills it and the fix (exit 2)."""


def free_bytes(path: Path) -> int:
    """Free space for this user on the disk holding ``path``; a very large number when it cannot be read."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return 1 << 62
    return stats.f_bavail * stats.f_frsize


def is_full(path: Path, error: BaseException | None = None) -> bool:
    """Whether the disk holding ``path`` is full: too little free space, or ``error`` (or a cause of it) says so."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return True
        if any(words in str(error).lower() for words in _GIT_FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return free_bytes(path) < FULL_BELOW_BYTES


def mount_point(path: Path) -> Path:
    """The folder the disk holding ``path`` is mounted on."""
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def biggest_files(folder: Path, count: int = _BIGGEST) -> tuple[int, list[tuple[Path, int]]]:
    """The bytes under ``folder`` in all, and its ``count`` biggest files with their sizes, biggest first."""
    sizes: list[tuple[int, Path]] = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent) / name
            try:
                sizes.append((path.lstat().st_size, path))
            except OSError:
                continue
    return sum(size for size, _ in sizes), [(path, size) for size, path in sorted(sizes, reverse=True)[:count]]


def full_message(root: Path, state_dir: Path, free: int, unmeasured: list[str], why: str = "") -> str:
    """One sentence: which disk is full (``free`` bytes left), what arsup's runs hold on it, and what to do.

    ``why``: the write that failed, said first when the disk still has room
    (a quota, an I/O error), since "full" would then be wrong."""
    disk = mount_point(state_dir)
    try:
        stats = os.statvfs(state_dir)
        size = f"{_size(free)} free of {_size(stats.f_blocks * stats.f_frsize)}"
    except OSError:
        size = f"{_size(free)} free"
    if why and free >= FULL_BELOW_BYTES:
        what = f"{why} (the disk at {disk}: {size})"
    else:
        what = f"the disk at {disk} is full ({size})"
    runs = state_dir / "runs"
    total, biggest = biggest_files(runs)
    named = ", ".join(f"{path.relative_to(runs)} {_size(nbytes)}" for path, nbytes in biggest)
    held = f"{runs.relative_to(root)} holds {_size(total)}" + (f" (the biggest: {named})" if named else "")
    again = (
        f"; experiment {unmeasured[0]} is measured again" if len(unmeasured) == 1
        else f"; experiments {', '.join(unmeasured)} are measured again" if unmeasured else ""
    )
    return f"{what}; {held}; free some space on it, then start arsup again{again}"


class Reserve:
    """A file of real blocks in the state folder, given back when the disk fills so arsup can say why."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / RESERVE_NAME

    def take(self) -> None:
        """Hold ``RESERVE_BYTES`` (again); on a disk without that much room, hold what fits and go on."""
        try:
            with open(self.path, "ab", buffering=0) as handle:
                missing = RESERVE_BYTES - handle.tell()
                if missing > 0:
                    handle.write(bytes(missing))  # zeros written, not a hole: the blocks are really taken
                    os.fsync(handle.fileno())
        except OSError as exc:
            logger.warning("cannot keep %s for the last lines on a full disk: %s", self.path, exc)

    def release(self) -> None:
        """Give the room back to the disk (for the lines that end the loop)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot remove %s: %s", self.path, exc)


def _size(nbytes: float) -> str:
    """A file or disk size in a sentence: bytes, KB, MB or GB."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{nbytes / 1024:.0f} KB" if nbytes >= 1024 else f"{nbytes:.0f} bytes"
