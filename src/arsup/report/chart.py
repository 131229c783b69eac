"""The night as a picture (PNG): every experiment a point, the running best a step, the keeps named.

Drawn on a bare `Figure` with the Agg canvas, never through pyplot, so no
display, no global backend and no state shared with a caller's own plots.
The y range is set by the kept line and the baseline (what a reader came
for); discards far worse than that sit on the top edge as triangles
instead of squashing the picture. Crashes have no value: they are crosses
in a row of their own under the chart (same experiment axis, no metric
scale), never marks that could read as a score. The keeps' names are
placed in the drawn layout's pixels (labels.py): none covers another, a
kept point or the legend, none leaves the axes, and the gains the title
gives are improvements (positive = better, whatever the goal).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from arsup.core.experiment import Status
from arsup.core.summary import Point, Summary
from arsup.report import labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KEPT, DISCARDED, CRASHED, BEST, HOLDOUT = "#2a9d3c", "#9a9a9a", "#d62728", "#1f6f2f", "#7b3fa0"
LABEL_CHARS = 42
KEPT_RADIUS, DISCARD_RADIUS = 6.0, 3.0  # pixels: a kept mark (s=46) is never covered, a discard (s=14) at a cost
LEADER_PX = 6.0  # a name further than this from its point is joined to it by a line


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _segment(start: tuple[float, float], end: tuple[float, float]) -> labels.Box:
    """A line piece of the best-so-far steps as a thin box, in pixels."""
    return (min(start[0], end[0]) - 1, min(start[1], end[1]) - 1, max(start[0], end[0]) + 1,
            max(start[1], end[1]) + 1)


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _limits(summary: Summary) -> tuple[float, float]:
    """The y range: the kept line, its holdout scores and the baseline, with room; worse discards are
    clipped to the edge."""
    values = [p.metric for p in summary.points if p.metric is not None]
    core = [p.metric for p in summary.points if p.status == Status.KEEP and p.metric is not None]
    core = (core + [p.holdout for p in summary.points if p.holdout is not None]) or values or [0.0]
    low, high = min(core), max(core)
    span = (high - low) or abs(high) * 0.01 or 1.0
    better = [v for v in values if v < low] if summary.goal == "minimize" else [v for v in values if v > high]
    if summary.goal == "minimize":
        return min([low - 0.08 * span, *better]), high + 0.6 * span
    return low - 0.6 * span, max([high + 0.08 * span, *better])


def draw_night(summary: Summary, path: Path) -> Figure:
    """One tag's chart: points, the best so far, the noise band and the keeps' hypotheses, crashes in a row below."""
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    figure = _figure(14, 7)
    points = summary.points
    xs = range(1, len(points) + 1)
    crashes = [x for x, p in zip(xs, points) if p.status == Status.CRASH]
    if crashes:  # a crash has no value: its own row under the chart, not a mark that reads as a score
        ax, strip = figure.subplots(2, 1, sharex=True, height_ratios=[24, 1])
        strip.scatter(crashes, [0] * len(crashes), marker="x", color=CRASHED, s=30, label="crashed")
        strip.set_ylim(-1, 1)
        strip.set_yticks([])
        strip.set_ylabel("crashed", rotation=0, ha="right", va="center", fontsize=8, color=CRASHED)
        strip.grid(axis="x", alpha=0.25)
    else:
        ax = strip = figure.add_subplot()
    low, high = _limits(summary)
    ax.set_ylim(low, high)
    edge = blended_transform_factory(ax.transData, ax.transAxes)

    def scatter(status: str, **style) -> None:
        chosen = [(x, p.metric) for x, p in zip(xs, points) if p.status == status and p.metric is not None]
        inside = [(x, v) for x, v in chosen if low <= v <= high]
        if inside:
            ax.scatter(*zip(*inside), **style)
        for edge_y, marker, off in ((0.985, "^", [x for x, v in chosen if v > high]),
                                    (0.015, "v", [x for x, v in chosen if v < low])):
            if off:
                ax.scatter(off, [edge_y] * len(off), transform=edge, marker=marker, s=18, color=style["color"],
                           alpha=0.6, clip_on=False)

    scatter(Status.DISCARD, color=DISCARDED, s=14, alpha=0.6, label="discarded", zorder=2)
    scatter(Status.KEEP, color=KEPT, s=46, edgecolors="black", linewidths=0.5, label="kept", zorder=4)
    best = [(x, p.best) for x, p in zip(xs, points) if p.best is not None]
    if best:
        best.append((len(points) + 0.5, best[-1][1]))  # the last step reaches the edge, band and all
        bx, by = zip(*best)
        ax.step(bx, by, where="post", color=BEST, linewidth=1.6, label="best so far", zorder=3)
        if summary.noise_sigma:
            sigma = summary.noise_sigma
            ax.fill_between(bx, [v - sigma for v in by], [v + sigma for v in by], step="post", color=KEPT,
                            alpha=0.15, linewidth=0, label=f"noise ±1σ ({sigma:.4g}, {summary.noise_runs} runs)")
    if summary.baseline is not None:
        ax.axhline(summary.baseline, color=DISCARDED, linestyle="--", linewidth=0.9, label="baseline")
    strip.set_xlabel("experiment")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{summary.metric} ({'lower' if summary.goal == 'minimize' else 'higher'} is better)")
    ax.grid(alpha=0.25)
    held = [(x, p.holdout) for x, p in zip(xs, points) if p.holdout is not None]
    if held:  # the same scale: whether the holdout follows the kept line is the question
        ax.plot(*zip(*held), marker="D", markersize=4, linewidth=1.2, color=HOLDOUT, label="holdout of keeps",
                zorder=5)
        if summary.holdout_warning:
            ax.text(0.01, 0.02, "holdout diverges: " + summary.holdout_warning, transform=ax.transAxes, fontsize=8,
                    color=CRASHED, va="bottom")
    ax.legend(loc="upper right" if summary.goal == "minimize" else "lower right", fontsize=8)
    ax.set_title(_title(summary), loc="left", fontsize=11)
    shown = [(x, p) for x, p in zip(xs, points) if p.metric is not None and low <= p.metric <= high]
    unnamed = _name_keeps(figure, ax, [(x, p) for x, p in shown if p.status == Status.KEEP],
                          [(x, p.metric) for x, p in shown if p.status == Status.DISCARD], best)
    if unnamed:
        ax.set_title(f"{_title(summary)}; {unnamed} keeps not named here (no room): see report.md", loc="left",
                     fontsize=11)
    figure.savefig(path)
    return figure


def _name_keeps(
    figure: Figure, ax: Axes, keeps: list[tuple[int, Point]], discards: list[tuple[int, float]],
    best: list[tuple[float, float]],
) -> int:
    """Each keep's hypothesis near its point, in a place no other name, kept point or edge takes (labels.py),
    with a leader line where it had to move away; how many found no place.

    Placed in the pixels of the drawn layout, which is then frozen so that the names move nothing."""
    figure.canvas.draw()
    figure.set_layout_engine("none")
    ax.set_xlim(ax.get_xlim())
    renderer = figure.canvas.get_renderer()
    px = ax.transData.transform

    def around(x: float, y: float, radius: float) -> labels.Box:
        cx, cy = px((x, y))
        return (cx - radius, cy - radius, cx + radius, cy + radius)

    hard = [around(x, p.metric, KEPT_RADIUS) for x, p in keeps] + [
        artist.get_window_extent(renderer).extents for artist in [ax.get_legend(), *ax.texts]]
    soft = [(around(x, y, DISCARD_RADIUS), 12.0) for x, y in discards]
    soft += [(_segment(px((x0, y0)), px((x1, y0))), 60.0) for (x0, y0), (x1, _) in zip(best, best[1:])]
    soft += [(_segment(px((x1, y0)), px((x1, y1))), 60.0) for (_, y0), (x1, y1) in zip(best, best[1:])]
    texts = [ax.text(0, 0, _short(p.hypothesis), fontsize=7, color=BEST, ha="left", va="bottom", zorder=6,
                     bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75})
             for _, p in keeps]
    sizes = [(box.width, box.height) for box in (t.get_window_extent(renderer) for t in texts)]
    area = ax.get_window_extent(renderer).extents + (3, 3, -3, -3)
    anchors = [tuple(px((x, p.metric))) for x, p in keeps]
    unnamed = 0
    to_data = ax.transData.inverted().transform
    for text, anchor, box in zip(texts, anchors, labels.place(anchors, sizes, tuple(area), hard, soft)):
        if box is None:
            text.remove()
            unnamed += 1
            continue
        text.set_position(to_data((box[0], box[1])))
        if labels.distance(anchor, box)[0] > LEADER_PX:
            end = (min(max(anchor[0], box[0]), box[2]), min(max(anchor[1], box[1]), box[3]))
            (ax0, ay0), (ax1, ay1) = to_data(anchor), to_data(end)
            ax.plot([ax0, ax1], [ay0, ay1], color=BEST, linewidth=0.5, alpha=0.6, zorder=5, scalex=False,
                    scaley=False)
    return unnamed


def _title(summary: Summary) -> str:
    head = f"{summary.tag}: {summary.experiments} experiments, {summary.kept} kept"
    if summary.best is None:
        return head
    gain = f", improvement {summary.gain_pct:+.2f}% over the baseline" if summary.gain_pct is not None else ""
    return f"{head}, best {summary.metric} {summary.best:.6f}{gain}"


def _best_curve(points: list[Point], scale: float | None) -> tuple[list[float], list[float]]:
    """(x, best so far): by experiment number, or by time in hours times `scale` where times are known."""
    chosen = [(n if scale is None else p.hours, p.best) for n, p in enumerate(points, 1) if p.best is not None]
    chosen = [(x if scale is None else x * scale, v) for x, v in chosen if x is not None]
    return [x for x, _ in chosen], [v for _, v in chosen]


def draw_overlay(summaries: list[Summary], path: Path) -> Figure:
    """Several nights' best-so-far curves side by side: by experiment, and by time where times are known."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(14, 5.5)
    by_count, by_time = figure.subplots(1, 2, sharey=True)
    longest = max((p.hours for s in summaries for p in s.points if p.hours is not None), default=0.0)
    unit, scale = ("hours", 1.0) if longest >= 2 else ("minutes", 60.0)
    untimed = []
    for summary in summaries:
        label = f"{summary.tag} (best {summary.best:.6f})" if summary.best is not None else summary.tag
        by_count.step(*_best_curve(summary.points, None), where="post", linewidth=1.6, label=label)
        xs, ys = _best_curve(summary.points, scale)
        if xs:
            by_time.step(xs, ys, where="post", linewidth=1.6, label=label)
        else:
            untimed.append(summary.tag)
    metric = summaries[0].metric
    by_count.set_xlabel("experiment")
    by_count.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_count.set_ylabel(f"best {metric} so far")
    by_time.set_xlabel(unit)
    if untimed:
        by_time.text(0.5, 0.5, f"no times recorded for: {', '.join(untimed)}\n(imported results.tsv)",
                     transform=by_time.transAxes, ha="center", va="center", fontsize=9, color=DISCARDED)
    for ax in (by_count, by_time):
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.suptitle(" vs ".join(s.tag for s in summaries), x=0.01, ha="left", fontsize=11)
    figure.savefig(path)
    return figure
