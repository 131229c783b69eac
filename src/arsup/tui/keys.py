"""The screen's keys: one table of action ids, default keys and words, and the `[keys]` remapping.

Action ids are what `[keys]` in arsup.toml names (`approve = "y"`); Textual's
keymap applies them to every binding with that id, the approval dialog's
included, so a remapped key works the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

from arsup.core.policy import POLICIES


@dataclass(frozen=True)
class KeyAction:
    id: str
    key: str  # Textual key name
    label: str  # in the footer
    help: str  # in the help screen
    display: str = ""  # how the key is shown, when its name is not the character


ACTIONS = (
    KeyAction("approve", "a", "approve", "approve the pending edit, run or keep"),
    KeyAction("skip", "s", "skip", "reject the pending proposal (recorded as skipped) or keep"),
    KeyAction("edit", "e", "edit", "edit the pending change in $EDITOR, then approve it"),
    KeyAction("kill", "x", "kill run", "kill the training (asks: y kills, n keeps it); recorded as a crash"),
    KeyAction("pause", "p", "pause", "pause after the current step; again to resume"),
    KeyAction("note", "n", "note", "write a note that the agent reads in every prompt from now on"),
    KeyAction("policy", "P", "policy", f"cycle the approval policy: {', '.join(POLICIES)}"),
    KeyAction("live", "l", "live", "back to the live experiment after looking at a past one"),
    KeyAction("transcript", "T", "transcript",
              "the coding agent's transcript of the experiment in view: each message and tool call, refused ones too"),
    KeyAction("filter", "slash", "filter", "filter the history by words of the hypothesis, a status or an id",
              display="/"),
    KeyAction("theme", "t", "theme", "cycle the colour theme"),
    KeyAction("help", "question_mark", "help", "this help", display="?"),
    KeyAction("quit", "q", "quit", "leave; while the loop runs, asks: detach (it goes on), stop after this run, or stop now"),
)
BY_ID = {action.id: action for action in ACTIONS}
NAVIGATION = (  # the history's own keys, as vim, lazygit and k9s users move; not remappable
    ("j k ↓ ↑", "move in the history"),
    ("enter", "show that experiment"),
    ("[ ]", "Tree, Table, Chart"),
    ("tab", "next pane"),
)


def binding(action_id: str, action: str | None = None, label: str | None = None, show: bool = True) -> Binding:
    """The binding for one action id (a screen may bind it to its own action and words)."""
    spec = BY_ID[action_id]
    return Binding(
        spec.key,
        action or action_id,
        label or spec.label,
        show=show,
        key_display=spec.display or None,
        id=action_id,
    )


def main_bindings() -> list[BindingType]:
    """The main screen's bindings; `p` is two bindings (pause, resume) and the state picks one."""
    bindings: list[BindingType] = []
    for action in ACTIONS:
        bindings.append(binding(action.id))
        if action.id == "pause":
            bindings.append(binding("pause", "resume", "resume"))
    return bindings


def after_escape(key: str, character: str | None) -> str | None:
    """The key typed right after esc, when the terminal's parser read the two as one alt+key, else None.

    Textual reads esc followed within ESCDELAY (100 ms) by `q` as alt+q: `esc` then `q`, typed quickly to close
    a dialog and leave, would do nothing. arsup binds no alt key, so an alt+key of one character is those two."""
    if character is None or len(character) != 1 or not key.startswith("alt+"):
        return None
    plain = key.removeprefix("alt+")
    return character if plain == f"shift+{character.lower()}" else plain  # alt+shift+q is esc then Q


def keymap(overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The `[keys]` table as a Textual keymap, and a problem for each unknown action id."""
    known = {k: v for k, v in overrides.items() if k in BY_ID and v.strip()}
    problems = [
        f"[keys] {name}: no such action (actions: {', '.join(BY_ID)})" for name in overrides if name not in BY_ID
    ]
    return known, problems


def key_of(action_id: str, keymap_: dict[str, str]) -> str:
    """The key an action has now, as a person would type it."""
    spec = BY_ID[action_id]
    return keymap_.get(action_id) or spec.display or spec.key
