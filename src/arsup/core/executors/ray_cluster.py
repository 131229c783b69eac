"""Run one training command on a Ray cluster, with the surface of ``runner.Run``.

The engine can send a run to any node of a cluster instead of a local
process, and what it gets back means the same. The rules this module keeps:

* arsup imports without ray: ray is imported inside functions; a missing ray
  is a start error naming the extra.
* ``start()`` never raises. An unreachable cluster, a failed submission, a
  run that no node takes within ``spec.timeout``: each is a start error
  (``exit_code=None``, ``start_error="ray: ..."``).
* What runs on the worker, and how it leaves nothing behind, is
  ``ray_task``'s (it travels by value: workers need no arsup). The task is
  never retried (``max_retries=0``): a run must not silently start twice.
* Output streams back as raw chunks; the driver feeds them to the same
  ``output.OutputSink`` as the runner (the capped log at ``spec.log_path``,
  the lines, the abort pattern), and stops go through the same
  ``output.StopLatch``. Timeout, kill, abort pattern and stall are enforced
  here; the timeout counts from the process's start on the worker.
* A Ray system failure while the run is live (worker or node died, output
  lost) is a crash: ``kill_reason`` starts with "node lost:".
* arsup, not Ray, says when a cluster is gone. Ray's driver ends its whole
  process (``_exit(1)``, no word from arsup) 60 s after it lost the GCS, and
  stays attached to a dead cluster when a new head comes up at the same
  address: so the GCS reconnect timeout is set past any night, and every
  run first checks that the connection still reaches its cluster. One that
  does not is shut down; the cluster has ``COME_BACK_S`` to answer again at
  the same address (a restarted head is connected to afresh), else the start
  error says the cluster is gone and how to start it (``GONE``). Ray's
  auto-connect is off: no call after a shutdown may start a local cluster.
* Connecting and submitting happen in ``wait()``, not ``start()``: waiting
  for a cluster to come back must not hold up a kill from another thread.
* ``max_rss_mb`` is not enforced and ``peak_rss_mb`` is 0: memory on a
  cluster is Ray's memory monitor's business.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from arsup.core import reaper, runner
from arsup.core.executors import ray_task
from arsup.core.executors.output import Ended, LogUnavailable, OutputCallback, OutputSink, StopLatch

logger = logging.getLogger(__name__)

RAY_MISSING = "executor = \"ray\" needs the ray extra: pip install 'arsup[ray]'"
_REACH_S = 5.0  # a TCP check before ray.init, which would retry a dead address for minutes
COME_BACK_S = 30.0  # how long a lost cluster has to answer again at its address before it is gone
GONE = "ray: the Ray cluster at"  # how the start error of a run whose cluster is gone begins
NODE_LOST = "node lost"  # how the kill reason of a run whose node went away begins (the loop runs it again)
_GCS_PATIENCE = {  # set before ray.init: a driver without its GCS for this long would end the process
    "RAY_gcs_rpc_server_reconnect_timeout_s": str(7 * 24 * 3600),
}
_LOST = {  # what a Ray system error means for the run, by the error's class name; else its message
    "WorkerCrashedError": "the Ray worker running it died",
    "NodeDiedError": "the node running it died",
    "OutOfMemoryError": "Ray's memory monitor killed its worker",
}

_connect_lock = threading.Lock()
_connected: str | None = None  # the address this process connected to; Ray allows one per process
_dropped: tuple[str, float] | None = None  # (address, monotonic time) of a connection whose cluster was lost
_live = 0  # tasks submitted on the connection and still supervised: a renewal waits for them
_live_changed = threading.Condition()
_task: Any = None  # the remote function, made on first use


class RayRun:
    """One training command on a Ray cluster: ``runner.Run``'s start/identity/wait/kill.

    ``snapshot`` is a tar of the commit to run (``git archive --format=tar``);
    ``spec.cwd`` is not used. ``start()`` and ``wait()`` run in one thread,
    which feeds the output sink and so calls ``on_output``; ``kill()`` may
    come from any other, and goes through the latch (its own lock). ``_lock``
    guards ``_start_called`` only; the rest is the waiting thread's.
    """

    def __init__(
        self,
        spec: runner.RunSpec,
        on_output: OutputCallback | None = None,
        *,
        address: str,
        snapshot: bytes,
        num_gpus: float = 1.0,
    ) -> None:
        self.spec = spec
        self.address = address
        self.num_gpus = num_gpus
        self._snapshot = snapshot
        self._on_output = on_output
        self._lock = threading.Lock()
        self._latch = StopLatch()  # wait() polls it; nothing to wake
        self._start_called = False
        self._start_error = ""
        self._lost = ""  # why the task failed while the run was live ("node lost: ...")
        self._sink: OutputSink | None = None  # the log and the lines; None until start() opened the log
        self._gen: Any = None  # the task's ObjectRefGenerator
        self._where = ""  # "host pid N" once the process started
        self._submitted_at = self._started_at = 0.0  # driver's monotonic clock
        self._exit: dict[str, Any] | None = None  # {"exit_code", "wall_s"} from the worker
        self._outcome: runner.RunOutcome | None = None

    def start(self) -> None:
        """Open the log (wait() connects and submits); a failure is kept for wait()."""
        with self._lock:
            if self._start_called:
                raise RuntimeError("RayRun.start() called twice")
            self._start_called = True
            if self._latch.stopped is not None:  # killed before it began
                return
        try:  # closed by wait()
            self._sink = OutputSink.open(self.spec.log_path, self.spec.max_log_bytes, self._latch,
                                         on_output=self._on_output, abort_pattern=self.spec.abort_pattern,
                                         name=lambda: f"ray run {self._where}")
        except LogUnavailable as exc:
            self._start_error = str(exc)

    @property
    def identity(self) -> runner.RunIdentity | None:
        """Always None: no local process to record; the cluster ends the task if this process dies."""
        return None

    def wait(self) -> runner.RunOutcome:
        """Block until the task is over and its tree gone, streaming its output; see the module docstring."""
        if self._outcome is not None:
            return self._outcome
        if not self._start_called:
            raise RuntimeError("RayRun.wait() called before start()")
        killed = self._killed
        if self._sink is not None and not killed():
            self._start_error = _connect(self.address, killed, self._say) or self._submit()
            if self._gen is None and killed():
                self._start_error = ""  # killed while the cluster was awaited: the kill is what happened
            self._submitted_at = time.monotonic()
        ended = Ended.KILL if killed() and not self._start_error else Ended.START  # if nothing was submitted
        if self._gen is not None:
            try:
                ended = self._supervise()
            except BaseException:
                _cancel(self._gen, force=True)  # interrupted: the worker goes, the shim takes the tree with it
                raise
            finally:
                _count_live(-1)
                assert self._sink is not None
                self._sink.eof()
        if self._sink is not None:
            if self._start_error:
                self._sink.note(self._start_error)
            self._sink.close()
        status = self._exit or {}
        self._outcome = runner.RunOutcome(
            exit_code=status.get("exit_code"),
            wall_s=status.get("wall_s", time.monotonic() - self._started_at if self._started_at else 0.0),
            start_error=self._start_error,
            **self._latch.ending(ended, timeout=self.spec.timeout, lost=self._lost),
        )
        if self._sink is not None:  # what a full disk refused to the log, read with it (see output.CappedLog)
            self._outcome = dataclasses.replace(self._outcome, **self._sink.report())
        return self._outcome

    def kill(self, reason: str) -> None:
        """Ask wait() to end the task and its process tree; the first reason given is kept.

        Like the runner's, it takes effect only while the process runs.
        """
        self._latch.kill(reason)

    def _killed(self) -> bool:
        """Whether kill() was called (and came before any abort)."""
        return self._latch.stopped is Ended.KILL

    def _submit(self) -> str:
        """Send the task off; '' or why it could not be."""
        try:
            shim = Path(reaper.__file__).read_text(encoding="utf-8")
            args = (self._snapshot, self.spec.command, self.spec.env, self.spec.kill_grace, shim)
            self._gen = _remote_function().options(num_gpus=self.num_gpus).remote(*args)
        except Exception as exc:  # noqa: BLE001 -- serialisation, a lost connection: Ray raises many kinds
            return f"ray: cannot submit the run to {self.address}: {_first_line(exc)}"
        _count_live(+1)
        return ""

    def _supervise(self) -> Ended:
        """Take the stream until it ends, cancelling on a stop; how the run ended.

        EXIT, KILL, ABORT, TIMEOUT, LOST (``_lost`` says why) or START
        (``_start_error`` says why: no node took it, or it failed to start).
        """
        import ray

        stop: Ended | None = None
        force_at = float("inf")
        while True:
            now = time.monotonic()
            if not stop:
                stop = self._stop_wanted(now)
                if stop:
                    _cancel(self._gen, force=False)  # KeyboardInterrupt in the task: its finally ends the tree
                    force_at = now + self.spec.kill_grace + ray_task.SHIM_EXTRA_S
            elif now >= force_at:  # the task ignored it: its worker goes, and the shim's death signal fires
                _cancel(self._gen, force=True)
                force_at = float("inf")
            try:
                ready, _ = ray.wait([self._gen], timeout=ray_task.POLL_S)
                if ready:
                    self._take(ray.get(next(self._gen)))
                continue
            except StopIteration:
                detail = "the task ended without an exit status"
            except ray.exceptions.TaskCancelledError:
                detail = "the cluster cancelled the task"
            except ray.exceptions.RayTaskError as exc:  # the task's own code failed: unpacking, spawning
                cause = exc.cause or exc
                detail = f"the task failed: {type(cause).__name__}: {_first_line(cause)}"
                if not self._started_at and not stop:
                    self._start_error = f"ray: cannot start the run on the worker: {type(cause).__name__}: {_first_line(cause)}"
                    return Ended.START
            except ray.exceptions.RayError as exc:
                detail = _LOST.get(type(exc).__name__, f"{type(exc).__name__}: {_first_line(exc)}")
            if self._exit is not None:
                return Ended.EXIT
            if not stop:
                self._lost = f"{NODE_LOST}: {detail}" + (f" (on {self._where})" if self._where else "")
            return stop or Ended.LOST

    def _stop_wanted(self, now: float) -> Ended | None:
        """Whether to end the task now, and why: KILL, ABORT, TIMEOUT, START or None."""
        if self._exit is not None:  # the process exited on its own: report it as it ended
            return None
        assert self._sink is not None
        stopped = self._latch.stopped
        if stopped is not None:
            return stopped
        timeout = self.spec.timeout
        if not self._started_at:
            if now - self._submitted_at < timeout:
                return None
            self._start_error = f"ray: no node of the cluster at {self.address} started the run within {timeout:g} s"
            self._start_error += f" (it asks for {self.num_gpus:g} GPU)"
            return Ended.START
        if now - self._started_at >= timeout:
            return Ended.TIMEOUT
        if self._sink.check_stall(now, self.spec.stall_s) <= now:
            return self._latch.stopped  # ABORT, or a kill that came first
        return None

    def _say(self, text: str) -> None:
        """A line of arsup's own into the run's log and output, as the runner writes its start error."""
        self._take(f"arsup: {text}\n".encode())

    def _take(self, item: object) -> None:
        """One item of the stream: the start notice, a chunk of output or the exit status."""
        assert self._sink is not None
        if isinstance(item, bytes):
            self._sink.feed(item)
            return
        self._sink.last_output = time.monotonic()  # a notice is output too, for stall_s
        if isinstance(item, dict) and "pid" in item:
            self._started_at = self._sink.last_output
            self._where = f"{item.get('host')} pid {item['pid']}"
            logger.info("run %s started on %s", self.spec.log_path, self._where)
        elif isinstance(item, dict) and "exit_code" in item:
            self._exit = item


def _connect(address: str, stopped: Callable[[], bool], say: Callable[[str], None]) -> str:
    """Connect this process to the cluster, or again after it was lost; '' or why it cannot.

    ``stopped`` ends the wait for a lost cluster early (the run was killed
    meanwhile); ``say`` tells the run's log that it waits.
    """
    global _connected, _dropped
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"  # read by import ray: no call may start a local cluster
    try:
        import ray
    except ImportError:
        return RAY_MISSING
    with _connect_lock:
        if ray.is_initialized() and _connected is None:
            return ""  # whoever embeds arsup made this connection, and looks after it
        if ray.is_initialized() and _connected != address:
            return f"ray: this process is connected to {_connected}; it cannot also use {address}"
        if ray.is_initialized():
            if _reaches_its_cluster(address):
                return ""
            _dropped, _connected = (address, time.monotonic()), None
            _drop(ray, _dropped[1] + COME_BACK_S, stopped)
        if _dropped is not None and _dropped[0] == address:
            problem = _come_back(address, _dropped[1] + COME_BACK_S, stopped, say)
        else:
            unreachable = _unreachable(address)
            problem = f"ray: cannot reach the cluster at {address}: {unreachable}" if unreachable else _init(address)
        if not problem:
            _connected, _dropped = address, None
    return problem


def _init(address: str) -> str:
    """``ray.init`` to the address, Ray's signal handlers undone; '' or why it failed."""
    import ray

    os.environ.update(_GCS_PATIENCE)  # read by ray.init: Ray's driver must not end arsup on its own
    # ray.init makes SIGTERM call sys.exit in the main thread; what a signal does is arsup's to say.
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        ray.init(address=address, ignore_reinit_error=True, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 -- a version mismatch, a refusal: all mean the same here
        return f"ray: cannot connect to the cluster at {address}: {_first_line(exc)}"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    return ""


def _reaches_its_cluster(address: str) -> bool:
    """Whether this process's connection still reaches the cluster it was made to.

    A restarted head refuses the old connection's cluster id (WrongClusterID);
    a dead one does not answer within ``_REACH_S``. Either way Ray's driver
    never recovers, so a False is for good.
    """
    import ray

    if _unreachable(address):
        return False
    try:
        ray._private.worker.global_worker.gcs_client.internal_kv_get(b"arsup", None, timeout=_REACH_S)
    except Exception:  # noqa: BLE001 -- RpcError, AuthenticationError (WrongClusterID): no answer from its cluster
        logger.info("the connection to the Ray cluster at %s no longer reaches it", address, exc_info=True)
        return False
    return True


def _drop(ray: Any, deadline: float, stopped: Callable[[], bool]) -> None:
    """Shut down a connection whose cluster was lost, once the runs on it ended (they were lost with it)."""
    with _live_changed:
        while _live and not stopped() and time.monotonic() < deadline:
            _live_changed.wait(ray_task.POLL_S)
    ray.shutdown()


def _come_back(address: str, deadline: float, stopped: Callable[[], bool], say: Callable[[str], None]) -> str:
    """Connect again to a cluster that was lost, trying until ``deadline``; '' or ``GONE``'s error."""
    said = False
    while True:
        problem = _unreachable(address) or _init(address)
        if not problem:
            logger.info("connected again to the Ray cluster at %s", address)
            return ""
        if stopped() or time.monotonic() >= deadline:
            break
        if not said:
            said = True
            say(f"the Ray cluster at {address} does not answer: waiting up to {COME_BACK_S:g} s for it to come back")
        time.sleep(1.0)
    logger.info("the Ray cluster at %s did not come back: %s", address, problem)
    _, _, port = address.rpartition(":")
    start = f"ray start --head --port={port}" if port.isdigit() else "ray start --head"
    return f"{GONE} {address} is gone: start it again ({start}) and restart arsup"


def _count_live(change: int) -> None:
    """One more, or one fewer, task supervised on the connection."""
    global _live
    with _live_changed:
        _live += change
        _live_changed.notify_all()


def _unreachable(address: str) -> str:
    """Why nothing answers at a ``host:port`` address ('' if something does, or it is not host:port)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return ""  # "auto", "ray://...": ray.init decides
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_REACH_S).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return ""


def _remote_function() -> Any:
    """The task, made once; ``ray_task`` travels by value, so workers need no arsup."""
    global _task
    if _task is None:
        import ray
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(ray_task)
        _task = ray.remote(num_returns="streaming", max_retries=0)(ray_task.run_on_worker)
    return _task


def _cancel(gen: Any, *, force: bool) -> None:
    import ray

    try:
        ray.cancel(gen, force=force)
    except Exception:  # already over, or the cluster is gone: the stream will say
        logger.debug("ray.cancel(force=%s) failed", force, exc_info=True)


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an error's message, for a one-line reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
