"""FileWatcher against the real filesystem and watchdog's real observer.

Each "fires nothing" test ends with a real edit that must fire, so a watcher
that had silently died can't pass by staying quiet.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arsup.core.watch import FileWatcher

pytestmark = pytest.mark.slow  # watchdog's real observer on a real clock: half a second a test

DEBOUNCE_S = 0.15
QUIET_S = DEBOUNCE_S + 0.25  # after the last event: long enough for a pending report to arrive


class Calls:
    """An on_change callback that records each call and the thread it came on."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, path: Path) -> None:
        with self._cond:
            self.paths.append(path)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Path]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.paths) >= count, timeout)
            return list(self.paths)

    def settle(self) -> list[Path]:
        """The calls after a quiet spell in which any pending report would have come."""
        time.sleep(QUIET_S)
        with self._cond:
            return list(self.paths)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "program.md"
    path.write_text("# research program\nv1\n")
    return path


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def watcher(program: Path, calls: Calls) -> Iterator[FileWatcher]:
    w = FileWatcher([program, program.parent / "arsup.toml"], calls, debounce_s=DEBOUNCE_S)
    w.start()
    yield w
    w.stop()


def test_plain_write_fires_once(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    program.write_text("# research program\nv2\n")
    assert calls.wait_for(1) == [program]
    assert calls.settle() == [program]
    assert calls.threads == {"arsup-file-watch"}


def test_atomic_replace_fires_once(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    tmp = program.with_name(".program.md.swp")
    tmp.write_text("# research program\nv2\n")
    os.replace(tmp, program)
    assert calls.wait_for(1) == [program]
    assert calls.settle() == [program]


def test_delete_and_recreate_fires_once(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    program.unlink()
    program.write_text("# research program\nv2\n")
    assert calls.wait_for(1) == [program]
    assert calls.settle() == [program]


def test_a_burst_of_writes_fires_once(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    for i in range(5):
        program.write_text(f"# research program\ndraft {i}\n")
        time.sleep(DEBOUNCE_S / 10)
    assert calls.wait_for(1) == [program]
    assert calls.settle() == [program]


def test_a_file_created_after_start_fires(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    config = program.parent / "arsup.toml"
    config.write_text("[run]\n")
    assert calls.wait_for(1) == [config]
    assert calls.settle() == [config]


def test_identical_content_fires_nothing(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    text = program.read_text()
    program.write_text(text)  # in-place rewrite
    os.utime(program)  # touch
    tmp = program.with_name("program.md.tmp")
    tmp.write_text(text)
    os.replace(tmp, program)  # atomic save of the same bytes
    assert calls.settle() == []
    program.write_text(text + "v2\n")
    assert calls.wait_for(1) == [program]


def test_other_files_in_the_folder_fire_nothing(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    other = program.parent / "train.py"
    other.write_text("print('hi')\n")
    other.write_text("print('changed')\n")
    os.replace(other, program.parent / "notes.md")
    assert calls.settle() == []
    program.write_text("v2\n")
    assert calls.wait_for(1) == [program]


def test_edit_back_to_the_start_content_fires_each_time(watcher: FileWatcher, program: Path, calls: Calls) -> None:
    original = program.read_text()
    program.write_text("v2\n")
    assert calls.wait_for(1) == [program]
    program.write_text(original)
    assert calls.wait_for(2) == [program, program]


def test_stop_is_prompt_and_ends_reporting(program: Path, calls: Calls) -> None:
    w = FileWatcher([program], calls, debounce_s=DEBOUNCE_S)
    w.start()
    started = time.monotonic()
    w.stop()
    assert time.monotonic() - started < 0.5
    assert not any(t.name == "arsup-file-watch" for t in threading.enumerate())
    program.write_text("after stop\n")
    assert calls.settle() == []


def test_a_raising_callback_does_not_stop_watching(program: Path) -> None:
    seen: list[str] = []
    done = threading.Event()

    def explode(path: Path) -> None:
        seen.append(path.read_text())
        if len(seen) == 2:
            done.set()
        raise RuntimeError("reload failed")

    w = FileWatcher([program], explode, debounce_s=DEBOUNCE_S)
    w.start()
    try:
        program.write_text("v2\n")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        program.write_text("v3\n")
        assert done.wait(5)
    finally:
        w.stop()
    assert seen == ["v2\n", "v3\n"]


def test_a_missing_folder_is_refused(tmp_path: Path, calls: Calls) -> None:
    w = FileWatcher([tmp_path / "nowhere" / "program.md"], calls)
    with pytest.raises(OSError):
        w.start()
    w.stop()
