"""Lines for the person around a session: written so that a terminal that went away never fails arsup.

Kept apart from the front ends so that a screen can say them without
importing the engine (an attaching screen should start fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from arsup.core.journal import JOURNAL_NAME, RESULTS_NAME, STATE_DIR


def say(line: str, out: TextIO) -> None:
    """Print, but never fail on a terminal that went away (after SIGHUP): the journal has it all."""
    try:
        print(line, file=out, flush=True)
    except (OSError, ValueError):
        pass


def locations(root: Path) -> str:
    """Where a session's record is, said when it ends (headless or after the screen closes)."""
    state = root / STATE_DIR
    return f"arsup: results in {root / RESULTS_NAME}, journal in {state / JOURNAL_NAME}"
