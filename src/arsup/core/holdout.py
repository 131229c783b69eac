"""What the holdout says about the kept line: are the validation gains real?

A loop that keeps only what beats the validation set, for hundreds of
experiments, ends up fitting that set. The holdout score of each keep is
never shown to the agent; when the kept line's metric improves while its
holdout gets worse over several keeps, the gains are the validation set's,
not the model's, and a person should know.
"""

from __future__ import annotations

from typing import Sequence

from arsup.core.acceptance import gain
from arsup.core.experiment import Experiment, Status


def divergence(history: Sequence[Experiment], goal: str, keeps: int) -> str:
    """A warning when, over the last `keeps` keeps with a holdout value, the metric improved and the
    holdout got worse; "" otherwise."""
    kept = [e for e in history if e.status == Status.KEEP and e.holdout is not None and e.metric is not None]
    window = kept[-keeps:]
    if len(window) < keeps:
        return ""
    first, last = window[0], window[-1]
    improved = gain(last.metric, first.metric, goal)  # type: ignore[arg-type]
    held = gain(last.holdout, first.holdout, goal)  # type: ignore[arg-type]
    if improved <= 0 or held >= 0:
        return ""
    return (
        f"over the last {keeps} keeps ({first.id} to {last.id}) the metric improved by {improved:.6g} "
        f"while the holdout got worse by {-held:.6g}: the loop may be fitting the validation set"
    )
