"""Lines for the person around a session: written so that a terminal that went away never fails arsup.

Kept apart from the front ends so that a screen can say them without
importing the engine (an attaching screen should start fast), and so that
every front end (the screen, the headless printer, the one-shot commands)
words a question the same way without importing another front end.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from arsup.core.events import ApprovalRequested
from arsup.core.journal import JOURNAL_NAME, RESULTS_NAME, STATE_DIR

_ASKS = {"edit": "commit the edit of", "run": "train", "keep": "keep"}


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


def describe_question(question: ApprovalRequested) -> str:
    """One line: what the loop waits for a person to decide."""
    experiment = question.experiment
    what = "the baseline" if experiment.is_baseline else repr(" ".join(experiment.hypothesis.split())[:120])
    return f"{_ASKS.get(question.kind, question.kind)} {experiment.id} ({what})?"


def waiting_line(question: ApprovalRequested) -> str:
    """The question waiting and the commands that answer it, as the printer and `arsup status` say it."""
    return f"waiting: {describe_question(question)} answer with `arsup approve` or `arsup skip`"
