"""The fast tier's guard (tests/fast_tier.py): a fast test that starts a process fails, a slow one may."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.fast_tier import MARKED_SLOW_WHOLE, ProcessStarted, Guard

ROOT = Path(__file__).resolve().parents[1]


def test_an_armed_guard_refuses_a_start_and_remembers_it_and_a_disarmed_one_lets_it_be() -> None:
    guard = Guard()
    guard("subprocess.Popen", ("git", ["git", "init"], None, None))
    guard.arm()
    guard("open", ("/etc/hosts", "r", 0))  # not a start
    with pytest.raises(ProcessStarted, match=r"starts a process \(subprocess.Popen \['git', 'init'\]\): mark it slow"):
        guard("subprocess.Popen", ("git", ["git", "init"], None, None))
    with pytest.raises(ProcessStarted, match="os.system 'ls'"):
        guard("os.system", ("ls",))
    assert guard.disarm() == ["subprocess.Popen ['git', 'init']", "os.system 'ls'"]
    guard("os.fork", ())  # disarmed
    assert guard.started == ["subprocess.Popen ['git', 'init']", "os.system 'ls'"]


def test_a_thread_alive_before_the_test_is_not_the_tests_and_one_it_started_is() -> None:
    guard = Guard()
    go, done = threading.Event(), threading.Event()
    refused: list[BaseException] = []

    def start_later() -> None:
        go.wait(10)
        try:
            guard("os.posix_spawn", ("/bin/true", ["true"], {}))
        except ProcessStarted as exc:
            refused.append(exc)
        done.set()

    older = threading.Thread(target=start_later)
    older.start()
    guard.arm()
    go.set()
    assert done.wait(10) and refused == [] and guard.started == []
    older.join()

    go.clear()
    done.clear()
    newer = threading.Thread(target=start_later)
    newer.start()
    go.set()
    assert done.wait(10) and len(refused) == 1 and guard.disarm() == ["os.posix_spawn '/bin/true'"]
    newer.join()


def test_the_whole_module_mark_is_found_on_its_own_line_only() -> None:
    assert MARKED_SLOW_WHOLE.search("import pytest\n\npytestmark = pytest.mark.slow  # git\n")
    assert MARKED_SLOW_WHOLE.search("pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]\n")
    assert not MARKED_SLOW_WHOLE.search("pytestmark = pytest.mark.timeout(60)\n\n@pytest.mark.slow\ndef test(): ...\n")
    assert not MARKED_SLOW_WHOLE.search("    pytestmark = pytest.mark.slowish\n")


@pytest.mark.slow
def test_in_a_real_session_a_fast_test_that_starts_a_process_fails_and_a_slow_one_passes(tmp_path: Path) -> None:
    """Even when the code under test swallows the refusal; and `-m "not slow"` never imports a slow module."""
    (tmp_path / "test_starts.py").write_text(textwrap.dedent(
        """\
        import subprocess
        import sys

        import pytest


        def test_fast_but_starts_one():
            try:
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            except Exception:
                pass  # swallowed: the guard still fails the test


        def test_fast_and_starts_none():
            assert True


        @pytest.mark.slow
        def test_slow_and_starts_one():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        """
    ))
    slow_whole = "import pytest\n\npytestmark = pytest.mark.slow\n\nraise ImportError('imported')\n"
    (tmp_path / "test_slow_whole.py").write_text(slow_whole)
    base = [sys.executable, "-m", "pytest", "-p", "tests.fast_tier", "-p", "no:cacheprovider", "-q", "-rf",
            "-o", "markers=slow", "--rootdir", str(tmp_path), str(tmp_path / "test_starts.py")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "1 failed, 2 passed" in run.stdout, run.stdout + run.stderr
    assert "FAILED test_starts.py::test_fast_but_starts_one" in run.stdout
    said = f"this test starts a process (subprocess.Popen ['{sys.executable}', '-c', 'pass']): mark it slow"
    assert said in run.stdout

    tier = subprocess.run([*base[:-1], "-m", "not slow", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    summary = tier.stdout.strip().splitlines()[-1]
    assert summary.startswith("1 failed, 1 passed, 1 deselected in "), tier.stdout  # test_slow_whole: never imported
