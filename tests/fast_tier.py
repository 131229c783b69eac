"""The fast tier (`pytest -m "not slow"`) stays fast: a test not marked slow that starts a process fails.

Invariants:
- A test not marked `slow` starts no process in its setup, call or teardown, from its own thread or from
  one started while it ran; the first start fails the test with "this test starts a process: mark it
  slow", even where the code under test swallows the error the start raised.
- Nothing is stood in for: Python's own audit hook sees every start (subprocess, fork, exec, spawn,
  system) and refuses it, as the system would refuse it, only while a fast test runs.
- Threads alive before the test began (a slow test's leftovers in a whole run) are not the test's.
- With exactly `-m "not slow"`, a module marked slow whole (a `pytestmark = pytest.mark.slow` line) is
  not imported: its tests would all be deselected, and litellm, torch, MLflow and Ray cost seconds to
  import.

Why: what makes a test slow here is a process (a training run, git, a Ray head, arsup itself) or a
Textual app; a new test that starts a process without the mark would make the tier slow again unseen.
A Textual app starts no process, so its tests carry the mark by review, not by this guard.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

SLOW = "slow"
MARKED_SLOW_WHOLE = re.compile(r"^pytestmark = .*\bpytest\.mark\.slow\b", re.MULTILINE)
STARTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system", "pty.spawn"}
)


class ProcessStarted(RuntimeError):
    """A fast test started a process."""


class Guard:
    """Armed around one fast test's phase; remembers the first start it refused."""

    def __init__(self) -> None:
        self.armed = False
        self.before: set[threading.Thread] = set()
        self.started: list[str] = []

    def arm(self) -> None:
        self.before = set(threading.enumerate()) - {threading.current_thread()}
        self.started = []
        self.armed = True

    def disarm(self) -> list[str]:
        self.armed = False
        self.before = set()
        return self.started

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or event not in STARTS or threading.current_thread() in self.before:
            return
        what = f"{event} {args[1] if event == 'subprocess.Popen' else args[0]!r}"
        self.started.append(what)
        raise ProcessStarted(f"this test starts a process ({what}): mark it slow")


_guard = Guard()
sys.addaudithook(_guard)  # for the life of the process: an audit hook cannot be removed, so it is armed per test


def _guarded(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.get_closest_marker(SLOW) is not None:
        return (yield)
    _guard.arm()
    try:
        return (yield)
    finally:
        started = _guard.disarm()
        if started:
            pytest.fail(f"this test starts a process ({started[0]}): mark it slow (pytest.mark.slow)", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.getoption("markexpr", "").strip() != f"not {SLOW}" or collection_path.suffix != ".py":
        return None
    if collection_path.name.startswith("test_") and MARKED_SLOW_WHOLE.search(collection_path.read_text()):
        return True
    return None
