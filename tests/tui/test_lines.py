"""The line view under the log and the diff: bounded, following, counting what arrived while scrolled up."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from arsup.tui.lines import LinesView
from tests.tui.conftest import drive

pytestmark = pytest.mark.slow  # Textual apps


class LinesApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LinesView(max_lines=50)


def lines(*texts: str) -> list[Text]:
    return [Text(t) for t in texts]


def test_follows_the_end_and_keeps_only_the_newest_lines() -> None:
    app = LinesApp()

    async def go(pilot: Pilot[Any]) -> None:
        view = app.query_one(LinesView)
        for burst in range(8):  # bursts faster than frames
            view.append(lines(*(f"line {burst * 10 + i}" for i in range(10))), Text("progress 50%"))
        await pilot.pause()
        assert len(view.plain_lines) == 51 and view.plain_lines[0] == "line 30"
        assert view.plain_lines[-1] == "progress 50%"
        assert view.scroll_y == view.max_scroll_y > 0 and view.unseen == 0

    drive(app, go, size=(40, 10))


def test_scrolled_up_it_stays_and_counts_new_lines() -> None:
    app = LinesApp()

    async def go(pilot: Pilot[Any]) -> None:
        view = app.query_one(LinesView)
        view.append(lines(*(f"line {i}" for i in range(40))))
        await pilot.pause()
        view.scroll_to(y=5, animate=False)
        await pilot.pause()
        view.append(lines("new 1", "new 2", "new 3"))
        await pilot.pause()
        assert view.unseen == 3 and view.scroll_y == 5
        view.append(lines(*(f"more {i}" for i in range(10))))  # 3 old lines fall off the top
        await pilot.pause()
        assert view.unseen == 13 and view.scroll_y == 2  # the same text stays under the eyes
        view.follow()
        await pilot.pause()
        assert view.unseen == 0 and view.scroll_y == view.max_scroll_y

    drive(app, go, size=(40, 10))


def test_replacing_with_same_sized_content_repaints() -> None:
    app = LinesApp()

    async def go(pilot: Pilot[Any]) -> None:
        view = app.query_one(LinesView)
        view.set_lines(lines("-LR = 0.1", "+LR = 0.2"))
        await pilot.pause()
        view.set_lines(lines("-LR = 0.3", "+LR = 0.4"))
        await pilot.pause()
        screen = app.export_screenshot()
        assert "0.4" in screen and "0.2" not in screen

    drive(app, go, size=(40, 10))
