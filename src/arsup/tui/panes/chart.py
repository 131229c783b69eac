"""The metric per experiment, like autoresearch's progress.png: every point, and the running best as a line.

Plotext is imported the first time the chart tab is shown, not when the
screen opens: the first frame must come fast, and many sessions never open
this tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from arsup.core import acceptance
from arsup.core.experiment import Status
from arsup.tui.palette import Palette
from arsup.view import SessionView

MAX_TICKS = 16  # beyond this, plotext's own ticks read better than one per experiment

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot


def series(view: SessionView) -> tuple[list[tuple[int, float, bool]], list[tuple[int, float]]]:
    """(number, metric, kept) for every trained experiment, and the running best as a step line."""
    points = [
        (int(e.id) if e.id.isdigit() else n, e.metric, e.status == Status.KEEP)
        for n, e in enumerate(view.history, start=1)
        if e.status in (Status.KEEP, Status.DISCARD) and e.metric is not None
    ]
    steps: list[tuple[int, float]] = []
    for number, value, kept in points:
        if kept:
            if steps:
                steps.append((number, steps[-1][1]))  # hold the previous best until this keep
            steps.append((number, value))
    if steps and points:
        steps.append((points[-1][0], steps[-1][1]))
    return points, steps


def noise_band(steps: list[tuple[int, float]], sigma: float) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The running best plus and minus one noise sigma: a keep inside the band was never sure."""
    return [(n, v + sigma) for n, v in steps], [(n, v - sigma) for n, v in steps]


def _rgb(style: Style) -> tuple[int, int, int]:
    """Plotext takes colours as RGB tuples; the palette's are Rich styles."""
    if style.color is None:
        return (78, 191, 113)
    red, green, blue = style.color.get_truecolor()
    return red, green, blue


class MetricChart(Container):
    DEFAULT_CSS = """
    MetricChart { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._plot: PlotextPlot | None = None
        self._latest: tuple[SessionView, Palette] | None = None

    def compose(self) -> ComposeResult:
        yield Static("no trained experiment yet", id="chart-empty")

    def on_show(self) -> None:
        if self._plot is None:
            from textual_plotext import PlotextPlot

            self._plot = PlotextPlot()
            self.mount(self._plot)
        if self._latest is not None:
            self.draw(*self._latest)

    def draw(self, view: SessionView, palette: Palette) -> None:
        self._latest = (view, palette)
        points, steps = series(view)
        self.query_one("#chart-empty").display = not points
        if self._plot is None:
            return
        self._plot.display = bool(points)
        plt = self._plot.plt
        plt.clear_data()
        plt.clear_figure()
        good = _rgb(palette.good)
        noise = acceptance.noise(view.history, view.metric)
        if steps and noise is not None and noise.sigma > 0:  # first, so the line and points are drawn over it
            for edge in noise_band(steps, noise.sigma):
                plt.plot([n for n, _ in edge], [v for _, v in edge], marker="·", color="gray")
        if steps:
            plt.plot([n for n, _ in steps], [v for _, v in steps], marker="braille", color=good)
        for kept, marker, color in ((False, "•", "gray"), (True, "●", good)):
            chosen = [(n, v) for n, v, k in points if k == kept]
            if chosen:
                plt.scatter([n for n, _ in chosen], [v for _, v in chosen], marker=marker, color=color)
        numbers = sorted({n for n, _, _ in points})
        if len(numbers) <= MAX_TICKS:
            plt.xticks([float(n) for n in numbers], [str(n) for n in numbers])
        band = f"  ·· best ± {noise.describe()}" if noise is not None and noise.sigma > 0 else ""
        plt.title(f"{view.metric} ({view.goal}): ● kept  • discarded{band}")
        plt.xlabel("experiment")
        self._plot.refresh()
