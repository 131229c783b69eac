"""The Hypothesis pane: the idea being tried, as the model writes it, and the agent's notebook.

Live, it shows the current proposal (the reply streaming in while the agent
thinks, then the hypothesis once it is an experiment); with a past
experiment selected, that experiment's outcome, metrics and reasoning.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from arsup.core.experiment import Experiment
from arsup.tui import labels, text
from arsup.tui.palette import Palette
from arsup.view import SessionView

STREAM_LINES = 40  # of a streaming reply, the newest lines are what matters


def _notebook(note: str, palette: Palette) -> Text:
    out = Text("\nnotebook\n", style=palette.muted + palette.strong)
    out.append(note.strip(), palette.muted)
    return out


def live_text(view: SessionView, palette: Palette) -> Text:
    """The proposal in the making, or the experiment in flight."""
    current = view.pending.experiment if view.pending is not None else view.running
    out = Text()
    if current is not None:
        out.append(f"{current.id}  ", palette.strong)
        out.append(text.one_line(current.hypothesis), palette.strong)
        for slot, other in sorted(view.slots.items()):  # with slots, the others training at the same time
            if other.id != current.id:
                out.append(f"\n{slot} {other.id}  {text.one_line(other.hypothesis)}", palette.muted)
        if view.queued and view.queued[0].id != current.id:
            out.append(f"\nnext {view.queued[0].id}  {text.one_line(view.queued[0].hypothesis)}", palette.muted)
        elif view.proposing_next:
            out.append(f"\nnext {view.proposing_id}  the agent is thinking meanwhile…", palette.muted)
    elif view.agent_text:  # the reply holds the new notebook: the old one would only get in the way
        out.append(f"{view.proposing_id}  the agent is writing…\n", palette.muted)
        out.append("\n".join(view.agent_text.splitlines()[-STREAM_LINES:]))
        return out
    elif view.state == "proposing":
        out.append(f"{view.proposing_id}  the agent is thinking…", palette.muted)
    elif view.ended is not None:
        out.append(f"the loop ended: {view.ended.reason}", palette.bad if view.ended.error else palette.muted)
    else:
        out.append("waiting for the first proposal", palette.muted)
    note = view.notebook()
    if note:
        out.append_text(_notebook(note, palette))
    return out


def past_text(experiment: Experiment, view: SessionView, palette: Palette) -> Text:
    """A finished experiment: what it tried, how it ended and why."""
    out = Text(f"{experiment.id}  ", style=palette.strong)
    out.append(text.one_line(experiment.hypothesis), palette.strong)
    out.append("\n")
    out.append_text(labels.outcome(experiment, view.parent_metric(experiment), view.goal, palette))
    if experiment.reason:
        out.append(f"  {text.one_line(experiment.reason)}", palette.muted)
    figures = [f"{name} {value:g}" for name, value in experiment.metrics.items() if name != view.metric]
    runs = experiment.runs
    if runs:
        figures.append(f"{len(runs)} run{'s' if len(runs) > 1 else ''}, {sum(r.wall_s for r in runs):.0f} s")
    if experiment.p_value is not None:
        figures.append(f"p {experiment.p_value:.3g}")
    if figures:
        out.append("\n" + "  ".join(figures), palette.muted)
    note = experiment.agent_data.get("notebook")
    if isinstance(note, str) and note.strip():
        out.append_text(_notebook(note, palette))
    return out


class HypothesisPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="hypothesis-text")

    def show(self, content: Text, subtitle: str, follow: bool = False) -> None:
        """Show `content`; `follow` keeps the newest line in view (a reply streaming in)."""
        self.query_one("#hypothesis-text", Static).update(content)
        self.border_subtitle = subtitle
        if follow:
            self.scroll_end(animate=False)  # deferred by Textual until the new text is laid out
        else:
            self.scroll_home(animate=False)
