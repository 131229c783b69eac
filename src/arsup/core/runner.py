"""Run one training process and make sure nothing of it outlives the run.

The research loop starts thousands of training scripts unattended, so a run
must end cleanly whatever the script does: print a flood, draw progress bars,
hang, ignore SIGTERM, spawn workers, or double-fork a helper into its own
session. The rules this module keeps:

* The child gets its own session (and so its own process group) so the whole
  group can be signalled at once; descendants are also tracked with psutil,
  because a descendant may leave the group with ``setsid``.
* Output is drained continuously by a thread, in large chunks, so a chatty
  child never blocks on a full pipe; the raw bytes go to the log file and the
  decoded lines go to one optional subscriber, batched per chunk.
* The main process is waited for with ``WNOWAIT`` and reaped only after the
  tree is gone: while it is an unreaped zombie its pid, which is also the
  process group id, cannot be reused, so signalling the group never hits a
  stranger.
* ``wait()`` returns only when the main process and every descendant it can
  find are gone, the output pipe is at EOF and the log is closed.
"""

from __future__ import annotations

import codecs
import fcntl
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psutil

from arsup.core.terminal import collapse_progress

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
carry credentials. Name them in ``pass_env`` when a project needs them.
"""

_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")

_CHUNK = 64 * 1024  # one os.read; large so that a flood costs few wake-ups
_SAMPLE_EVERY_S = 0.25  # RSS sampling period (each sample walks the process table)
_BATCH_S = 0.005  # pause after a short read so output arrives in batches
_PIPE_BYTES = 1 << 20  # the pipe's capacity where it can be raised: slack for a slow subscriber
_DRAIN_POLL_S = 0.1  # how often an idle drain thread checks whether to give up
_DRAIN_SETTLE_S = 0.5  # after the tree is gone, how long EOF may take to arrive
_REAP_POLL_S = 0.02  # while waiting for signalled processes to disappear
_SIGKILL_WAIT_S = 30.0  # SIGKILL cannot be ignored; only a process stuck in the kernel outlives this
_MAX_LINE_CHARS = 1 << 20  # a "line" this long without a newline is passed on as is


def build_env(
    base: Mapping[str, str],
    pass_env: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a child: an allow-list, never a deny-list.

    A research project should not be able to read the supervisor's API keys,
    and an unknown variable is more likely to surprise than to help, so only
    ``DEFAULT_ENV_ALLOW`` passes. Names that look like secrets (containing
    KEY, TOKEN, SECRET or PASSWORD) never pass through an allow rule; they pass
    only when named exactly in ``pass_env``. ``extra`` is applied last (values
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
        elif (name in exact or name.startswith(prefixes)) and not _looks_secret(name):
            env[name] = value
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in _SECRET_MARKERS)


@dataclass
class RunSpec:
    """What to run, where, and for how long."""

    command: str  # a shell command line, run as ["/bin/sh", "-c", command]
    cwd: Path
    log_path: Path  # stdout and stderr, merged and raw; parents are created
    env: dict[str, str]  # the child's full environment (see build_env)
    timeout: float  # hard wall-clock limit in seconds; then the whole tree is killed
    kill_grace: float = 5.0  # between SIGTERM and SIGKILL


@dataclass
class RunOutcome:
    """How a run ended and what it cost."""

    exit_code: int | None  # None if it never started; -N if ended by signal N
    wall_s: float = 0.0  # from start to the main process's exit
    peak_rss_mb: float = 0.0  # peak summed RSS of the process tree, sampled
    timed_out: bool = False
    killed: bool = False  # kill() stopped it (user stop); False for a timeout
    kill_reason: str = ""  # why it was stopped, for a timeout too
    start_error: str = ""  # non-empty when the command could not be started


OutputCallback = Callable[[list[str], str], None]
"""Receives (complete new lines, the current partial line) once per chunk read."""


class _LineAssembler:
    """Turns raw output into display lines, the way a terminal would show them.

    ``\\n`` ends a line; ``\\r`` returns to its start, so only the text after
    the last ``\\r`` remains (progress bars), where a ``\\r`` right before the
    ``\\n`` does not count (``\\r\\n`` line ends). Work is per chunk with
    ``str`` methods, never per character, to keep up with a flood.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""  # text after the last newline, kept short (see _compact)

    def feed(self, data: bytes) -> tuple[list[str], str] | None:
        """The lines completed by ``data`` and the partial line after them, or None if no new text."""
        text = self._decoder.decode(data)
        if not text:
            return None
        buf = self._tail + text
        lines = buf.split("\n")
        tail = lines.pop()
        if "\r" in buf:
            lines = [collapse_progress(line) for line in lines]
            tail = _compact(tail)
        if len(tail) > _MAX_LINE_CHARS:
            lines.append(collapse_progress(tail))
            tail = ""
        self._tail = tail
        return lines, collapse_progress(tail)

    def close(self) -> list[str]:
        """At EOF: what is left becomes a complete line, since nothing will follow it."""
        rest = self._tail + self._decoder.decode(b"", final=True)  # the tail never holds a "\n"
        self._tail = ""
        return [collapse_progress(rest)] if rest else []


def _compact(tail: str) -> str:
    """Drop progress updates that a later ``\\r`` already overwrote, so an endless bar costs no memory."""
    cut = tail.rstrip("\r").rfind("\r")
    return tail[cut + 1 :]


class Run:
    """One training process: start it, stream its output, and end it with all its descendants.

    ``wait()`` runs in one thread; ``kill()`` may come from any other. The
    output callback runs on the drain thread and should hand work off quickly:
    while it runs, nothing reads the pipe.
    """

    def __init__(self, spec: RunSpec, on_output: OutputCallback | None = None) -> None:
        self.spec = spec
        self._on_output = on_output
        self._lines = _LineAssembler() if on_output is not None else None
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by kill() and by the exit watcher
        self._exited = threading.Event()  # the main process has exited (not yet reaped)
        self._stop_drain = threading.Event()  # the pipe is held by something we could not end
        self._start_called = False
        self._kill_reason = ""
        self._start_error = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._main: psutil.Process | None = None
        self._log: BinaryIO | None = None
        self._drain_thread: threading.Thread | None = None
        self._exit_thread: threading.Thread | None = None
        self._started_at = 0.0
        self._ended_at = 0.0
        self._peak_rss = 0  # bytes
        self._known: dict[int, psutil.Process] = {}  # descendants seen while sampling
        self._callback_failed = False
        self._log_failed = False
        self._outcome: RunOutcome | None = None

    # -- public API ---------------------------------------------------------

    def start(self) -> None:
        """Launch the command; a failure to launch is recorded for wait(), never raised."""
        with self._lock:
            if self._start_called:
                raise RuntimeError("Run.start() called twice")
            self._start_called = True
            if self._kill_reason:  # stopped before it began: nothing to launch
                return
        spec = self.spec
        try:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(spec.log_path, "wb")  # closed by _finish_output()
        except OSError as exc:
            self._start_error = f"cannot open log {spec.log_path}: {exc}"
            return
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", spec.command],
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                bufsize=0,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._start_error = f"cannot start {spec.command!r} in {spec.cwd}: {exc}"
            self._write_log(f"arsup: {self._start_error}\n".encode())
            self._log.close()
            return
        self._started_at = time.monotonic()
        assert self._proc.stdout is not None  # stdout=PIPE
        _widen_pipe(self._proc.stdout.fileno())
        # The child is ours and unreaped, so this cannot fail, even if it already exited.
        self._main = psutil.Process(self._proc.pid)
        pid = self._proc.pid
        self._drain_thread = threading.Thread(target=self._drain, name=f"arsup-drain-{pid}", daemon=True)
        self._exit_thread = threading.Thread(target=self._watch_exit, name=f"arsup-exit-{pid}", daemon=True)
        self._drain_thread.start()
        self._exit_thread.start()

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
            self._outcome = RunOutcome(
                exit_code=None,
                killed=bool(self._kill_reason),
                kill_reason=self._kill_reason,
                start_error=self._start_error,
            )
            return self._outcome
        ended_by = "interrupted"
        try:
            ended_by = self._supervise()
        finally:
            leftovers = self._terminate_tree()
            if leftovers and ended_by == "exit":
                logger.warning("run %s exited but left %d process(es) behind; killed them", self._proc.pid, leftovers)
            self._exited.wait()
            self._finish_output()  # may still signal the group: reap only after it
            exit_code = self._reap()
        reasons = {"timeout": f"timed out after {self.spec.timeout:g} s", "kill": self._kill_reason}
        self._outcome = RunOutcome(
            exit_code=exit_code,
            wall_s=self._ended_at - self._started_at,
            peak_rss_mb=self._peak_rss / (1024 * 1024),
            timed_out=ended_by == "timeout",
            killed=ended_by == "kill",
            kill_reason=reasons.get(ended_by, ""),
        )
        return self._outcome

    def kill(self, reason: str) -> None:
        """Ask the waiting thread to end the whole tree now; the first reason given is kept.

        It takes effect only while the main process is running: a run that has
        already exited on its own is reported as such.
        """
        with self._lock:
            if not self._kill_reason:
                self._kill_reason = reason or "killed"
        self._wake.set()

    # -- waiting --------------------------------------------------------------

    def _supervise(self) -> str:
        """Sleep on events until the main process exits, kill() is called or the time is up.

        Returns "exit", "kill" or "timeout". RSS is sampled on the way.
        """
        deadline = self._started_at + self.spec.timeout
        next_sample = 0.0
        while not self._exited.is_set():
            if self._kill_reason:
                return "kill"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if now >= next_sample:
                self._sample()
                next_sample = now + _SAMPLE_EVERY_S
            self._wake.wait(min(next_sample, deadline) - now)
            self._wake.clear()  # safe: the conditions are re-checked before the next wait
        return "exit"

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
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        return self._proc.returncode

    def _sample(self) -> None:
        """Record the tree's summed RSS, and remember descendants so they can be found after they escape."""
        assert self._main is not None
        try:
            children = self._main.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            if self._known.get(child.pid) != child:  # psutil compares pid and creation time
                self._known[child.pid] = child
        total = 0
        for proc in (self._main, *self._known.values()):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                self._known.pop(proc.pid, None)
            except psutil.AccessDenied:
                pass
        self._peak_rss = max(self._peak_rss, total)

    # -- ending the tree ------------------------------------------------------

    def _terminate_tree(self, extra: Iterable[psutil.Process] = ()) -> int:
        """SIGTERM every process of the run, give them kill_grace, then SIGKILL the rest.

        Returns how many processes were found. Processes are listed before each
        signal because a signal makes a dying parent's children unfindable
        (they are re-parented). The process group is signalled as well as each
        listed process, which catches children forked after the listing.
        """
        victims = self._collect(extra)
        if not victims:
            return 0
        found = len(victims)
        self._signal(victims, signal.SIGTERM)
        survivors = self._await_gone(victims, time.monotonic() + self.spec.kill_grace)
        deadline = time.monotonic() + _SIGKILL_WAIT_S
        while True:
            survivors = self._collect(survivors)
            if not survivors:
                return found
            if time.monotonic() >= deadline:
                logger.error("run %s: processes %s survive SIGKILL", self._pgid, sorted(p.pid for p in survivors))
                return found
            self._signal(survivors, signal.SIGKILL)
            survivors = self._await_gone(survivors, deadline)

    @property
    def _pgid(self) -> int:
        assert self._proc is not None
        return self._proc.pid  # start_new_session makes the child its group's leader

    def _collect(self, extra: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
        """Every live process of the run: the main one, its descendants, escapees seen earlier, the group."""
        assert self._main is not None
        found: dict[int, psutil.Process] = {p.pid: p for p in extra}
        if not self._exited.is_set():
            found[self._main.pid] = self._main
            try:
                found.update((p.pid, p) for p in self._main.children(recursive=True))
            except psutil.Error:
                pass
        found.update(self._known)
        found.update((p.pid, p) for p in _group_members(self._pgid))
        self._known.update((pid, p) for pid, p in found.items() if pid != self._main.pid)
        return [p for p in found.values() if _alive(p)]

    def _signal(self, procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
        # The main process is not reaped yet, so the group id cannot belong to anyone else.
        try:
            os.killpg(self._pgid, sig)
        except OSError:
            pass  # the group is empty, or holds only processes we may not signal
        for proc in procs:
            try:
                proc.send_signal(sig)  # refuses a pid that was reused meanwhile
            except psutil.Error:
                pass

    @staticmethod
    def _await_gone(procs: list[psutil.Process], deadline: float) -> list[psutil.Process]:
        """Poll until every process is gone or the deadline passes; return those still alive."""
        while True:
            alive = [p for p in procs if _alive(p)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(_REAP_POLL_S)

    # -- output ---------------------------------------------------------------

    def _drain(self) -> None:
        """Read the pipe until EOF so the child never blocks on it; log raw bytes, pass lines on."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self._stop_drain.is_set():
                if not selector.select(_DRAIN_POLL_S):
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                self._write_log(chunk)
                if self._lines is not None:
                    batch = self._lines.feed(chunk)
                    if batch is not None:
                        self._emit(*batch)
                if len(chunk) < _CHUNK:
                    # The pipe was nearly empty: let output gather instead of waking per write,
                    # which would cost the child (and the subscriber) a wake-up per line.
                    self._stop_drain.wait(_BATCH_S)
        if self._lines is not None:
            rest = self._lines.close()
            if rest:
                self._emit(rest, "")

    def _write_log(self, data: bytes) -> None:
        assert self._log is not None
        try:
            self._log.write(data)
            self._log.flush()  # the log is read while the run goes on
        except OSError:
            if not self._log_failed:  # e.g. a full disk: keep draining so the child does not block
                self._log_failed = True
                logger.exception("cannot write log %s", self.spec.log_path)

    def _emit(self, lines: list[str], partial: str) -> None:
        assert self._on_output is not None
        try:
            self._on_output(lines, partial)
        except Exception:
            if not self._callback_failed:  # once: a broken subscriber would otherwise flood the log
                self._callback_failed = True
                logger.exception("output callback of run %s failed; it keeps being called", self._pgid)

    def _finish_output(self) -> None:
        """Wait for EOF on the pipe, then close everything.

        With the tree gone, EOF is immediate unless some process we never saw
        (it escaped between two samples) still holds the pipe; those are found
        through /proc and ended too. If even that fails, reading stops.
        """
        assert self._drain_thread is not None and self._proc is not None and self._proc.stdout is not None
        self._drain_thread.join(_DRAIN_SETTLE_S)
        if self._drain_thread.is_alive():
            holders = _pipe_holders(os.fstat(self._proc.stdout.fileno()).st_ino)
            if holders:
                logger.warning("run %s: processes %s escaped the tree; killing them", self._pgid, [p.pid for p in holders])
                self._terminate_tree(holders)
                self._drain_thread.join(_DRAIN_SETTLE_S)
        if self._drain_thread.is_alive():
            logger.error("run %s: output pipe is still held open by an unknown process; no longer reading", self._pgid)
            self._stop_drain.set()
            self._drain_thread.join()
        assert self._exit_thread is not None and self._log is not None
        self._exit_thread.join()
        self._proc.stdout.close()
        self._log.close()


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


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid``; cheap (one getpgid per process)."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
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
