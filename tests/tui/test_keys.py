"""One table of actions; [keys] remaps them by id and names the ids it does not know."""

from __future__ import annotations

from arsup.tui import keys


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
