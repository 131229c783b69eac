"""The Log pane: the live training output, or the log of a past experiment read from disk.

The live view keeps receiving output even while a past log is shown, so
going back to live loses nothing. Past logs are read in a thread worker
(only their tail: a log can be gigabytes), and every line goes through
`text.log_line`, so progress bars, colours and brackets show as a terminal
would show them and never as markup.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message

from arsup.core.experiment import Experiment
from arsup.tui import text
from arsup.tui.lines import LinesView

LIVE_LINES = 5000  # in memory; the whole log is on disk
TAIL_BYTES = 256 * 1024  # of each past run's log


def read_tail(path: Path, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The last lines of a log file (a partial first line is dropped when the file was cut)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if size > max_bytes:
        lines = lines[1:]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def past_log(experiment: Experiment) -> list[str]:
    """The tail of each run's log of a finished experiment, runs separated by a rule."""
    if not experiment.runs:
        return [f"no log: {experiment.id} never trained ({experiment.status}: {text.one_line(experiment.reason)})"]
    out: list[str] = []
    for number, run in enumerate(experiment.runs, start=1):
        if len(experiment.runs) > 1:
            out.append(f"── run {number} of {len(experiment.runs)}, seed {run.seed} ──")
        if not run.log_path:  # imported from a results.tsv, which keeps no logs
            out.append(f"no log: {experiment.id} was {text.one_line(experiment.reason)}, which keeps no run logs")
            continue
        try:
            out.extend(read_tail(Path(run.log_path)))
        except OSError as exc:
            out.append(f"cannot read {run.log_path}: {exc.strerror}")
    return out[-LIVE_LINES:]


class LogPane(Vertical):
    class PastLogRead(Message):
        """A past log, read in a worker thread, back on the app's loop."""

        def __init__(self, experiment_id: str, lines: list[str]) -> None:
            super().__init__()
            self.experiment_id = experiment_id
            self.lines = lines

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.live_id = ""
        self.past_id = ""  # the experiment shown instead of live, "" when live

    def compose(self) -> ComposeResult:
        yield LinesView(LIVE_LINES, id="log-live")
        yield LinesView(LIVE_LINES, id="log-past")

    def on_mount(self) -> None:
        self.query_one("#log-past").display = False
        self.watch(self.query_one("#log-live", LinesView), "unseen", self._update_subtitle, init=False)
        self._update_subtitle()

    @property
    def live_view(self) -> LinesView:
        return self.query_one("#log-live", LinesView)

    def start_live(self, experiment_id: str) -> None:
        """A new experiment trains: the live view starts empty."""
        self.live_id = experiment_id
        self.live_view.set_lines([])
        self._update_subtitle()

    def live_note(self, line: str) -> None:
        """A line of arsup's own (e.g. a repeat run starting), not from the training."""
        self.live_view.append([Text(line, style="dim")])

    def live_output(self, lines: list[str], partial: str) -> None:
        self.live_view.append([text.log_line(line) for line in lines], text.log_line(partial) if partial else None)

    def show_past(self, experiment: Experiment) -> None:
        self.past_id = experiment.id
        past = self.query_one("#log-past", LinesView)
        past.set_lines([Text(f"reading the log of {experiment.id}…", style="dim")])
        past.display, self.live_view.display = True, False
        self._update_subtitle()
        self._read(experiment)

    def show_live(self) -> None:
        self.past_id = ""
        self.query_one("#log-past").display, self.live_view.display = False, True
        self.live_view.follow()
        self._update_subtitle()

    @work(thread=True, exclusive=True, group="past-log")
    def _read(self, experiment: Experiment) -> None:
        self.post_message(self.PastLogRead(experiment.id, past_log(experiment)))

    def on_log_pane_past_log_read(self, message: PastLogRead) -> None:
        message.stop()
        if message.experiment_id != self.past_id:
            return  # the person moved on meanwhile
        past = self.query_one("#log-past", LinesView)
        past.set_lines(text.log_line(line) for line in message.lines)
        past.scroll_end(animate=False)

    def _update_subtitle(self, _unseen: int = 0) -> None:
        if self.past_id:
            self.border_subtitle = f"{self.past_id} from disk"
            return
        unseen = self.live_view.unseen
        live = f"{self.live_id} live" if self.live_id else "live"
        self.border_subtitle = f"{live}  {unseen} new lines ↓ end" if unseen else live
