"""What reaches a person who is not looking at the screen: the words, and the desktop notification's bytes.

A screen attached over SSH has no way to the person's desktop but its
terminal, so a notification is an escape sequence: OSC 9 (iTerm2, kitty,
WezTerm, Ghostty) and OSC 777 (rxvt-unicode, foot, VTE, WezTerm, Ghostty).
Both are sent; a terminal ignores the one it does not know (one that knows
both may show the notification twice). Inside tmux neither gets through
unless tmux passes it on.
Hypotheses are a model's words, so every control character is taken out:
a BEL or an ESC inside would end the sequence early and let the rest reach
the terminal as commands.
"""

from __future__ import annotations

import re

from arsup.core.events import ApprovalRequested
from arsup.core.experiment import Experiment
from arsup.output import describe_question
from arsup.tui import text

TITLE = "arsup"
MAX_BODY = 200  # characters: notification popups show a few lines at most
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def desktop_notification(body: str, title: str = TITLE) -> str:
    """OSC 9 and OSC 777 for one notification, each ended by BEL; safe for any `body`."""
    title, body = _printable(title), _printable(body)[:MAX_BODY]
    return f"\x1b]9;{title}: {body}\x07\x1b]777;notify;{title.replace(';', ',')};{body}\x07"


def _printable(words: str) -> str:
    return " ".join(_CONTROLS.sub(" ", words).split())


def question_words(project: str, request: ApprovalRequested) -> str:
    """`tinylm waits for you: train 0008 ('wider')?`"""
    return f"{project} waits for you: {describe_question(request)}"


def new_best_words(project: str, metric: str, experiment: Experiment) -> str:
    """`tinylm: new best val_bpb 2.024059 (0007: FINAL_LR_FRAC 0.365 -> 0.143)`"""
    return f"{project}: new best {metric} {text.metric(experiment.metric)} ({experiment.id}: {experiment.hypothesis})"
