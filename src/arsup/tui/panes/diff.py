"""The Diff pane: an experiment's change as a coloured unified diff, built as `Text` line by line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from arsup.core.experiment import Experiment
from arsup.tui.lines import LinesView
from arsup.tui.palette import Palette

MAX_DIFF_LINES = 5000


def diff_lines(diff: str, palette: Palette) -> list[Text]:
    """Unified diff lines with +/- and hunk headers coloured; the text itself is never interpreted."""
    out = []
    for line in diff.splitlines()[:MAX_DIFF_LINES]:
        line = line.expandtabs(4)
        if line.startswith(("+++", "---", "diff ", "index ")):
            style = palette.strong
        elif line.startswith("@@"):
            style = palette.accent
        elif line.startswith("+"):
            style = palette.good
        elif line.startswith("-"):
            style = palette.bad
        else:
            style = None
        out.append(Text(line, style=style or ""))
    return out


class DiffPane(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.experiment: Experiment | None = None
        self.palette: Palette | None = None

    def compose(self) -> ComposeResult:
        yield LinesView(MAX_DIFF_LINES, id="diff-lines")

    def show(self, experiment: Experiment | None) -> None:
        self.experiment = experiment
        self._draw()

    def restyle(self, palette: Palette) -> None:
        self.palette = palette
        self._draw()

    def _draw(self) -> None:
        experiment, palette = self.experiment, self.palette or Palette.from_variables({})
        view = self.query_one(LinesView)
        if experiment is None:
            view.set_lines([Text("no experiment yet", style="dim")])
            self.border_subtitle = ""
        elif not experiment.diff:
            what = "the unmodified code" if experiment.is_baseline else "no change recorded"
            view.set_lines([Text(f"{experiment.id}: {what}", style="dim")])
            self.border_subtitle = experiment.id
        else:
            view.set_lines(diff_lines(experiment.diff, palette))
            self.border_subtitle = f"{experiment.id}  {', '.join(experiment.files)}"
