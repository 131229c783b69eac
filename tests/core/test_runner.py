"""Tests for arsup.core.runner, with real processes.

Every child gets a marker in its environment, so that at the end of the module
any process of ours still alive anywhere (even one that escaped into its own
session and was re-parented) is found and reported as a failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from arsup.core.executors.output import Ended
from arsup.core.runner import (
    RUN_MARK,
    Run,
    RunIdentity,
    RunOutcome,
    RunSpec,
    build_env,
    end_recorded,
    run,
)
from tests.conftest import marked_processes

MARK = "ARSUP_RUNNER_TEST_MARK"
MARK_VALUE = uuid.uuid4().hex

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def no_process_left_in_module() -> Iterator[None]:
    yield
    leftovers = marked_processes(MARK, MARK_VALUE)
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


@pytest.mark.slow
def test_normal_exit_writes_merged_output_to_log(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"))
    assert outcome.exit_code == 0
    assert not outcome.timed_out and not outcome.killed and outcome.kill_reason == "" and outcome.start_error == ""
    assert 0 < outcome.wall_s < 10
    log = (tmp_path / "logs" / "run.log").read_text()
    assert "to stdout\n" in log and "to stderr\n" in log


@pytest.mark.slow
def test_nonzero_exit_code(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, "import sys; print('failing'); sys.exit(3)"))
    assert outcome.exit_code == 3
    assert not outcome.timed_out and not outcome.killed


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_peak_rss_sees_an_allocation(tmp_path: Path) -> None:
    small = run(_spec(tmp_path, "import time; time.sleep(0.6)"))
    big = run(_spec(tmp_path, "import time; data = b'x' * (100 << 20); time.sleep(0.6)"))
    assert small.exit_code == 0 and big.exit_code == 0
    assert small.peak_rss_mb > 1
    assert big.peak_rss_mb - small.peak_rss_mb > 80


@pytest.mark.slow
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


@pytest.mark.slow
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


# -- escapes, the reaper shim and dying with the supervisor ----------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reaper shim needs prctl (Linux)")

# Double-forks a sleeper into its own session with its stdio closed, well inside one sampling
# interval, then exits (or hangs, if told to): nothing but a subreaper can find the sleeper.
DOUBLE_FORK = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            with open("pids.tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename("pids.tmp", "pids.txt")
            time.sleep(60)
        os._exit(0)
    os.wait()
    while not os.path.exists("pids.txt"):
        time.sleep(0.005)
    if {hang}:
        print("ready", flush=True)
        time.sleep(60)
"""

# A chain that outruns sampling: every generation ignores SIGTERM, forks the next into a new
# session and exits, every 5 ms. Bounded, so that an escaped chain ends by itself.
FORK_CHAIN = """
    import os, signal, sys, time
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for generation in range(1000):
            time.sleep(0.005)
            if os.fork():
                os._exit(0)
            os.setsid()
        os._exit(0)
    print("ready", flush=True)
    {then}
"""


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize("hang", [False, True], ids=["main-exits", "timeout"])
def test_fast_double_fork_into_a_new_session_cannot_escape(tmp_path: Path, hang: bool) -> None:
    outcome = run(_spec(tmp_path, DOUBLE_FORK.format(hang=hang), timeout=1.5))
    assert outcome.timed_out == hang
    if not hang:
        assert outcome.exit_code == 0
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))
    assert marked_processes(MARK, MARK_VALUE) == []


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize("then", ["pass", "time.sleep(60)"], ids=["main-exits", "timeout"])
def test_a_chain_of_escaping_forks_cannot_outrun_the_kill(tmp_path: Path, then: str) -> None:
    started = time.monotonic()
    outcome = run(_spec(tmp_path, FORK_CHAIN.format(then=then), timeout=1.5, kill_grace=0.3))
    assert time.monotonic() - started < 5  # far from the chain's own 5 s
    assert outcome.timed_out == (then != "pass")
    assert marked_processes(MARK, MARK_VALUE) == []


@pytest.mark.slow
def test_exit_by_any_signal_is_reported_as_minus_the_signal(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGUSR1)"))
    assert outcome.exit_code == -signal.SIGUSR1
    assert not outcome.killed and not outcome.aborted


@pytest.mark.slow
def test_the_command_gets_exactly_the_environment_of_the_spec(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "")
    spec.env = {"PATH": os.environ["PATH"], "LANG": "C", MARK: MARK_VALUE}  # C locale: Python would coerce it
    spec.command = "exec /usr/bin/env -0"
    job = Run(spec)
    job.start()
    assert job.wait().exit_code == 0
    seen = dict(item.split("=", 1) for item in spec.log_path.read_text().split("\0") if item)
    seen.pop("PWD", None)  # the shell may export it
    assert job.identity is not None and len(job.identity.token) >= 16
    assert seen == {**spec.env, RUN_MARK: job.identity.token}  # and the run's marker, for a restart to find it by


@pytest.mark.slow
@linux_only
def test_the_command_holds_no_capability_and_cannot_read_the_shim(tmp_path: Path) -> None:
    """Root keeps CAP_SYS_PTRACE, which reads any process's environment, undumpable or not: the run gets none."""
    code = """
        import os
        print(*(line for line in open("/proc/self/status") if line.startswith("Cap")), sep="", end="")
        try:
            open(f"/proc/{os.getppid()}/environ", "rb").read()
        except OSError as exc:
            print("shim environ:", type(exc).__name__)
        else:
            print("shim environ: read")
    """
    spec = _spec(tmp_path, code)
    assert run(spec).exit_code == 0
    said = dict(line.split(":", 1) for line in spec.log_path.read_text().splitlines())
    assert said["shim environ"].strip() == "PermissionError"
    for kind in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(said[kind], 16) == 0, kind
    if os.geteuid() == 0:  # the shim may empty the bounding set: not even a setuid program gains one
        assert int(said["CapBnd"], 16) == 0


@pytest.mark.slow
def test_identity_names_the_started_process(tmp_path: Path) -> None:
    job = Run(_spec(tmp_path, "import os; print(os.getppid(), os.getpgid(0))"))
    assert job.identity is None
    job.start()
    identity = job.identity
    assert job.wait().exit_code == 0
    assert identity is not None and identity.pgid == identity.pid
    parent, group = map(int, (tmp_path / "logs" / "run.log").read_text().split())
    assert group == identity.pgid
    if sys.platform.startswith("linux"):
        assert parent == identity.pid  # the shim, which the command runs under
    assert abs(identity.create_time - time.time()) < 30


# Starts a run in a process of its own, prints the run's identity and sleeps: a supervisor to kill.
HOLDER = """
import dataclasses, json, sys, time
from pathlib import Path
from arsup.core.runner import Run, RunSpec
command, cwd, env, grace = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
job = Run(RunSpec(command, cwd, cwd / "logs" / "run.log", env, 60.0, grace))
job.start()
print(json.dumps(dataclasses.asdict(job.identity)), flush=True)
time.sleep(60)
"""


def _start_in_holder(tmp_path: Path, code: str, kill_grace: float) -> tuple[subprocess.Popen[str], RunIdentity]:
    """Start ``code`` as a run supervised by another process; wait until the run prints "ready"."""
    spec = _spec(tmp_path, code, kill_grace=kill_grace)
    argv = [sys.executable, "-c", HOLDER, spec.command, str(tmp_path), json.dumps(spec.env), str(kill_grace)]
    holder = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    identity = RunIdentity(**json.loads(holder.stdout.readline()))
    deadline = time.monotonic() + 10
    while "ready" not in (spec.log_path.read_text() if spec.log_path.exists() else ""):
        assert time.monotonic() < deadline, "the run did not get ready"
        time.sleep(0.02)
    return holder, identity


def _kill_holder(holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait()
    assert holder.stdout is not None
    holder.stdout.close()


@pytest.mark.slow
@linux_only
def test_run_dies_with_its_supervisor_even_on_sigkill(tmp_path: Path) -> None:
    holder, identity = _start_in_holder(tmp_path, SPAWN_AND_HANG, kill_grace=0.5)
    pids = [identity.pid, *_read_pids(tmp_path / "pids.txt")]
    assert not any(_gone(pid) for pid in pids)
    _kill_holder(holder)
    deadline = time.monotonic() + 2.5  # grace 0.5 s for the grandchild that ignores SIGTERM
    while marked_processes(MARK, MARK_VALUE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marked_processes(MARK, MARK_VALUE) == []
    assert all(_gone(pid) for pid in pids)


# Everything ignores SIGTERM, so with a long grace the tree outlives its supervisor for a while.
STUBBORN = """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    open("pids.txt", "w").write(str(kid.pid))
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_end_recorded_ends_a_live_orphan_tree_and_nothing_else(tmp_path: Path) -> None:
    holder, identity = _start_in_holder(tmp_path, STUBBORN, kill_grace=30)
    _kill_holder(holder)
    time.sleep(0.3)
    assert not _gone(identity.pid)  # orphaned, and the shim waits out its 30 s grace
    # Not that process, and no marker to prove anything by (an older journal's record): untouched.
    assert end_recorded(dataclasses.replace(identity, create_time=identity.create_time + 5, token=""), 0.3) == 0
    assert end_recorded(dataclasses.replace(identity, pid=identity.pid + 1_000_000, token=""), 0.3) == 0
    assert not _gone(identity.pid) and marked_processes(MARK, MARK_VALUE) != []
    started = time.monotonic()
    ended = end_recorded(identity, grace=0.3)
    assert time.monotonic() - started < 5
    assert ended >= 3  # the shim, the command and its sleeper
    assert marked_processes(MARK, MARK_VALUE) == []
    assert end_recorded(identity, grace=0.3) == 0  # gone: nothing to do


# What a dead shim leaves: the command, a child in its group, one in a group of its own (same session),
# and one in a session of its own; all ignore SIGTERM.
ORPHANS = """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sleep = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    kids = [
        subprocess.Popen(sleep),
        subprocess.Popen(sleep, process_group=0),
        subprocess.Popen(sleep, start_new_session=True),
    ]
    open("pids.txt", "w").write(" ".join(str(k.pid) for k in kids))
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
@linux_only
def test_end_recorded_ends_what_a_dead_shim_left_and_nothing_else(tmp_path: Path) -> None:
    """arsup and the shim killed together (pkill -9 -f arsup): the tree goes on under init, found by its
    group, its session and the marker in its environment."""
    holder, identity = _start_in_holder(tmp_path, ORPHANS, kill_grace=30)
    (command,) = psutil.Process(identity.pid).children()
    run_pids = [command.pid, *_read_pids(tmp_path / "pids.txt")]
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    stranger = subprocess.Popen(sleep, start_new_session=True, env=_spec(tmp_path, "").env)  # started after the run
    try:
        for pid in (holder.pid, identity.pid):  # frozen first: neither may see the other die and act on it
            os.kill(pid, signal.SIGSTOP)
        os.kill(identity.pid, signal.SIGKILL)
        _kill_holder(holder)
        deadline = time.monotonic() + 5
        while not _gone(identity.pid):
            assert time.monotonic() < deadline, "the shim did not die"
            time.sleep(0.02)
        assert not any(_gone(pid) for pid in run_pids)  # nothing took them down
        assert end_recorded(dataclasses.replace(identity, token=""), 0.3) == 0  # nothing proves they are the run's
        assert not any(_gone(pid) for pid in run_pids)
        started = time.monotonic()
        assert end_recorded(identity, grace=0.3) == len(run_pids)
        assert time.monotonic() - started < 5
        assert all(_gone(pid) for pid in run_pids)
        assert stranger.poll() is None  # in no group or session of the run's, and without its marker
    finally:
        stranger.kill()
        stranger.wait()
        for pid in run_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# -- watchdogs ------------------------------------------------------------------


@pytest.mark.slow
def test_stall_aborts_a_silent_run(tmp_path: Path) -> None:
    spec = _spec(tmp_path, SPAWN_AND_HANG)
    spec.stall_s = 1.0
    outcome = run(spec)
    assert outcome.aborted and not outcome.killed and not outcome.timed_out
    assert outcome.kill_reason == "aborted: no output for 1 s (stall_s)"
    assert 1.0 <= outcome.wall_s < 4
    assert all(_gone(pid) for pid in _read_pids(tmp_path / "pids.txt"))


@pytest.mark.slow
def test_output_keeps_the_stall_watchdog_quiet(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.2)")
    spec.stall_s = 1.0
    outcome = run(spec)
    assert outcome.exit_code == 0 and not outcome.aborted and outcome.kill_reason == ""


@pytest.mark.slow
def test_memory_watchdog_aborts_a_run_above_the_limit(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "import time; data = b'x' * (200 << 20); print('ready', flush=True); time.sleep(60)")
    spec.max_rss_mb = 100
    outcome = run(spec)
    assert outcome.aborted and not outcome.killed and not outcome.timed_out
    assert re.fullmatch(r"aborted: memory \d+ MB above the limit of 100 MB \(memory_gb\)", outcome.kill_reason)
    assert outcome.peak_rss_mb > 100
    assert outcome.wall_s < 5


@pytest.mark.slow
def test_memory_watchdog_leaves_a_run_under_the_limit_alone(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "import time; data = b'x' * (20 << 20); time.sleep(0.8)")
    spec.max_rss_mb = 200  # the shim's own memory does not count
    outcome = run(spec)
    assert outcome.exit_code == 0 and not outcome.aborted


@pytest.mark.slow
def test_abort_pattern_ends_the_run_on_a_completed_line(tmp_path: Path) -> None:
    code = """
        import sys, time
        print("step 1 loss 2.31")
        sys.stdout.write("step 2 loss nan (progress, not a line yet)\\r")
        sys.stdout.flush()
        time.sleep(0.5)
        print("step 2 loss nan" + " x" * 100)
        time.sleep(60)
    """
    spec = _spec(tmp_path, code)
    spec.abort_pattern = re.compile(r"loss nan")
    started = time.monotonic()
    outcome = run(spec)  # no subscriber: the lines are assembled for the pattern alone
    assert outcome.aborted and not outcome.killed
    assert outcome.kill_reason == "aborted early: the log says 'step 2 loss nan" + " x" * 51 + "...'"
    assert 0.5 <= time.monotonic() - started < 5
    assert outcome.exit_code == -signal.SIGTERM


@pytest.mark.slow
def test_kill_after_an_abort_keeps_the_abort(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "import time; print('FAIL', flush=True); time.sleep(60)", kill_grace=0.3)
    spec.abort_pattern = re.compile(r"\bFAIL\b")
    job = Run(spec)
    job.start()
    deadline = time.monotonic() + 10
    while job._latch.stopped is not Ended.ABORT and time.monotonic() < deadline:
        time.sleep(0.01)
    job.kill("user stop")
    outcome = job.wait()
    assert outcome.aborted and not outcome.killed
    assert outcome.kill_reason == "aborted early: the log says 'FAIL'"


# -- the log cap ------------------------------------------------------------------


@pytest.mark.slow
def test_capped_log_keeps_its_head_a_marker_and_the_metric_at_the_end(tmp_path: Path) -> None:
    cap = 3 << 20
    code = """
        import sys
        out = sys.stdout
        for i in range(400_000):
            out.write(f"step {i:06d} | loss {1.0 / (i + 1):.6f} | a line of a flood\\n")
        print("---")
        print("val_bpb: 0.987654")
    """
    spec = _spec(tmp_path, code)
    spec.max_log_bytes = cap
    collector = _Collector()
    started = time.monotonic()
    outcome = run(spec, collector)
    assert outcome.exit_code == 0 and time.monotonic() - started < 20
    produced = sum(len(line) + 1 for line in collector.lines)  # every line still reached the subscriber
    assert produced > 5 * cap
    data = spec.log_path.read_bytes()
    assert len(data) <= cap
    assert data.startswith(b"step 000000 |") and data.endswith(b"---\nval_bpb: 0.987654\n")
    markers = re.findall(rb"\[arsup: log cut here; (\d+) bytes dropped; the run went on\]\n", data)
    assert len(markers) == 1
    marker_len = len(re.search(rb"\[arsup: log cut here.*\n", data).group())
    assert int(markers[0]) == produced - (len(data) - marker_len)  # the count is exact
    whole_line = re.compile(r"step \d{6} \| loss \S+ \| a line of a flood|\[arsup: log cut here.*\]|---|val_bpb: .*")
    assert all(whole_line.fullmatch(line) for line in data.decode().splitlines())  # no line cut in two
    assert len(data) > cap - (1 << 16)  # the cap is used, not wasted


# -- a full disk -------------------------------------------------------------------

METRIC_AFTER_A_FLOOD = """
    import sys
    for i in range({lines}):
        sys.stdout.write(f"step {{i:07d}} | loss {{1.0 / (i + 1):.6f}} | a line of a flood\\n")
    print("val_bpb: 1.009")
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails with ENOSPC")
def test_a_log_the_disk_refuses_keeps_the_end_of_the_output_in_memory(tmp_path: Path) -> None:
    spec = _spec(tmp_path, METRIC_AFTER_A_FLOOD.format(lines=50_000))  # 3 MB: more than the tail kept
    spec.log_path = Path("/dev/full")
    collector = _Collector()
    outcome = run(spec, collector)
    assert outcome.exit_code == 0 and "/dev/full" in outcome.log_error and "No space left" in outcome.log_error
    assert outcome.unlogged.endswith("step 0049999 | loss 0.000020 | a line of a flood\nval_bpb: 1.009\n")
    dropped = re.search(r"\[arsup: log cut here; (\d+) bytes dropped; the run went on\]\n", outcome.unlogged)
    assert dropped is not None and len(outcome.unlogged) < (1 << 20) + 200
    produced = sum(len(line) + 1 for line in collector.lines)
    assert int(dropped.group(1)) == produced - (len(outcome.unlogged) - len(dropped.group()))  # exact, as on disk


@pytest.mark.slow
def test_a_log_written_in_full_has_nothing_unlogged(tmp_path: Path) -> None:
    outcome = run(_spec(tmp_path, METRIC_AFTER_A_FLOOD.format(lines=10)))
    assert outcome.exit_code == 0 and outcome.log_error == outcome.unlogged == outcome.log_capped == ""


@pytest.mark.slow
def test_a_flood_never_takes_the_disk_below_its_reserve(small_disk: Path) -> None:
    """No cap set, a 30 MB disk, 60 MB of output: the log stops short of the disk's reserve; the run goes on."""
    spec = _spec(small_disk, METRIC_AFTER_A_FLOOD.format(lines=1_000_000))
    outcome = run(spec)
    stats = os.statvfs(small_disk)
    free, total = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
    data = spec.log_path.read_bytes()
    assert outcome.exit_code == 0 and outcome.log_error == "" and outcome.unlogged == ""
    assert data.endswith(b"val_bpb: 1.009\n") and b"[arsup: log cut here; " in data
    assert free > total * 0.4  # the reserve (half of a small disk) stays free, less the log's end
    assert str(spec.log_path) in outcome.log_capped and "free" in outcome.log_capped


@pytest.mark.slow
def test_a_disk_already_below_its_reserve_gets_only_the_end_of_the_log(small_disk: Path) -> None:
    """The reserve is the disk's (half of a small one), not half of whatever is left: run after run, a flood
    would otherwise take half the rest each time."""
    (small_disk / "someone-else.bin").write_bytes(bytes(20 << 20))  # 10 MB free, under the 15 MB reserve
    spec = _spec(small_disk, METRIC_AFTER_A_FLOOD.format(lines=100_000))  # 5 MB
    before = shutil.disk_usage(small_disk).free
    outcome = run(spec)
    data = spec.log_path.read_bytes()
    assert outcome.exit_code == 0 and data.endswith(b"val_bpb: 1.009\n") and data.startswith(b"[arsup: log cut here; ")
    assert len(data) <= (1 << 20) + 200 and before - shutil.disk_usage(small_disk).free <= (1 << 20) + (64 << 10)
    assert "cut at 0 MB to keep 15 MB of its disk free" in outcome.log_capped
