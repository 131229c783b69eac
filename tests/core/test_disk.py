"""Tests for arsup.core.disk: when a disk is full, what arsup says of it, and the room it keeps."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from arsup.core import disk
from arsup.core.journal import JournalError
from tests.conftest import fill

pytestmark = pytest.mark.slow  # mounts a small tmpfs to fill


def test_a_full_disk_is_known_by_its_error_or_by_its_free_space(small_disk: Path) -> None:
    try:
        raise JournalError("cannot use .arsup/journal.jsonl") from OSError(errno.ENOSPC, "No space left on device")
    except JournalError as exc:
        wrapped = exc
    git_said = Exception("Cmd('git') failed: stderr: 'fatal: unable to write new index file: No space left on device'")
    assert disk.is_full(small_disk, wrapped) and disk.is_full(small_disk, git_said)
    assert not disk.is_full(small_disk, OSError(errno.EACCES, "Permission denied"))
    assert not disk.is_full(small_disk)
    fill(small_disk)
    assert disk.is_full(small_disk) and disk.free_bytes(small_disk) < disk.FULL_BELOW_BYTES


def test_the_message_names_the_disk_what_the_runs_hold_and_the_fix(small_disk: Path) -> None:
    root = small_disk / "repo"
    runs = root / ".arsup" / "runs"
    for name, size in [("0001/run.log", 3000), ("0002/run.log", 2 << 20), ("0002/diff.patch", 10)]:
        (runs / name).parent.mkdir(parents=True, exist_ok=True)
        (runs / name).write_bytes(bytes(size))
    message = disk.full_message(root, root / ".arsup", 0, ["0002"])
    assert message == (
        f"the disk at {small_disk} is full (0 bytes free of 30 MB); .arsup/runs holds 2 MB (the biggest: "
        "0002/run.log 2 MB, 0001/run.log 3 KB, 0002/diff.patch 10 bytes); free some space on it, "
        "then start arsup again; experiment 0002 is measured again"
    )
    assert disk.mount_point(runs / "0002") == small_disk


def test_the_reserve_holds_real_room_and_gives_it_back(small_disk: Path) -> None:
    reserve = disk.Reserve(small_disk)
    reserve.take()
    reserve.take()  # again at the next start: still one reserve
    assert reserve.path.stat().st_size == disk.RESERVE_BYTES
    fill(small_disk)
    assert disk.free_bytes(small_disk) == 0
    reserve.release()
    assert not reserve.path.exists() and disk.free_bytes(small_disk) >= disk.RESERVE_BYTES


def test_a_disk_with_room_is_not_called_full(small_disk: Path) -> None:
    """A log the OS refused on a disk with room (a quota, an I/O error): the message says what failed."""
    root = small_disk / "repo"
    (root / ".arsup").mkdir(parents=True)
    why = "cannot write the log .arsup/runs/0002/run.log: Disk quota exceeded"
    message = disk.full_message(root, root / ".arsup", 20 << 20, ["0002"], why)
    assert message.startswith(f"{why} (the disk at {small_disk}: 20 MB free of 30 MB); .arsup/runs holds 0 bytes;")
    assert "is full" not in message and message.endswith("experiment 0002 is measured again")
