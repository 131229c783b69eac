"""Untrusted text (training logs, model replies, hypotheses) made safe to show, and number formats.

Everything a training script or a model writes is shown as a `rich.text.Text`
built from plain strings, never parsed as markup: a log line such as
`[/usr/bin] [bold]x` must appear exactly as printed. ANSI colours are kept,
other escape sequences dropped, `\\r` progress collapsed to what a terminal
would show, and control characters dropped or made visible, so nothing can move the
cursor or break the layout.
"""

from __future__ import annotations

import re

from rich.text import Text

from arsup.core.terminal import collapse_progress

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")  # all C0 but \t, \n and ESC (decoded first)
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")  # window titles, hyperlinks: Rich knows only ST-ended ones
_TAB_SIZE = 4
FIELD_GAP = "  "


def log_line(raw: str) -> Text:
    """One display line from one line of program output."""
    line = _OSC.sub("", collapse_progress(raw).expandtabs(_TAB_SIZE))
    text = Text.from_ansi(line) if "\x1b" in line else Text(line)
    text.end = ""
    plain = text.plain
    if _CONTROL.search(plain) or "\n" in plain or "\x1b" in plain:
        # Same length, so the colour spans still line up with the characters.
        cleaned = _CONTROL.sub("\ufffd", plain).replace("\n", " ").replace("\x1b", "\ufffd")
        text = Text(cleaned, spans=text.spans, end="")
    return text


def one_line(text: str) -> str:
    """A hypothesis or reason squeezed to one line (whitespace runs become one space)."""
    return " ".join(text.split())


def metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.6f}"


def improves(change: float, goal: str) -> bool:
    return change < 0 if goal == "minimize" else change > 0


def duration(seconds: float) -> str:
    """Elapsed time as H:MM:SS (a research night runs for hours, not days)."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def pack(items: list[Text], width: int) -> Text:
    """Fields joined by two spaces, wrapped between fields, never inside one (a field wider than the line is cropped).

    Rich would wrap at any space, splitting "best 2.02 (-0.61)" across lines."""
    out = Text(no_wrap=True, overflow="ellipsis")
    used = 0
    for item in items:
        size = item.cell_len
        if used and used + len(FIELD_GAP) + size > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(FIELD_GAP)
            used += len(FIELD_GAP)
        out.append_text(item)
        used += size
    return out
