"""`[notify] command`: tell the person's own tool (ntfy, a Slack webhook, a script) what the loop needs or found.

The loop runs all night with nobody watching; a question that waits, a new
best and an end on an error are worth a ping. The command is run with
`/bin/sh -c` in the project folder, the event as one JSON object on stdin
(the same form as on the control socket). It runs in its own thread under a
timeout, so a slow or broken hook never holds the loop up; a failure is said
once as a warning, never raised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from arsup.core import wire
from arsup.core.events import ApprovalRequested, Event, ExperimentFinished, Notice, SessionEnded
from arsup.core.experiment import Status

logger = logging.getLogger(__name__)


def worth_telling(event: Event) -> bool:
    """A question that waits, a new best, or an end on an error."""
    match event:
        case ApprovalRequested():
            return True
        case ExperimentFinished():
            return event.experiment.status == Status.KEEP and not event.experiment.is_baseline
        case SessionEnded():
            return event.error
    return False


class CommandNotifier:
    """An engine subscriber that runs the command for the events worth telling."""

    def __init__(self, command: str, cwd: Path, timeout: float, warn: Callable[[Notice], None]) -> None:
        self.command = command
        self.cwd = cwd
        self.timeout = timeout
        self.warn = warn  # how a failure is said (the engine's emit)
        self._failed = False
        self._threads: list[threading.Thread] = []

    def __call__(self, event: Event) -> None:
        if not worth_telling(event):
            return
        payload = json.dumps(wire.encode(event), ensure_ascii=False)
        thread = threading.Thread(target=self._run, args=(payload,), name="arsup-notify", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Let running hooks finish (at the end of a session)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _run(self, payload: str) -> None:
        problem = ""
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", self.command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, cwd=self.cwd, start_new_session=True,
            )
        except OSError as exc:
            problem = str(exc)
        else:
            try:
                _, err = proc.communicate(payload, timeout=self.timeout)
                if proc.returncode:
                    problem = f"exit code {proc.returncode}: {err.strip()[-300:]}"
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: curl under sh too
                proc.communicate()
                problem = f"took longer than {self.timeout:g} s; killed"
        if problem and not self._failed:  # once: a broken hook would otherwise fill the log
            self._failed = True
            logger.warning("[notify] command failed: %s", problem)
            self.warn(Notice(f"[notify] command failed ({problem}); later failures are not reported", "warning"))
