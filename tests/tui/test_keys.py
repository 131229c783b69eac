"""One table of actions; [keys] remaps them by id and names the ids it does not know; the keys as typed."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from textual import events
from textual.pilot import Pilot
from textual.widgets import Tabs
from textual.widgets._toast import Toast

from arsup.core.events import ApprovalRequested
from arsup.core.experiment import Experiment, Status
from arsup.tui.panes.history import ExperimentTree, ResultsTable
from arsup.tui.screens import ApprovalScreen, HelpScreen, KillScreen, QuitScreen
from arsup.tui import keys
from tests.tui.conftest import drive, screen_with, until


def test_every_action_has_one_binding_and_p_has_two() -> None:
    bindings = keys.main_bindings()
    assert [b.id for b in bindings].count("pause") == 2
    assert {b.action for b in bindings if b.id == "pause"} == {"pause", "resume"}
    assert {b.id for b in bindings} == set(keys.BY_ID)
    assert len({b.key for b in bindings if b.id != "pause"}) == len(keys.ACTIONS) - 1  # no clashes


def test_keymap_keeps_known_ids_and_reports_the_rest() -> None:
    keymap, problems = keys.keymap({"approve": "y", "aprove": "z", "skip": " "})
    assert keymap == {"approve": "y"}
    assert problems == [f"[keys] aprove: no such action (actions: {', '.join(keys.BY_ID)})"]
    assert keys.key_of("approve", keymap) == "y" and keys.key_of("help", {}) == "?"


# -- the keys as a person types them, on a screen fed made-up events (no loop) -------------------------------------






def test_kill_asks_first_and_only_y_kills() -> None:
    running = Experiment("0005", "t", "c1", "slow idea", "script", commit="d5", status=Status.RUNNING)
    app, controls = screen_with(running)

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.running is not None, what="the training")
        await pilot.press("k")  # up, as in vim: never a kill
        assert app.screen is app.main
        await pilot.press("x")
        assert isinstance(app.screen, KillScreen)
        await pilot.press("enter")  # a stray enter keeps it
        assert isinstance(app.screen, KillScreen)
        await pilot.press("n")
        assert app.screen is app.main
        await pilot.press("x", "escape", "x", "y")
        await until(pilot, lambda: ("kill", ()) in controls.calls, what="the kill")
        assert controls.calls.count(("kill", ())) == 1

    drive(app, go, size=(120, 40))


def test_j_k_move_in_the_tree_and_the_table_and_tab_lands_on_rows() -> None:
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        tree = app.main.query_one(ExperimentTree)
        await until(pilot, lambda: app.focused is tree and tree.root.children, what="the tree")
        tree.cursor_line = 0
        await pilot.press("j", "j")
        assert tree.cursor_line == 2
        await pilot.press("k")
        assert tree.cursor_line == 1
        await pilot.press("tab", "shift+tab")
        assert not isinstance(app.focused, Tabs)  # the tab strip is never a stop
        assert app.focused is tree
        await pilot.press("right_square_bracket")
        table = app.main.query_one(ResultsTable)
        await until(pilot, lambda: app.focused is table and table.row_count == 4, what="the table")
        await pilot.press("j", "j", "k")
        assert table.cursor_row == 1
        await pilot.press("left_square_bracket")
        assert app.focused is tree

    drive(app, go, size=(120, 40))


def test_the_help_lists_the_navigation_keys_and_fits_80x24() -> None:
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.history, what="the session")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help")
        shown = str(box.query_one("Static").render())
        assert "j k" in shown and "[ ]" in shown and "x" in shown
        assert box.region.height <= 24 and box.outer_size.height <= 24
        assert box.virtual_size.height <= box.region.height  # nothing cut off

    drive(app, go, size=(80, 24))


def test_esc_then_q_typed_quickly_is_not_alt_q() -> None:
    """The terminal's parser reads esc and q within its escape delay as alt+q: it is still esc, then q."""
    assert keys.after_escape("alt+q", "q") == "q" and keys.after_escape("alt+shift+s", "S") == "S"
    assert keys.after_escape("q", "q") is None and keys.after_escape("alt+up", None) is None
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.history, what="the session")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        app.post_message(events.Key("alt+q", "q"))  # what the parser makes of esc q: the help closes, q asks
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="the quit dialog")

    drive(app, go, size=(120, 40))


def test_slash_filters_the_history_by_hypothesis_status_and_id() -> None:
    app, _ = screen_with()

    async def go(pilot: Pilot[Any]) -> None:
        tree = app.main.query_one(ExperimentTree)
        await until(pilot, lambda: app.focused is tree and len(tree.root.children) == 1, what="the tree")

        def ids() -> list[str]:
            found = []
            for node in [*tree.root.children, *(c for n in tree.root.children for c in n.children)]:
                if node.data is not None:
                    found.append(node.data.id)
            return sorted(found)

        await pilot.press("slash", *"idea 3")
        assert ids() == ["0003"]
        await pilot.press("enter")  # back to the rows, the filter kept
        assert app.focused is tree and ids() == ["0003"]
        await pilot.press("slash", *"\b" * 6, *"discard")
        await until(pilot, lambda: ids() == ["0002", "0003", "0004"], what="the discards")
        await pilot.press("escape")  # clears
        assert ids() == ["0001", "0002", "0003", "0004"] and app.focused is tree
        await pilot.press("right_square_bracket", "slash", *"0004", "enter")
        table = app.main.query_one(ResultsTable)
        await until(pilot, lambda: table.row_count == 1 and app.focused is table, what="the filtered table")

    drive(app, go, size=(120, 40))



def test_a_toast_never_covers_the_approval_dialog() -> None:
    running = Experiment("0005", "t", "c1", "slow idea", "script", commit="d5", status=Status.PROPOSED)
    app, _ = screen_with()
    app.bridge(ApprovalRequested("run", running, Future(), question_id="q1"))

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the question")
        app.notify("a long notice that would sit over the dialog's keys " * 3, timeout=30)
        await pilot.pause(0.2)
        assert not [toast for toast in app.screen.query(Toast) if toast.display and toast.region.area]
        await pilot.press("escape")  # put aside: the notice shows on the main screen
        await until(pilot, lambda: any(t.region.area for t in app.screen.query(Toast)), what="the toast")

    drive(app, go, size=(80, 24), notifications=True)
