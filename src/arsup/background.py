"""The loop as a process of its own, so a night of research never depends on a terminal.

`arsup` on a GPU box over SSH starts the loop in the background (its own
session, no terminal, output appended to `.arsup/loop.log`, deaf to SIGHUP)
and attaches the screen to it; closing the laptop only detaches. If a loop
already serves the project, the screen just attaches. The loop is
`arsup run --headless --detached`, so what it prints is the headless log.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from arsup.core.journal import STATE_DIR
from arsup.core.service import ControlClient, LoopNotRunning

LOOP_LOG = "loop.log"
START_WAIT_S = 120.0  # preparing may recover an interrupted experiment first
_POLL_S = 0.05
_TAIL_LINES = 20


class LoopFailed(Exception):
    """The background loop ended before it served; the text is the end of its log."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def running_loop(root: Path) -> int:
    """The pid of the loop serving `root`, or 0."""
    client = ControlClient(root)
    try:
        client.connect()
    except LoopNotRunning:
        return 0
    finally:
        client.close()
    return client.loop_pid


def ensure_loop(root: Path, loop_args: list[str]) -> tuple[int, bool]:
    """The loop serving `root`, started with `loop_args` if none does: (its pid, whether it was started now).

    Raises LoopFailed, with the end of its log, if a started loop exits before it serves."""
    pid = running_loop(root)
    if pid:
        return pid, False
    log = root / STATE_DIR / LOOP_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        start = sink.tell()
        sink.write(f"--- arsup loop starting {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        sink.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "arsup", "run", "--headless", "--detached", "--dir", str(root), *loop_args],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no terminal: a dropped SSH session cannot reach it
            close_fds=True,
        )
    threading.Thread(target=proc.wait, name="arsup-reap-loop", daemon=True).start()  # no zombie if it ends early
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if running_loop(root) == proc.pid:
            return proc.pid, True
        if proc.poll() is not None:
            raise LoopFailed(_tail(log, start), proc.returncode or 1)
        time.sleep(_POLL_S)
    raise LoopFailed(f"the loop (pid {proc.pid}) did not start serving in {START_WAIT_S:g} s; see {log}", 1)


def _tail(log: Path, start: int) -> str:
    """What the failed loop printed, for the person: the error lines, not the header."""
    with open(log, "rb") as handle:
        handle.seek(start)
        lines = handle.read().decode("utf-8", errors="replace").splitlines()[1:]
    text = "\n".join(lines[-_TAIL_LINES:]).strip()
    return text.removeprefix("arsup: error: ") or f"the loop exited at once; see {log}"
