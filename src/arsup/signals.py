"""The signals that mean "stop", for every front end: SIGTERM (a kill, a scheduler) and SIGHUP (the SSH session dropped).

Each is handled like Ctrl-C: the training is killed and recorded with a
reason that names the signal, and arsup exits with 128 + its number, so a
dropped connection never leaves a run behind or an experiment half written.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = {signal.SIGTERM: "stopped: arsup got SIGTERM", signal.SIGHUP: "stopped: the terminal closed (SIGHUP)"}


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


@contextmanager
def stop_signals(hangup: bool = True) -> Iterator[None]:
    """While inside: SIGTERM (and SIGHUP, unless `hangup` is False) raise `Signalled` in the main thread, as Ctrl-C does."""

    def interrupt(number: int, _frame: object) -> None:
        raise Signalled(number)

    numbers = [number for number in STOP_SIGNALS if hangup or number != signal.SIGHUP]
    previous = {number: signal.signal(number, interrupt) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: after a hang-up the terminal only answers EIO."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        os.close(null)
