"""Tests for arsup.core.runner, with real processes.

Every child gets a marker in its environment, so that at the end of the module
any process of ours still alive anywhere (even one that escaped into its own
session and was re-parented) is found and reported as a failure.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from arsup.core.runner import RunOutcome, Run, RunSpec, _LineAssembler, build_env, run

MARK = "ARSUP_RUNNER_TEST_MARK"
MARK_VALUE = uuid.uuid4().hex

pytestmark = pytest.mark.timeout(60)


def _ours() -> list[psutil.Process]:
    """Live processes started by this module's tests, wherever they are in the process tree."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == MARK_VALUE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module", autouse=True)
def no_process_left_in_module() -> Iterator[None]:
    yield
    leftovers = _ours()
    for proc in leftovers:  # do not leave them to the rest of the test session either
        proc.kill()
    assert leftovers == [], f"processes left behind: {leftovers}"


@pytest.fixture(autouse=True)
def no_child_or_thread_left() -> Iterator[None]:
    yield
    children = psutil.Process().children(recursive=True)  # zombies included: each run must reap
    assert children == [], f"child processes left behind: {children}"
    threads = [t.name for t in threading.enumerate() if t.name.startswith("arsup-")]
    assert threads == [], f"threads left behind: {threads}"


def _spec(tmp_path: Path, code: str, *, timeout: float = 20.0, kill_grace: float = 0.5) -> RunSpec:
    """A spec that runs ``code`` with this interpreter (``exec``: the shell becomes Python)."""
    command = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(code))}"
    env = build_env(os.environ, extra={MARK: MARK_VALUE})
    return RunSpec(command, tmp_path, tmp_path / "logs" / "run.log", env, timeout, kill_grace)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


class _Collector:
    """An output subscriber that records every call."""

    def __init__(self) -> None:
        self.calls = 0
        self.lines: list[str] = []
        self.partials: list[str] = []
        self.seen = threading.Event()  # set once a line "ready" arrives

    def __call__(self, lines: list[str], partial: str) -> None:
        self.calls += 1
        self.lines.extend(lines)
        self.partials.append(partial)
        if "ready" in lines:
            self.seen.set()


# Children that start grandchildren record their pids in pids.txt, then print "ready".
SPAWN_AND_HANG = """
    import subprocess, sys, time
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    kids = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True),
        subprocess.Popen([sys.executable, "-c", code], start_new_session=True),
    ]
    with open("pids.txt", "w") as f:
        f.write(" ".join(str(k.pid) for k in kids))
    print("ready")
    time.sleep(60)
"""


def test_normal_exit_writes_merged_output_to_log(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"))
    assert outcome.exit_code == 0
    assert not outcome.timed_out and not outcome.killed and outcome.kill_reason == "" and outcome.start_error == ""
    assert 0 < outcome.wall_s < 10
    log = (tmp_path / "logs" / "run.log").read_text()
    assert "to stdout\n" in log and "to stderr\n" in log


def test_nonzero_exit_code(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, "import sys; print('failing'); sys.exit(3)"))
    assert outcome.exit_code == 3
    assert not outcome.timed_out and not outcome.killed


def test_flood_is_logged_in_full_and_delivered_in_batches(tmp_path: Path) -> None:
    n = 200_000
    collector = _Collector()
    started = time.monotonic()
    outcome = run(_spec(tmp_path, f"for i in range({n}): print('line', i)"), collector)
    assert outcome.exit_code == 0
    assert time.monotonic() - started < 20
    log_lines = (tmp_path / "logs" / "run.log").read_text().splitlines()
    expected = [f"line {i}" for i in range(n)]
    assert log_lines == expected
    assert collector.lines == expected
    assert collector.calls < n / 100


def test_carriage_returns_collapse_to_what_a_terminal_shows(tmp_path: Path) -> None:
    code = r"""
        import sys, time
        sys.stdout.write("step 1\rstep 2\rstep 3\ndone\r\nprogress 10%\rprogress 20%")
        sys.stdout.flush()
        time.sleep(0.5)
    """
    collector = _Collector()
    outcome = run(_spec(tmp_path, code), collector)
    assert outcome.exit_code == 0
    assert collector.lines == ["step 3", "done", "progress 20%"]  # the partial line is complete at EOF
    assert "progress 20%" in collector.partials
    assert collector.partials[-1] == ""
    assert (tmp_path / "logs" / "run.log").read_bytes() == b"step 1\rstep 2\rstep 3\ndone\r\nprogress 10%\rprogress 20%"


def test_line_assembler_handles_splits_between_chunks() -> None:
    assembler = _LineAssembler()
    euro = "€".encode()
    assert assembler.feed(b"a\r") == ([], "a")
    assert assembler.feed(b"\nb" + euro[:1]) == (["a"], "b")  # "\r\n" split across chunks
    assert assembler.feed(euro[1:] + b"\rc\r") == ([], "c")  # a character split across chunks
    assert assembler.feed(b"\xffd\n") == (["\ufffdd"], "")  # undecodable bytes do not stop anything
    assert assembler.feed(b"tail") == ([], "tail")
    assert assembler.close() == ["tail"]


def test_line_assembler_keeps_endless_progress_and_huge_lines_bounded() -> None:
    assembler = _LineAssembler()
    for i in range(10_000):
        assert assembler.feed(f"\rstep {i}".encode()) == ([], f"step {i}")
    assert len(assembler._tail) < 20  # overwritten updates are not kept
    huge = "x" * (2 << 20)
    assert assembler.feed(f"\n{huge}".encode()) == (["step 9999", huge], "")


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    collector = _Collector()
    outcome = run(_spec(tmp_path, SPAWN_AND_HANG, timeout=2.0, kill_grace=0.5), collector)
    assert collector.seen.is_set(), "the child did not get to start its grandchildren"
    assert outcome.timed_out and not outcome.killed
    assert outcome.kill_reason == "timed out after 2 s"
    assert outcome.exit_code == -signal.SIGTERM
    assert 2.0 <= outcome.wall_s < 5.0
    pids = _read_pids(tmp_path / "pids.txt")
    assert len(pids) == 3
    assert all(_gone(pid) for pid in pids), [p for p in pids if not _gone(p)]


def test_child_ignoring_sigterm_ends_by_sigkill_after_grace(tmp_path: Path) -> None:
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready")
        time.sleep(60)
    """
    collector = _Collector()
    job = Run(_spec(tmp_path, code, kill_grace=0.7), collector)
    job.start()
    assert collector.seen.wait(10)
    asked = time.monotonic()
    job.kill("stop")
    outcome = job.wait()
    assert outcome.exit_code == -signal.SIGKILL
    assert 0.7 <= time.monotonic() - asked < 5


def test_kill_from_another_thread_ends_the_tree_at_once(tmp_path: Path) -> None:
    collector = _Collector()
    job = Run(_spec(tmp_path, SPAWN_AND_HANG, kill_grace=0.5), collector)
    job.start()
    killer = threading.Thread(target=lambda: collector.seen.wait(10) and job.kill("user stop"))
    killer.start()
    outcome = job.wait()
    killer.join()
    assert collector.seen.is_set()
    assert outcome.killed and not outcome.timed_out
    assert outcome.kill_reason == "user stop"
    assert outcome.exit_code == -signal.SIGTERM
    assert outcome.wall_s < 5  # far from the 20 s timeout
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))
    job.kill("again")  # idempotent, and harmless once it is over
    assert job.wait() is outcome


@pytest.mark.parametrize("output", ["", "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL"])
def test_processes_left_behind_by_a_finished_run_are_killed(tmp_path: Path, output: str) -> None:
    code = f"""
        import subprocess, sys
        # Left in the run's process group, with or without the output pipe: the run is not over until it is gone.
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], {output})
        open("pids.txt", "w").write(str(kid.pid))
    """
    outcome = run(_spec(tmp_path, code))
    assert outcome.exit_code == 0 and not outcome.killed
    assert outcome.wall_s < 5
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))


def test_descendant_seen_earlier_is_killed_after_leaving_the_tree(tmp_path: Path) -> None:
    code = """
        import subprocess, sys, time
        # The middle process starts a detached sleeper and exits: the sleeper is no longer a
        # descendant, not in the group and not on the pipe; only the earlier sightings know it.
        middle = (
            "import subprocess, sys, time;"
            "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
            " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
            "open('pids.txt', 'w').write(str(kid.pid)); time.sleep(1.0)"
        )
        subprocess.Popen([sys.executable, "-c", middle])
        print("ready")
        time.sleep(60)
    """
    collector = _Collector()
    outcome = run(_spec(tmp_path, code, timeout=2.5), collector)
    assert collector.seen.is_set() and outcome.timed_out
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finding pipe holders needs /proc")
def test_daemon_that_escaped_unseen_is_found_through_the_pipe(tmp_path: Path) -> None:
    code = """
        import subprocess, sys
        # A new session and the main process gone at once: only the inherited pipe leads to it.
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        open("pids.txt", "w").write(str(kid.pid))
    """
    started = time.monotonic()
    outcome = run(_spec(tmp_path, code))
    assert outcome.exit_code == 0
    assert time.monotonic() - started < 5
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))


def test_peak_rss_sees_an_allocation(tmp_path: Path) -> None:
    small = run(_spec(tmp_path, "import time; time.sleep(0.6)"))
    big = run(_spec(tmp_path, "import time; data = b'x' * (100 << 20); time.sleep(0.6)"))
    assert small.exit_code == 0 and big.exit_code == 0
    assert small.peak_rss_mb > 1
    assert big.peak_rss_mb - small.peak_rss_mb > 80


def test_failing_callback_does_not_stop_the_drain(tmp_path: Path) -> None:
    calls = []

    def broken(lines: list[str], partial: str) -> None:
        calls.append(len(lines))
        raise RuntimeError("subscriber bug")

    code = """
        import time
        for i in range(5):
            print(i, flush=True)
            time.sleep(0.05)
    """
    outcome = run(_spec(tmp_path, code), broken)
    assert outcome.exit_code == 0
    assert len(calls) >= 2  # still called after the first failure
    assert (tmp_path / "logs" / "run.log").read_text() == "0\n1\n2\n3\n4\n"


def test_missing_cwd_is_a_start_error_not_an_exception(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "print('never')")
    spec.cwd = tmp_path / "missing"
    outcome = run(spec)
    assert outcome == RunOutcome(exit_code=None, start_error=outcome.start_error)
    assert "missing" in outcome.start_error
    assert outcome.start_error in (tmp_path / "logs" / "run.log").read_text()


def test_kill_before_start_launches_nothing(tmp_path: Path) -> None:
    job = Run(_spec(tmp_path, "open('ran', 'w')"))
    job.kill("stopped early")
    job.start()
    outcome = job.wait()
    assert outcome == RunOutcome(exit_code=None, killed=True, kill_reason="stopped early")
    assert not (tmp_path / "ran").exists()


def test_build_env_keeps_an_allow_list_and_drops_secrets() -> None:
    base = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0",
        "OPENAI_API_KEY": "sk-1",
        "HF_TOKEN": "hf-1",
        "MY_SECRET": "s",
        "DB_PASSWORD": "p",
        "UNKNOWN_THING": "u",
        "GITHUB_TOKEN": "g",
        "HF_HOME": "/cache/hf",
        "TORCH_API_KEY": "t",  # a secret under an allowed prefix
    }
    assert build_env(base) == {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0",
        "HF_HOME": "/cache/hf",
        "PYTHONUNBUFFERED": "1",
    }
    env = build_env(base, pass_env=["HF_TOKEN", "NOT_SET"], extra={"ARSUP_SEED": "7", "PATH": "/opt/bin"})
    assert env == {
        "PATH": "/opt/bin",  # extra wins
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0",
        "HF_HOME": "/cache/hf",
        "HF_TOKEN": "hf-1",  # named in pass_env, so it passes although HF_* alone would not let it
        "ARSUP_SEED": "7",
        "PYTHONUNBUFFERED": "1",
    }
    assert build_env({"PYTHONUNBUFFERED": "0"}, extra={"PYTHONUNBUFFERED": "0"})["PYTHONUNBUFFERED"] == "1"
