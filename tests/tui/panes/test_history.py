"""The history at 80 columns: compact tree labels that leave room for each hypothesis."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from arsup.tui.panes.history import ExperimentTree
from tests.tui.conftest import drive, screen_with, until


def test_at_80x24_the_tree_shows_the_start_of_every_hypothesis() -> None:
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        tree = app.main.query_one(ExperimentTree)
        await until(pilot, lambda: tree.compact and len(tree.root.children) == 1, what="the compact tree")
        await pilot.pause(0.2)
        shown = [
            "".join(segment.text for segment in strip)
            for strip in app.screen._compositor.render_strips()
        ]
        for experiment in app.view.history:
            start = f"{experiment.id} {experiment.status[:1]}"
            row = next(line for line in shown if start in line)
            assert experiment.hypothesis[:8] in row, row

    drive(app, go, size=(80, 24))


def test_a_wide_tree_keeps_every_column() -> None:
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        tree = app.main.query_one(ExperimentTree)
        await until(pilot, lambda: tree.root.children, what="the tree")
        assert not tree.compact and "keep " in str(tree.root.children[0].label)

    drive(app, go, size=(160, 40))
