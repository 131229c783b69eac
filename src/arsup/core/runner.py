"""Run one training process and make sure nothing of it outlives the run.

The research loop starts thousands of training scripts unattended, so a run
must end cleanly whatever the script does: print a flood, draw progress bars,
hang, ignore SIGTERM, spawn workers, or double-fork a helper into its own
session. The rules this module keeps:

* On Linux the command runs under a per-run reaper shim (``reaper.py``, see
  its docstring): a child subreaper, so no descendant can escape to init, not
  even one that double-forks, calls ``setsid`` and closes its stdio between
  two samples; and armed with ``PR_SET_PDEATHSIG``, so the run dies with the
  supervisor even when that is SIGKILLed. The shim is the runner's main
  process; while it lives every process of the run is its descendant, so it
  is always signalled last (see ``_Tree.terminate``). Elsewhere the shell is
  the main process and escapes are caught only by sampling, as the rest of
  this list describes.
* The main process gets its own session (and so its own process group) so
  the whole group can be signalled at once; descendants are also tracked with
  psutil, because a descendant may leave the group with ``setsid``. Each
  run's environment also holds a marker of its own (``RUN_MARK``, recorded
  in ``RunIdentity``), by which a restart finds what a reaper killed along
  with the supervisor left under init (``end_recorded``).
* Output is drained continuously by a thread, in large chunks, so a chatty
  child never blocks on a full pipe; the raw bytes go to the log file and the
  decoded lines go to one optional subscriber, batched per chunk. Nothing on
  the drain path may wait or raise: a capped log keeps its tail in memory,
  and so does one the disk refuses (full) or whose disk is low; the abort
  pattern is one regex search per completed line. That path, and the rule
  that the first stop wins, are ``executors.output``'s (``OutputSink``,
  ``StopLatch``), shared with the Ray executor.
* The main process is waited for with ``WNOWAIT`` and reaped only after the
  tree is gone: while it is an unreaped zombie its pid, which is also the
  process group id, cannot be reused, so signalling the group never hits a
  stranger.
* Watchdogs (no output for ``stall_s``, tree RSS above ``max_rss_mb``, a line
  matching ``abort_pattern``) end a live run exactly like a kill; the outcome
  says ``aborted`` and why. They act only while the main process runs: a run
  that already exited is reported as it ended.
* ``wait()`` returns only when the main process and every descendant it can
  find are gone, the output pipe is at EOF and the log is closed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from arsup.core import sandbox
from arsup.core.executors.output import Ended, LogUnavailable, OutputCallback, OutputSink, StopLatch, size_text

logger = logging.getLogger(__name__)

DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    # The basics any program expects.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "TZ",
    "TMPDIR",
    "XDG_*",
    # Finding the right interpreter and packages.
    "VIRTUAL_ENV",
    "CONDA_*",
    "PYENV_*",
    "UV_*",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    # Accelerators and the numeric libraries' threading.
    "CUDA_*",
    "NVIDIA_*",
    "NCCL_*",
    "CUBLAS_*",
    "CUDNN_*",
    "HIP_*",
    "ROCM_*",
    "HSA_*",
    "OMP_*",
    "KMP_*",
    "MKL_*",
    "OPENBLAS_*",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_*",
    # Frameworks and their caches.
    "PYTORCH_*",
    "TORCH_*",
    "TORCHINDUCTOR_*",
    "TRITON_*",
    "HF_*",
)
"""Environment names (exact, or a prefix ending in ``*``) a child may inherit.

Proxies (``HTTP_PROXY`` and friends) are left out on purpose: their URLs may
carry credentials. Name them in ``pass_env`` when a project needs them. An
allowed name still does not pass when it or its value looks secret
(``_looks_secret``).
"""

_SECRET_MARKERS = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "CREDS",
    "AUTH",
    "COOKIE",
    "SESSION",
)
"""Parts of a variable's name that mark it as a secret anywhere in the name (and see ``_looks_secret``)."""

_CHUNK = 64 * 1024  # one os.read; large so that a flood costs few wake-ups
_SAMPLE_EVERY_S = 0.25  # RSS sampling period (each sample walks the process table)
_BATCH_S = 0.005  # pause after a short read so output arrives in batches
_PIPE_BYTES = 1 << 20  # the pipe's capacity where it can be raised: slack for a slow subscriber
_DRAIN_POLL_S = 0.1  # how often an idle drain thread checks whether to give up
_DRAIN_SETTLE_S = 0.5  # after the tree is gone, how long EOF may take to arrive
_REAP_POLL_S = 0.02  # while waiting for signalled processes to disappear
_SIGKILL_WAIT_S = 30.0  # SIGKILL cannot be ignored; only a process stuck in the kernel outlives this
_REAPER_PATH = Path(__file__).with_name("reaper.py")
# The shim needs prctl (Linux) and an interpreter to run it with; elsewhere the shell is the main process.
_USE_REAPER = sys.platform.startswith("linux") and bool(sys.executable) and _REAPER_PATH.is_file()
_REAPER_EXIT_S = 1.0  # once its tree is gone, how long the shim may take to exit on its own
_CREATE_TIME_SLACK_S = 1.0  # see end_recorded
RUN_MARK = "ARSUP_RUN"
"""The variable that marks each process of a run (``RunIdentity.token``), so a restart finds what a dead shim left."""


def build_env(
    base: Mapping[str, str],
    pass_env: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a child: an allow-list, never a deny-list.

    A research project should not be able to read the supervisor's API keys,
    and an unknown variable is more likely to surprise than to help, so only
    ``DEFAULT_ENV_ALLOW`` passes. Variables that look like secrets, by their
    name or by a URL with credentials in their value (see ``_looks_secret``),
    never pass through an allow rule, since an innocent prefix such as ``UV_``
    or ``HF_`` can hold a password; they pass only when named exactly in
    ``pass_env``. ``extra`` is applied last (values
    the supervisor sets itself, such as the seed), and ``PYTHONUNBUFFERED=1``
    always, so that a Python child's output reaches the log as it happens.
    """
    exact = {rule for rule in DEFAULT_ENV_ALLOW if not rule.endswith("*")}
    prefixes = tuple(rule[:-1] for rule in DEFAULT_ENV_ALLOW if rule.endswith("*"))
    named = set(pass_env)
    env: dict[str, str] = {}
    for name, value in base.items():
        if name in named:
            env[name] = value
        elif (name in exact or name.startswith(prefixes)) and not _looks_secret(name, value):
            env[name] = value
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _looks_secret(name: str, value: str = "") -> bool:
    """A secret by its name, or a value that carries one.

    By name: a marker anywhere (``_SECRET_MARKERS``), or a word ending in PASS
    (``DB_PASS``, ``PGPASS``), which PATH never is. By value: a URL with a user
    part (``https://user:pw@host``, ``https://token@host``), as in
    ``UV_INDEX_URL`` for a private index.
    """
    upper = name.upper()
    if any(marker in upper for marker in _SECRET_MARKERS) or any(word.endswith("PASS") for word in upper.split("_")):
        return True
    for word in value.replace(",", " ").split():  # index variables hold several URLs
        _, scheme, rest = word.partition("://")
        if scheme and "@" in rest.split("/", 1)[0]:
            return True
    return False


@dataclass
class RunSpec:
    """What to run, where, and for how long; the watchdogs and the log cap are off unless set."""

    command: str  # a shell command line, run as ["/bin/sh", "-c", command]
    cwd: Path
    log_path: Path  # stdout and stderr, merged and raw; parents are created
    env: dict[str, str]  # the child's full environment (see build_env)
    timeout: float  # hard wall-clock limit in seconds; then the whole tree is killed
    kill_grace: float = 5.0  # between SIGTERM and SIGKILL
    stall_s: float = 0.0  # abort when no output byte has arrived for this long (0: off)
    max_rss_mb: float = 0.0  # abort when the tree's sampled RSS is above this (0: off)
    # Abort when a completed output line (``\r`` progress collapsed) matches, e.g. a NaN loss or FAIL.
    # It is searched in every line of a flood: keep it simple.
    abort_pattern: re.Pattern[str] | None = None
    max_log_bytes: int = 0  # cap on the log file: its head, a marker, the last MiB (0: unlimited)
    # The command line the shell goes under, inside the reaper (sandbox.prefix: bubblewrap); () for none.
    sandbox: tuple[str, ...] = ()


@dataclass
class RunOutcome:
    """How a run ended and what it cost."""

    exit_code: int | None  # None if it never started; -N if ended by signal N
    wall_s: float = 0.0  # from start to the main process's exit
    peak_rss_mb: float = 0.0  # peak summed RSS of the process tree, sampled
    timed_out: bool = False
    killed: bool = False  # kill() stopped it (user stop); False for a timeout or an abort
    kill_reason: str = ""  # why it was stopped, for a timeout or an abort too
    start_error: str = ""  # non-empty when the command could not be started
    aborted: bool = False  # a watchdog of the spec ended it; kill_reason says which and why
    # The log on disk lacks output (a full disk): why, as a sentence naming the file; ``unlogged`` holds its end.
    log_error: str = ""
    unlogged: str = ""  # what belongs after the log file's bytes: a marker line, then the output's last lines
    log_capped: str = ""  # the log was cut early to keep its disk's reserve free: a sentence naming the file


@dataclass(frozen=True)
class RunIdentity:
    """The running process, as the journal records it so that a later supervisor can end it.

    ``pid`` is the process the runner started (the reaper shim on Linux),
    leader of process group and session ``pgid``; ``create_time`` (psutil's,
    seconds since the epoch) tells it apart from a later process that reuses
    the pid; ``token`` is the run's marker, ``RUN_MARK=token`` in the
    environment of each of its processes ("" in records older than it). See
    ``end_recorded``.
    """

    pid: int
    pgid: int
    create_time: float
    token: str = ""


class RunHandle(Protocol):
    """What the engine needs of a run wherever it executes: this `Run`, or a task on a cluster."""

    @property
    def identity(self) -> RunIdentity | None: ...

    def start(self) -> None: ...

    def wait(self) -> RunOutcome: ...

    def kill(self, reason: str) -> None: ...


class Run:
    """One training process: start it, stream its output, and end it with all its descendants.

    ``start()`` and ``wait()`` run in one thread; ``kill()`` may come from any
    other. The output goes through an ``OutputSink``, fed by the drain thread;
    the output callback runs there and should hand work off quickly: while it
    runs, nothing reads the pipe. Stops go through a ``StopLatch`` (a kill, or
    a watchdog's abort from the drain thread or the waiting one: the first
    wins), which wakes the waiting thread. ``_lock`` guards ``_start_called``
    only; everything else is written by ``start()`` before the threads start,
    or by one thread alone.
    """

    def __init__(self, spec: RunSpec, on_output: OutputCallback | None = None) -> None:
        self.spec = spec
        self._on_output = on_output
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by kill(), by a watchdog (through the latch) and by the exit watcher
        self._latch = StopLatch(self._wake.set)
        self._exited = threading.Event()  # the main process has exited (not yet reaped)
        self._stop_drain = threading.Event()  # the pipe is held by something we could not end
        self._start_called = False
        self._start_error = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._main: psutil.Process | None = None
        self._tree: _Tree | None = None
        self._identity: RunIdentity | None = None
        self._sink: OutputSink | None = None  # the log and the lines; None until start() opened the log
        self._drain_thread: threading.Thread | None = None
        self._exit_thread: threading.Thread | None = None
        self._started_at = 0.0
        self._ended_at = 0.0
        self._peak_rss = 0  # bytes
        self._log_error = ""  # the log could not be opened
        self._outcome: RunOutcome | None = None

    # -- public API ---------------------------------------------------------

    def start(self) -> None:
        """Launch the command; a failure to launch is recorded for wait(), never raised.

        Call it from a thread that outlives the run (the engine's loop thread
        does): on Linux the run is told to end (``PR_SET_PDEATHSIG``) when the
        *thread* that started it exits, not only when the process does.
        """
        with self._lock:
            if self._start_called:
                raise RuntimeError("Run.start() called twice")
            self._start_called = True
            if self._latch.stopped is not None:  # killed before it began: nothing to launch
                return
        spec = self.spec
        token = secrets.token_hex(8)
        try:  # closed by _finish_output()
            self._sink = OutputSink.open(spec.log_path, spec.max_log_bytes, self._latch, on_output=self._on_output,
                                         abort_pattern=spec.abort_pattern, name=lambda: f"run {self._pgid}")
        except LogUnavailable as exc:
            self._start_error = self._log_error = str(exc)
            return
        try:
            self._proc = subprocess.Popen(
                _argv(spec),
                cwd=spec.cwd,
                env={**spec.env, RUN_MARK: token},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                bufsize=0,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._start_error = f"cannot start {spec.command!r} in {spec.cwd}: {exc}"
            self._sink.note(self._start_error)
            self._sink.close()
            return
        self._started_at = self._sink.last_output = time.monotonic()  # the stall clock starts with the run
        assert self._proc.stdout is not None  # stdout=PIPE
        _widen_pipe(self._proc.stdout.fileno())
        pid = self._proc.pid
        # The child is ours and unreaped, so this cannot fail, even if it already exited.
        self._main = psutil.Process(pid)
        # start_new_session made it its group's leader; unreaped, its pid pins the group id.
        self._tree = _Tree(self._main, spec.kill_grace, reaper=_USE_REAPER, main_over=self._exited.is_set)
        self._identity = RunIdentity(pid, pid, self._main.create_time(), token)
        self._drain_thread = threading.Thread(target=self._drain, name=f"arsup-drain-{pid}", daemon=True)
        self._exit_thread = threading.Thread(target=self._watch_exit, name=f"arsup-exit-{pid}", daemon=True)
        self._drain_thread.start()
        self._exit_thread.start()

    @property
    def identity(self) -> RunIdentity | None:
        """The started process, for the journal (see ``end_recorded``); None until start() launched one."""
        return self._identity

    def wait(self) -> RunOutcome:
        """Block until the run is over and nothing of it is left; see the module docstring.

        If this thread is interrupted (KeyboardInterrupt), the tree is still
        killed and reaped before the exception propagates.
        """
        if self._outcome is not None:
            return self._outcome
        if not self._start_called:
            raise RuntimeError("Run.wait() called before start()")
        if self._proc is None:  # failed to start, or killed before it started
            ended = Ended.KILL if self._latch.stopped is Ended.KILL else Ended.START
            self._outcome = RunOutcome(
                exit_code=None,
                start_error=self._start_error,
                log_error=self._log_error,
                **self._latch.ending(ended, timeout=self.spec.timeout),
            )
            if self._sink is not None:
                self._outcome = dataclasses.replace(self._outcome, **self._sink.report())
            return self._outcome
        assert self._tree is not None and self._sink is not None
        ended = Ended.INTERRUPTED
        try:
            ended = self._supervise()
        finally:
            leftovers = self._tree.terminate()
            if leftovers and ended is Ended.EXIT:
                logger.warning("run %s exited but left %d process(es) behind; killed them", self._proc.pid, leftovers)
            self._exited.wait()
            self._finish_output()  # may still signal the group: reap only after it
            exit_code = self._reap()
        self._outcome = RunOutcome(
            exit_code=exit_code,
            wall_s=self._ended_at - self._started_at,
            peak_rss_mb=self._peak_rss / (1024 * 1024),
            **self._latch.ending(ended, timeout=self.spec.timeout),
            **self._sink.report(),
        )
        return self._outcome

    def kill(self, reason: str) -> None:
        """Ask the waiting thread to end the whole tree now; the first reason given is kept.

        It takes effect only while the main process is running: a run that has
        already exited on its own is reported as such.
        """
        self._latch.kill(reason)  # wakes the waiting thread

    # -- waiting --------------------------------------------------------------

    def _supervise(self) -> Ended:
        """Sleep on events until the main process exits, a stop comes or the time is up.

        Returns how: EXIT, KILL, ABORT or TIMEOUT. RSS is sampled on the way.
        """
        assert self._sink is not None
        deadline = self._started_at + self.spec.timeout
        next_sample = 0.0
        while not self._exited.is_set():
            stopped = self._latch.stopped
            if stopped is not None:
                return stopped
            now = time.monotonic()
            if now >= deadline:
                return Ended.TIMEOUT
            if now >= next_sample:
                self._sample()
                next_sample = now + _SAMPLE_EVERY_S
            wake_at = min(next_sample, deadline, self._sink.check_stall(now, self.spec.stall_s))
            self._wake.wait(max(0.0, wake_at - now))
            self._wake.clear()  # safe: the conditions are re-checked before the next wait
        return Ended.EXIT

    def _watch_exit(self) -> None:
        """Block until the main process exits, without reaping it (see the module docstring)."""
        assert self._proc is not None
        try:
            os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass  # someone else reaped it; _reap() reports that
        self._ended_at = time.monotonic()
        self._exited.set()
        self._wake.set()

    def _reap(self) -> int | None:
        """Collect the exit status now that the tree is gone (Popen.wait would report 0 if it were lost)."""
        assert self._proc is not None
        try:
            _, status = os.waitpid(self._proc.pid, 0)
        except ChildProcessError:
            logger.warning("run %s was reaped by someone else; its exit code is unknown", self._proc.pid)
            self._proc.returncode = -1  # keeps Popen from trying again
            return None
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = sandbox.exit_code(code) if self.spec.sandbox else code
        return self._proc.returncode

    def _sample(self) -> None:
        """Record the command's summed RSS (the shim's own is not the run's), and remember descendants.

        Remembered descendants can be found after they escape; the memory
        watchdog acts on this sample.
        """
        assert self._main is not None and self._tree is not None
        known = self._tree.known
        try:
            children = self._main.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            if known.get(child.pid) != child:  # psutil compares pid and creation time
                known[child.pid] = child
        procs = list(known.values()) if self._tree.reaper else [self._main, *known.values()]
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                known.pop(proc.pid, None)
            except psutil.AccessDenied:
                pass
        self._peak_rss = max(self._peak_rss, total)
        limit = self.spec.max_rss_mb * (1024 * 1024)
        if limit > 0 and total > limit:
            self._latch.abort(f"aborted: memory {size_text(total)} above the limit of {size_text(limit)} (memory_gb)")

    @property
    def _pgid(self) -> int:
        assert self._proc is not None
        return self._proc.pid  # start_new_session makes the child its group's leader

    # -- output ---------------------------------------------------------------

    def _drain(self) -> None:
        """Read the pipe until EOF so the child never blocks on it; the sink logs the bytes and passes lines on."""
        assert self._proc is not None and self._proc.stdout is not None and self._sink is not None
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self._stop_drain.is_set():
                if not selector.select(_DRAIN_POLL_S):
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                self._sink.feed(chunk)  # never blocks on a full disk: what it refuses is kept in memory
                if len(chunk) < _CHUNK:
                    # The pipe was nearly empty: let output gather instead of waking per write,
                    # which would cost the child (and the subscriber) a wake-up per line.
                    self._stop_drain.wait(_BATCH_S)
        self._sink.eof()

    def _finish_output(self) -> None:
        """Wait for EOF on the pipe, then close everything.

        With the tree gone, EOF is immediate unless some process we never saw
        (it escaped between two samples) still holds the pipe; those are found
        through /proc and ended too. If even that fails, reading stops.
        """
        assert self._drain_thread is not None and self._proc is not None and self._proc.stdout is not None
        assert self._tree is not None
        self._drain_thread.join(_DRAIN_SETTLE_S)
        if self._drain_thread.is_alive():
            holders = _pipe_holders(os.fstat(self._proc.stdout.fileno()).st_ino)
            if holders:
                logger.warning("run %s: processes %s escaped the tree; killing them", self._pgid, [p.pid for p in holders])
                self._tree.terminate(holders)
                self._drain_thread.join(_DRAIN_SETTLE_S)
        if self._drain_thread.is_alive():
            logger.error("run %s: output pipe is still held open by an unknown process; no longer reading", self._pgid)
            self._stop_drain.set()
            self._drain_thread.join()
        assert self._exit_thread is not None
        self._exit_thread.join()
        self._proc.stdout.close()
        assert self._sink is not None
        self._sink.close()  # a log cut short writes its end here


class _Tree:
    """One run's processes, found every way there is, and how to end them all.

    ``main`` is the process the runner started, leader of its own process
    group and session: the reaper shim, or the shell where there is none.
    With a reaper, every descendant is findable as the shim's (recursive)
    child for as long as the shim lives, so the shim is ended last; escapees
    seen earlier and the group and session are tracked as well, for the
    platforms without one. ``also`` finds more of the run each time it is
    listed; ``main`` is None for a recorded run whose leader is gone
    (``end_recorded``): then ``also`` finds all of it, and ``pgid`` only
    names it in the log.
    """

    def __init__(
        self,
        main: psutil.Process | None,
        grace: float,
        *,
        reaper: bool,
        main_over: Callable[[], bool],
        group_safe: Callable[[], bool] = lambda: True,
        pgid: int = 0,
        also: Callable[[], Iterable[psutil.Process]] = tuple,
    ) -> None:
        self.main = main
        self.pgid = main.pid if main is not None else pgid
        self.grace = grace
        self.reaper = reaper
        self.known: dict[int, psutil.Process] = {}  # descendants seen, even after they left the tree
        self._main_over = main_over  # True once main has exited: its children are no longer its own
        self._group_safe = group_safe  # False once pgid might name a stranger's group
        self._also = also

    def terminate(self, extra: Iterable[psutil.Process] = ()) -> int:
        """SIGTERM every process of the run, give them the grace, then SIGKILL the rest.

        Returns how many processes were found. Processes are listed before each
        signal because a signal makes a dying parent's children unfindable
        (they are re-parented). The process group is signalled as well as each
        listed process, which catches children forked after the listing.
        A reaper shim is SIGKILLed only once nothing else is left, after a
        moment to exit by itself (with the command's status): killed earlier,
        it would hand whatever is still alive, or is forked meanwhile, to init.
        """
        victims = self.collect(extra)
        if not victims:
            return 0
        found = {p.pid for p in victims}
        self._signal(victims, signal.SIGTERM, group=True)
        survivors = _await_gone(victims, time.monotonic() + self.grace)
        deadline = time.monotonic() + _SIGKILL_WAIT_S
        while True:
            survivors = self.collect(survivors)
            found.update(p.pid for p in survivors)
            if not survivors:
                return len(found)
            if time.monotonic() >= deadline:
                logger.error("run %s: processes %s survive SIGKILL", self.pgid, sorted(p.pid for p in survivors))
                self._signal(survivors, signal.SIGKILL, group=True)  # the shim too: nothing more to wait for
                return len(found)
            if self.reaper and self.main is not None and any(p.pid == self.main.pid for p in survivors):
                others = [p for p in survivors if p.pid != self.main.pid]
                if others:  # not the group: that would kill the shim with them
                    self._signal(others, signal.SIGKILL, group=False)
                    _await_gone(others, deadline)
                    continue
                if not _await_gone(survivors, min(deadline, time.monotonic() + _REAPER_EXIT_S)):
                    continue
            self._signal(survivors, signal.SIGKILL, group=True)
            _await_gone(survivors, deadline)

    def collect(self, extra: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
        """Every live process of the run: escapees seen earlier, the group and session, the main one and its
        descendants, and what ``also`` finds."""
        found: dict[int, psutil.Process] = {p.pid: p for p in extra}
        found.update(self.known)
        if self._group_safe():
            found.update((p.pid, p) for p in _members(self.pgid))
        found.update((p.pid, p) for p in self._also())
        if self.main is not None and not self._main_over():
            found[self.main.pid] = self.main
            try:  # last, so that a pid reused by a new descendant replaces a stale sighting
                found.update((p.pid, p) for p in self.main.children(recursive=True))
            except psutil.Error:
                pass
        self.known.update((pid, p) for pid, p in found.items() if self.main is None or pid != self.main.pid)
        return [p for p in found.values() if _alive(p)]

    def _signal(self, procs: Iterable[psutil.Process], sig: signal.Signals, *, group: bool) -> None:
        if group and self._group_safe():
            try:
                os.killpg(self.pgid, sig)
            except OSError:
                pass  # the group is empty, or holds only processes we may not signal
        for proc in procs:
            try:
                proc.send_signal(sig)  # refuses a pid that was reused meanwhile
            except psutil.Error:
                pass


def end_recorded(identity: RunIdentity, grace: float) -> int:
    """End what is left of a run that an earlier supervisor recorded, for a restart after a crash.

    Normally the run died with its supervisor (``PR_SET_PDEATHSIG``), but it
    may still be in its grace, have had no reaper (not Linux), or have lost
    the reaper too (``pkill -9 -f arsup``, the OOM killer: the shim dies
    first and cannot end the tree, which goes on under init). A process is
    ended only where it is provably the run's, and created at or after the
    recorded leader (creation times are compared within
    ``_CREATE_TIME_SLACK_S``: psutil derives them from the boot time, which
    moves with clock adjustments between two supervisors' readings):

    * The leader (the shim) still runs: the process with that pid *and* that
      creation time, its descendants, and every member of its process group
      and session, which its live pid keeps from being reused.
    * Any process whose environment holds the run's marker (``RUN_MARK``,
      ``identity.token``): this also finds a helper that left the group and
      the session with ``setsid``.
    * The leader is gone: the members of its group and session, if one of
      them holds the marker. Linux reuses no pid while a process is in the
      group or session it names, so the members are all the run's, or all a
      stranger's that came with the pid later (a daemon whose leader
      exited): one marked member tells which.

    They are ended like a tree kill (SIGTERM, ``grace``, SIGKILL; the shim
    last; the group as a whole only while its live leader pins its id).
    Returns how many processes were ended; 0 when nothing of the run is
    left, or nothing can be proven to be (a record without a marker, from an
    older arsup, whose leader is gone).

    What is missed: a process that left the session *and* hid its marker
    (cleared its environment, or made itself undumpable to a supervisor
    without ``CAP_SYS_PTRACE``). A run that hides this well is hostile;
    the sandbox's PID namespace ends it with the shim (``sandbox``).
    """
    since = identity.create_time - _CREATE_TIME_SLACK_S
    shim, leader = _recorded_main(identity)
    if shim is None:
        tree = _Tree(None, grace, reaper=False, main_over=lambda: True, group_safe=lambda: False,
                     pgid=identity.pgid, also=lambda: _left_by(identity, since))
        return tree.terminate()
    main = shim  # named again for the lambdas: not None
    # Not our child: once it is gone and reaped by init, its group id may be reused; stop using it then.
    tree = _Tree(main, grace, reaper=True, main_over=lambda: not _alive(main),
                 group_safe=lambda: leader and _alive(main), also=lambda: _marked(identity.token, since))
    return tree.terminate()


def _recorded_main(identity: RunIdentity) -> tuple[psutil.Process | None, bool]:
    """The recorded process if it still runs (that pid, that creation time), and whether it leads its group."""
    try:
        main = psutil.Process(identity.pid)
        if abs(main.create_time() - identity.create_time) <= _CREATE_TIME_SLACK_S and _alive(main):
            return main, os.getpgid(identity.pid) == identity.pid
    except (psutil.Error, OSError):
        pass
    return None, False  # gone, or its pid was reused


def _left_by(identity: RunIdentity, since: float) -> list[psutil.Process]:
    """What a run whose leader is gone left: its marked processes, and its group and session if one is marked."""
    marked = _marked(identity.token, since)
    members = [p for p in _members(identity.pgid) if _created_since(p, since)]
    return [*marked, *members] if any(p in marked for p in members) else marked


def _marked(token: str, since: float) -> list[psutil.Process]:
    """Live processes created at or after ``since`` whose environment holds ``RUN_MARK=token`` (and this user may read)."""
    if not token:
        return []
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.create_time() >= since and proc.environ().get(RUN_MARK) == token:
                found.append(proc)
        except psutil.Error:
            continue
    return [p for p in found if _alive(p)]


def _created_since(proc: psutil.Process, since: float) -> bool:
    try:
        return proc.create_time() >= since
    except psutil.Error:
        return False


def _argv(spec: RunSpec) -> list[str]:
    """The command line to start: the shell (in the spec's sandbox, if any), under the reaper shim where there is
    one; the sandbox goes inside the shim, so that the shim's tree kill covers it like any descendant."""
    shell = [*spec.sandbox, "/bin/sh", "-c", spec.command]
    if not _USE_REAPER:
        return shell
    # -I: nothing from the environment or the working directory reaches the shim; -S: no site, a faster start.
    options = ["--grace", repr(float(spec.kill_grace)), "--parent", str(os.getpid())]
    if "LC_CTYPE" in spec.env:
        options += ["--lc-ctype", spec.env["LC_CTYPE"]]
    if spec.sandbox:  # bubblewrap needs root's capabilities to make its namespaces, and drops them for the run
        options += ["--caps", "keep"]
    return [sys.executable, "-I", "-S", str(_REAPER_PATH), *options, "--", *shell]


def _await_gone(procs: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Poll until every process is gone or the deadline passes; return those still alive."""
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(_REAP_POLL_S)


def run(spec: RunSpec, on_output: OutputCallback | None = None) -> RunOutcome:
    """Start ``spec`` and wait for it: the common case in one call."""
    job = Run(spec, on_output)
    job.start()
    return job.wait()


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie: a zombie holds no resources and is its parent's to reap."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _members(leader: int) -> list[psutil.Process]:
    """Live processes of process group ``leader`` or of session ``leader``; cheap (two syscalls per process).

    The runner's main process leads both (``start_new_session``); a child
    that moved to a group of its own (``setpgid``) is still in the session.
    """
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == leader or os.getsid(pid) == leader:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue
    return [p for p in members if _alive(p)]


def _pipe_holders(inode: int) -> list[psutil.Process]:
    """Other processes holding the pipe with this inode open (Linux /proc; elsewhere none are found)."""
    target = f"pipe:[{inode}]"
    holders = []
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        if any(_readlink(f"{fd_dir}/{fd}") == target for fd in fds):
            try:
                holders.append(psutil.Process(pid))
            except psutil.Error:
                continue
    return holders


def _widen_pipe(fd: int) -> None:
    """Raise the pipe's capacity (Linux) so the child keeps writing while the drain thread is busy."""
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default capacity still works, with less slack


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
