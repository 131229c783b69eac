"""How a terminal shows program output; shared by the live stream and the log parser."""

from __future__ import annotations


def collapse_progress(line: str) -> str:
    """The text a terminal shows for one line: what follows its last `\\r` (progress bars).

    A `\\r` right before the line's end does not count (`\\r\\n` line ends).
    """
    return line.rstrip("\r").rpartition("\r")[2]
