"""Stopping a hopeless run early: its loss curve against the best run's, at the same point of training.

A run whose loss at 40 % of its steps is far above what the best run had at
40 % will not win; training it to the end wastes the GPU. Like Optuna's
median pruner, but against the one curve that matters, the best's, with
the same seed: the runner's output is read live, each progress line
(`step 120/341 | loss 4.28`, also a `\\r` progress bar) gives a point
(fraction of the steps, loss), and once past `earliest`, a loss above the
best's loss at that fraction times (1 + `margin`) ends the run as a
`discard` ("pruned at 40%"). The curves are kept with the runs in the
journal, so the decision can be checked afterwards.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field

Curve = list[list[float]]  # [[fraction of the steps, loss], ...], fractions increasing
MAX_POINTS = 200  # per run: enough to interpolate, small in the journal
_MIN_STEP = 1.0 / MAX_POINTS


def parse(line: str, pattern: re.Pattern[str]) -> tuple[float, float] | None:
    """(fraction, loss) from a progress line, or None; the pattern's groups are step, total, loss."""
    match = pattern.search(line)
    if match is None:
        return None
    try:
        step, total, loss = int(match.group(1)), int(match.group(2)), float(match.group(3))
    except (TypeError, ValueError):
        return None
    if total <= 0 or not 0 <= step <= total:
        return None
    return step / total, loss


def loss_at(curve: Curve, fraction: float) -> float | None:
    """The curve's loss at `fraction`, interpolated; None outside what it covers."""
    if not curve or fraction < curve[0][0] or fraction > curve[-1][0]:
        return None
    index = bisect.bisect_left([point[0] for point in curve], fraction)
    if curve[index][0] == fraction or index == 0:
        return curve[index][1]
    (x0, y0), (x1, y1) = curve[index - 1], curve[index]
    return y0 + (y1 - y0) * (fraction - x0) / (x1 - x0)


@dataclass
class Pruner:
    """Reads one run's output; `verdict` is the reason to stop it, once there is one."""

    pattern: re.Pattern[str]
    reference: Curve  # the best run's curve, same seed; empty: only record
    margin: float
    earliest: float
    curve: Curve = field(default_factory=list)
    verdict: str = ""

    def feed(self, lines: list[str], partial: str) -> str:
        """Take new output; returns the verdict when this output settles it (once)."""
        for line in [*lines, partial]:
            point = parse(line, self.pattern)
            if point is None:
                continue
            fraction, loss = point
            if self.curve and fraction - self.curve[-1][0] < _MIN_STEP:
                continue
            self.curve.append([fraction, loss])
            if not self.verdict and self._hopeless(fraction, loss):
                best = loss_at(self.reference, fraction)
                self.verdict = (
                    f"pruned at {fraction:.0%}: loss {loss:.4g} against the best run's {best:.4g} at the same "
                    f"point (margin {self.margin:.0%})"
                )
                return self.verdict
        return ""

    def _hopeless(self, fraction: float, loss: float) -> bool:
        if fraction < self.earliest:
            return False
        best = loss_at(self.reference, fraction)
        if best is None or not math.isfinite(best):
            return False
        return not math.isfinite(loss) or loss > best * (1 + self.margin)
