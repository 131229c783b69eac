"""The Ray task behind ``ray_cluster.RayRun``: what runs on the worker.

It travels to the worker by value (``ray_cluster`` registers this module with
cloudpickle), so a worker needs ray and the project's dependencies, not
arsup. Hence the rule of this module: the standard library only, imported
and nothing from arsup.

The task unpacks the snapshot into a fresh temporary folder, runs the command
there under the runner's reaper shim (sent as source text) and deletes the
folder afterwards; the folder of a task whose worker died is deleted by the
next task on that machine. The shim is a session leader, a child
subreaper, and has ``PR_SET_PDEATHSIG`` pointed at the worker's main thread
(Ray runs a task there), so:

* a cancelled task (Ray raises KeyboardInterrupt in it) ends the shim, and
  through it the whole tree, in ``finally``;
* a worker that dies (a force-cancel, a crash, its node going down) takes
  the tree down through the shim's death signal.

It yields ``{"host", "pid"}`` once the process started, then raw output
chunks (bytes), then ``{"exit_code", "wall_s"}``.
"""

from __future__ import annotations

import io
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator

POLL_S = 0.1  # the longest the task sits in a system call: a cancellation gets in between
SHIM_EXTRA_S = 10.0  # beyond the grace, how long the shim may take to end its tree
_CHUNK = 1 << 20  # one read
_BATCH_S = 0.02  # after a short read: let output gather instead of one object per line
_PREFIX = "arsup-ray-"  # then the worker's pid: arsup-ray-<pid>-<random>


def run_on_worker(snapshot: bytes, command: str, env: dict[str, str], grace: float, shim: str) -> Iterator[object]:
    """Unpack, run ``/bin/sh -c command`` under the shim, stream its output; see the module docstring."""
    _sweep()
    work = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")  # the worker's pid: see _sweep
    proc = None
    try:
        repo = _unpack(snapshot, work)
        shim_path = os.path.join(work, "reaper.py")  # beside the checkout, not in it
        with open(shim_path, "w", encoding="utf-8") as file:
            file.write(shim)
        child_env = _child_env(env)
        options = ["--grace", repr(float(grace)), "--parent", str(os.getpid())]
        if "LC_CTYPE" in child_env:
            options += ["--lc-ctype", child_env["LC_CTYPE"]]
        argv = [sys.executable, "-I", "-S", shim_path, *options, "--", "/bin/sh", "-c", command]
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=repo, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, bufsize=0,
        )  # fmt: skip
        assert proc.stdout is not None
        yield {"host": socket.gethostname(), "pid": proc.pid}
        yield from _output(proc)
        yield {"exit_code": proc.wait(), "wall_s": time.monotonic() - started}
    finally:
        if proc is not None:
            _end(proc, grace)
        shutil.rmtree(work, ignore_errors=True)


def _sweep() -> None:
    """Delete the folders of tasks whose worker died: no ``finally`` ran there to do it."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(_PREFIX) :].split("-")[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's
    return True


def _unpack(snapshot: bytes, work: str) -> str:
    """The snapshot as a folder; the "data" filter refuses absolute paths and links out of it."""
    repo = os.path.join(work, "repo")
    with tarfile.open(fileobj=io.BytesIO(snapshot)) as tar:
        tar.extractall(repo, filter="data")
    return repo


def _child_env(env: dict[str, str]) -> dict[str, str]:
    """The driver's allow-listed environment, with this worker's GPUs (Ray's choice), not the driver's."""
    child = {name: value for name, value in env.items() if name != "CUDA_VISIBLE_DEVICES"}
    if "CUDA_VISIBLE_DEVICES" in os.environ:  # set by Ray for the GPUs this task was given
        child["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    child["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # so that Ray's GPU ids and CUDA's agree
    return child


def _output(proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    """Raw chunks until EOF, which comes once the shim, the last of the tree, has exited."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while True:
        if not select.select([fd], [], [], POLL_S)[0]:
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return
        yield chunk
        if len(chunk) < _CHUNK:
            try:
                proc.wait(_BATCH_S)  # as a pause: it ends early, and the stream with it, if the run is over
            except subprocess.TimeoutExpired:
                pass


def _end(proc: subprocess.Popen[bytes], grace: float) -> None:
    """End the shim's tree if it still runs (SIGTERM: the shim's grace, then SIGKILL), and close the pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace + SHIM_EXTRA_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
