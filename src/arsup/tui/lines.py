"""A scrollable view of prepared `Text` lines, bounded, with a live partial line: the log and the diff.

A training run can print for hours, so only the newest `max_lines` stay in
memory (the whole log is on disk); lines are rendered one screen row at a
time, so a long log costs nothing to draw. The view follows new output while
it is scrolled to the bottom; scrolled up, it stays on what the person reads
and counts the lines that arrived meanwhile (`unseen`), and when old lines
are dropped it shifts so the text under the eyes does not move.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class LinesView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LinesView {
        background: $surface;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    """

    unseen: reactive[int] = reactive(0)
    """Lines that arrived while scrolled up."""

    def __init__(self, max_lines: int = 5000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: deque[Text] = deque(maxlen=max_lines)
        self._partial: Text | None = None
        self._width = 0
        self._follow = True

    @property
    def line_count(self) -> int:
        return len(self._lines) + (self._partial is not None)

    @property
    def plain_lines(self) -> list[str]:
        """What the view holds, as text (the partial line last): for tests and copying."""
        lines = [line.plain for line in self._lines]
        return lines + [self._partial.plain] if self._partial is not None else lines

    def set_lines(self, lines: Iterable[Text]) -> None:
        """Replace everything and show the top (a diff) or the end (a past log): the caller scrolls."""
        self._lines.clear()
        self._partial = None
        self._width = 0
        self._follow = True
        self.unseen = 0
        self._add(lines)
        self._resize()
        self.scroll_to(0, 0, animate=False)
        self.refresh()  # the size may not have changed (two one-line diffs), so nothing else would repaint

    def append(self, lines: Iterable[Text], partial: Text | None = None) -> None:
        """New complete lines, and the current progress line (None when there is none)."""
        before = len(self._lines)
        added = self._add(lines)
        dropped = before + added - len(self._lines)
        self._partial = partial
        if partial is not None:
            self._width = max(self._width, partial.cell_len)
        self._resize()
        if self._follow:
            self.scroll_end(animate=False, x_axis=False)  # after the layout knows the new size
        else:
            self.unseen += added
            if dropped:
                self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    def follow(self) -> None:
        """Jump to the newest line and keep following."""
        self._follow = True
        self.unseen = 0
        self.scroll_end(animate=False, x_axis=False)

    def _add(self, lines: Iterable[Text]) -> int:
        count = 0
        for line in lines:
            self._lines.append(line)
            self._width = max(self._width, line.cell_len)
            count += 1
        return count

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, self.line_count)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_end = round(new_value) >= self.max_scroll_y
        if at_end:
            self.unseen = 0
        if old_value != new_value:  # the person (or a jump) moved the view: follow only at the end
            self._follow = at_end

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index < len(self._lines):
            text = self._lines[index]
        elif index == len(self._lines) and self._partial is not None:
            text = self._partial
        else:
            return Strip.blank(width, style)
        console = self.app.console
        base = style + console.get_style(text.style) if text.style else style  # Text.render leaves it out
        strip = Strip(text.render(console), text.cell_len).apply_style(base)
        return strip.crop_extend(scroll_x, scroll_x + width, style)
