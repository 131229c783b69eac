"""How one experiment reads on screen: status, metric and delta as `Text`, never markup.

Hypotheses come from a model or a script and may hold `[brackets]`; they are
appended as plain strings, so Textual's markup parser never sees them.
"""

from __future__ import annotations

from rich.text import Text

from arsup.core import load
from arsup.core.experiment import Experiment, Status
from arsup.tui import text
from arsup.tui.palette import Palette


def outcome(experiment: Experiment, parent_metric: float | None, goal: str, palette: Palette) -> Text:
    """`keep     2.189082 -0.447261`: status, metric and the change from the experiment it started from."""
    label = Text()
    label.append(f"{experiment.status:<7}", palette.status(experiment.status))
    shown = experiment.metric if experiment.status in (Status.KEEP, Status.DISCARD, Status.RUNNING) else None
    label.append(f" {text.metric(shown):>9}")
    if shown is not None and parent_metric is not None:
        change = shown - parent_metric
        label.append(f" {text.delta(change)}", palette.change(text.improves(change, goal)))
    if experiment.status == Status.KEEP and experiment.p_value is not None:
        sigmas = f"{experiment.gain_sigma:+.1f}σ " if experiment.gain_sigma is not None else ""
        label.append(f" {sigmas}p={experiment.p_value:.2g}", palette.accent)
    if experiment.holdout is not None:
        label.append(f" holdout {text.metric(experiment.holdout)}", palette.accent)
    return label


def tree_label(
    experiment: Experiment, parent_metric: float | None, goal: str, palette: Palette, compact: bool = False
) -> Text:
    """`0003 keep     2.189082 -0.447261  WARMUP_STEPS 20 -> 16`; `compact` (a narrow tree, 80 columns):
    `0003 k 2.189082 WARMUP_STEPS 20 -> 16`, the status as its coloured initial and no change, so the
    hypothesis still shows its start (the table has every column)."""
    label = Text(experiment.id, style=palette.strong)
    label.append(" ")
    if compact:
        shown = experiment.metric if experiment.status in (Status.KEEP, Status.DISCARD) else None
        label.append(experiment.status[:1], palette.status(experiment.status))
        label.append(f" {text.metric(shown)} " if shown is not None else " ")
        label.append(text.one_line(experiment.hypothesis))
        return label
    label.append_text(outcome(experiment, parent_metric, goal, palette))
    label.append("  ")
    label.append(text.one_line(experiment.hypothesis))
    if share := load.shortest(experiment):  # after the hypothesis, so a narrow tree still shows its start
        label.append(f"  ⚠ time-capped {share:.0%}", palette.warn)
    return label


def running_label(experiment: Experiment, state: str, palette: Palette) -> Text:
    """The experiment training now, e.g. `0007 training 42%  LR 0.003`."""
    label = Text(experiment.id, style=palette.strong)
    label.append(f" {state}", palette.accent)
    label.append("  ")
    label.append(text.one_line(experiment.hypothesis))
    return label
