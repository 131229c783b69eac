"""The agent's transcript of one experiment: every message and tool call of the coding agent, one line each.

Opened from the history (the experiment in view, live or browsing) with the
`transcript` key. The lines are the ones the hypothesis pane showed while
the agent worked ("Read train.py", "Edit train.py +1 -1", "denied: ..."),
read back from `.arsup/runs/<id>/agent.jsonl` by the agent's own dialect
(`arsup.core.agents.transcript`), in a thread: a long session's file is
large. An experiment without one says so in one line.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from arsup.config import CLI_AGENT_KINDS
from arsup.core.agents import transcript
from arsup.core.agents.base import TRANSCRIPT
from arsup.core.experiment import Experiment
from arsup.tui import text
from arsup.tui.lines import LinesView
from arsup.tui.palette import Palette

MAX_LINES = 100_000


def applies(experiment: Experiment, session_agent: str) -> bool:
    """Whether the transcript key is offered: the experiment has one, or the night's agent is a coding agent (then
    one without, its baseline, says so); an LLM or tuner night's footer has no use for the key."""
    coding = experiment.agent in CLI_AGENT_KINDS or any(kind in session_agent for kind in CLI_AGENT_KINDS)
    return coding or bool(experiment.agent_data.get(TRANSCRIPT))


def transcript_lines(experiment: Experiment, project: str) -> tuple[list[str], str]:
    """The transcript's lines, or ([], one line saying why there are none)."""
    kept = experiment.agent_data.get(TRANSCRIPT)
    if not isinstance(kept, str) or not kept:
        why = ("it is the baseline, the unmodified code" if experiment.is_baseline
               else f"the {experiment.agent or 'unknown'} agent keeps none" if experiment.agent not in CLI_AGENT_KINDS
               else "none was kept")
        return [], f"{experiment.id} has no agent transcript: {why}"
    path = Path(project) / kept
    try:
        events = transcript.read(path)
    except OSError as exc:
        return [], f"cannot read the transcript of {experiment.id}, {path}: {exc.strerror or exc}"
    lines = transcript.shown_lines(events, experiment.agent)
    return lines, "" if lines else f"{experiment.id}: the agent's transcript is empty"


class TranscriptScreen(ModalScreen[None]):
    """One experiment's agent transcript, scrollable; esc or q closes it."""

    BINDINGS = [Binding("escape,q", "close", "close")]
    DEFAULT_CSS = """
    #transcript { height: 90%; }
    #transcript-lines { height: 1fr; border: round $border-blurred; }
    """

    def __init__(self, experiment: Experiment, project: str, palette: Palette) -> None:
        super().__init__(classes="dialog-screen")
        self.experiment = experiment
        self.project = project
        self.palette = palette

    def compose(self) -> ComposeResult:
        with Vertical(id="transcript", classes="dialog") as box:
            box.border_title = f"Agent transcript  {self.experiment.id}  {self.experiment.agent}"
            yield Static(Text(text.one_line(self.experiment.hypothesis), style=self.palette.strong))
            yield LinesView(MAX_LINES, id="transcript-lines")
            yield Static(Text("↑↓ PgUp PgDn scroll   esc/q close", style="dim"))

    def on_mount(self) -> None:
        view = self.query_one(LinesView)
        view.set_lines([Text(f"reading the transcript of {self.experiment.id}…", style="dim")])
        view.focus()
        self._read()

    @work(thread=True, exclusive=True)
    def _read(self) -> None:
        lines, why = transcript_lines(self.experiment, self.project)
        self.app.call_from_thread(self._show, lines, why)

    def _show(self, lines: list[str], why: str) -> None:
        view = self.query_one(LinesView)
        if why:
            view.set_lines([Text(why, style=self.palette.muted)])
            return
        view.set_lines(self._styled(line) for line in lines)
        view.scroll_home(animate=False)

    def _styled(self, line: str) -> Text:
        shown = text.log_line(line)  # the agent's words are untrusted: shown as printed, never as markup
        if line.startswith("denied: "):
            shown.stylize(self.palette.bad)
        elif line.startswith("── call "):
            shown.stylize(self.palette.muted)
        return shown

    def action_close(self) -> None:
        self.dismiss(None)
