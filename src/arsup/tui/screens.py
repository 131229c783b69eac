"""The modal screens: an approval, a note to the agent, quitting, help, and errors.

Each returns what the person chose through `dismiss`; the app acts on it.
None of them touches the loop, so each can be shown with made-up data.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from arsup.core import policy
from arsup.core.events import ApprovalRequested
from arsup.core.experiment import Experiment
from arsup.tui import keys, text
from arsup.tui.lines import LinesView
from arsup.tui.palette import Palette
from arsup.tui.panes.diff import diff_lines

APPROVE, SKIP, EDIT, HIDE = "approve", "skip", "edit", "hide"
DETACH, STOP_NOW, STOP_AFTER_RUN = "detach", "stop now", "stop after run"

POLICY_HELP = {
    "auto": "never ask",
    "edits": "ask before each edit is committed (e edits it first)",
    "runs": "ask before each training run, the baseline included",
    "keeps": "ask before a result is kept on the branch",
}
QUESTIONS = {
    policy.EDIT: "Commit this edit?",
    policy.RUN: "Train this experiment?",
    policy.KEEP: "Keep this result on the branch?",
}


class ApprovalScreen(ModalScreen[str]):
    """The pending question with its hypothesis and diff; a/s/e answer, esc hides it (a/s still work)."""

    BINDINGS = [
        keys.binding("approve"),
        keys.binding("skip"),
        keys.binding("edit"),
        Binding("escape", "dismiss_hidden", "hide"),
        keys.binding("quit", "app.quit"),  # a modal cuts off the app's keys; quitting must still work here
    ]

    def __init__(
        self, request: ApprovalRequested, palette: Palette, best: float | None, key_map: dict[str, str]
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.request = request
        self.palette = palette
        self.best = best
        self.key_map = key_map

    def compose(self) -> ComposeResult:
        request, experiment = self.request, self.request.experiment
        with Vertical(id="approval", classes="dialog") as box:
            box.border_title = f"{QUESTIONS.get(request.kind, 'Approve?')}  {experiment.id}"
            hypothesis = Text(text.one_line(experiment.hypothesis), style=self.palette.strong)
            if request.kind == policy.KEEP and experiment.metric is not None:
                hypothesis.append(f"\n{text.metric(experiment.metric)} vs best {text.metric(self.best)}")
                hypothesis.append(f"  {text.one_line(experiment.reason)}", self.palette.muted)
            yield Static(hypothesis, id="approval-hypothesis")
            diff = LinesView(id="approval-diff")
            yield diff
            yield Static(self._hint(), id="approval-keys")

    def on_mount(self) -> None:
        diff = self.query_one("#approval-diff", LinesView)
        if self.request.experiment.diff:
            diff.set_lines(diff_lines(self.request.experiment.diff, self.palette))
        else:
            what = "the unmodified code (baseline)" if self.request.experiment.is_baseline else "no diff"
            diff.set_lines([Text(what, style="dim")])

    def _hint(self) -> Text:
        hint = Text()
        for action_id, words in ((APPROVE, "approve"), (SKIP, "skip"), (EDIT, "edit in $EDITOR")):
            if action_id == EDIT and self.request.kind != policy.EDIT:
                continue
            hint.append(f" {keys.key_of(action_id, self.key_map)} ", "bold reverse")
            hint.append(f" {words}   ")
        hint.append(" esc ", "bold reverse")
        hint.append(" hide, answer later")
        return hint

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == EDIT:
            return self.request.kind == policy.EDIT and bool(self.request.files)
        return True

    def action_approve(self) -> None:
        self.dismiss(APPROVE)

    def action_skip(self) -> None:
        self.dismiss(SKIP)

    def action_edit(self) -> None:
        self.dismiss(EDIT)

    def action_dismiss_hidden(self) -> None:
        self.dismiss(HIDE)


class NoteScreen(ModalScreen[str]):
    """One line to the agent; enter sends, esc cancels (dismisses with "")."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(id="note", classes="dialog") as box:
            box.border_title = "Note to the agent"
            yield Static("The agent reads your notes in every prompt from its next proposal on.")
            yield Input(placeholder="e.g. try a smaller model first", id="note-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss("")


class QuitScreen(ModalScreen[str]):
    """Leaving a live loop: detach (the default: it goes on), stop after this run, stop now, or cancel."""

    BINDINGS = [
        Binding("d,enter", f"choose('{DETACH}')", "detach"),
        Binding("s", f"choose('{STOP_AFTER_RUN}')", "stop after this run"),
        Binding("S", f"choose('{STOP_NOW}')", "stop now"),
        Binding("escape", "choose('')", "cancel"),
    ]
    BUTTONS = {"quit-detach": DETACH, "quit-after": STOP_AFTER_RUN, "quit-now": STOP_NOW}

    def __init__(self, training: bool) -> None:
        super().__init__(classes="dialog-screen")
        self.training = training

    def compose(self) -> ComposeResult:
        killed = " (the training is killed and recorded as a crash)" if self.training else ""
        with Vertical(id="quit", classes="dialog") as box:
            box.border_title = "Leave the screen"
            yield Static(
                "d detaches: the screen closes and the loop goes on (`arsup attach` comes back to it).\n"
                f"s stops the loop after this run; S stops it now{killed}. esc: back to the screen."
            )
            with Horizontal(id="quit-buttons"):
                yield Button("d  detach", id="quit-detach", variant="primary")
                yield Button("s  after this run", id="quit-after")
                yield Button("S  stop now", id="quit-now", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.BUTTONS.get(event.button.id or "", ""))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class KillScreen(ModalScreen[bool]):
    """The one-key confirm before a kill (as k9s asks before a destructive action): y kills, n or esc keeps it.

    Enter does not confirm: a stray enter meant for the history must not end a run."""

    BINDINGS = [Binding("y", "choose(True)", "kill"), Binding("n,escape", "choose(False)", "keep it running")]

    def __init__(self, experiment: Experiment) -> None:
        super().__init__(classes="dialog-screen")
        self.experiment = experiment

    def compose(self) -> ComposeResult:
        experiment = self.experiment
        after = (
            "the night cannot go on without the baseline: it ends, and starting arsup again measures it anew"
            if experiment.is_baseline
            else "it is recorded as a crash and the loop goes on"
        )
        with Vertical(id="kill", classes="dialog") as box:
            box.border_title = f"Kill the training of {experiment.id}?"
            yield Static(Text(text.one_line(experiment.hypothesis), style="bold"))
            yield Static(f"{after}.")
            hint = Text()
            hint.append(" y ", "bold reverse")
            hint.append(" kill   ")
            hint.append(" n ", "bold reverse")
            hint.append(" / ")
            hint.append(" esc ", "bold reverse")
            hint.append(" keep it running")
            yield Static(hint)

    def action_choose(self, kill: bool) -> None:
        self.dismiss(kill)


class HelpScreen(ModalScreen[None]):
    """The keys as configured now, and what the approval policies mean."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "close")]

    def __init__(self, keymap: dict[str, str], current_policy: str) -> None:
        super().__init__(classes="dialog-screen")
        self.keymap = keymap
        self.current_policy = current_policy

    def compose(self) -> ComposeResult:
        """One line a key, then the moves and the policies as runs of words: it fits 80x24."""
        body = Text()
        for action in keys.ACTIONS:
            body.append(f"{keys.key_of(action.id, self.keymap):>5}  ", "bold")
            body.append(f"{action.help}\n")
        body.append("moving  ", "bold")
        for index, (shown, words) in enumerate(keys.NAVIGATION):
            body.append(" · " if index else "")
            body.append(shown, "bold")
            body.append(f" {words}")
        body.append(f"\npolicies  ({keys.key_of('policy', self.keymap)} cycles; now ", "bold")
        body.append(self.current_policy, "bold")
        body.append(") ", "bold")
        for index, (name, meaning) in enumerate(POLICY_HELP.items()):
            body.append(" · " if index else "")
            body.append(name, "bold")
            body.append(f" {meaning}")
        body.append("\nkeys can be changed in arsup.toml: [keys] approve = \"y\"", "dim")
        with Vertical(id="help", classes="dialog") as box:
            box.border_title = "Keys"
            yield Static(body)

    def action_close(self) -> None:
        self.dismiss(None)



class ErrorScreen(ModalScreen[None]):
    """Something went wrong that the person should read; the screen stays up."""

    BINDINGS = [Binding("escape,enter", "close", "close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error", classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(Text(self.message))
            yield Static(Text("esc closes", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
