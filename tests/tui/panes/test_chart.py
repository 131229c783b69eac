"""The chart's data: every trained point, and the running best as steps through the keeps."""

from __future__ import annotations

from arsup.core.events import SessionStarted
from arsup.core.experiment import Experiment, Status
from arsup.tui.panes.chart import series
from arsup.view import SessionView


def test_points_and_best_steps() -> None:
    view = SessionView("val_bpb", "minimize", 30)
    results = [(Status.KEEP, 3.0), (Status.DISCARD, 3.5), (Status.CRASH, None), (Status.KEEP, 2.5)]
    results.append((Status.DISCARD, 2.9))
    history = [Experiment(f"{i:04d}", "t", "c", "h", "a", status=s, metric=m) for i, (s, m) in enumerate(results, 1)]
    view.apply(SessionStarted("t", "autoresearch/t", "c", len(history), history=history))
    points, steps = series(view)
    assert points == [(1, 3.0, True), (2, 3.5, False), (4, 2.5, True), (5, 2.9, False)]
    assert steps == [(1, 3.0), (4, 3.0), (4, 2.5), (5, 2.5)]


def test_noise_band_follows_the_best() -> None:
    from arsup.tui.panes.chart import noise_band

    upper, lower = noise_band([(1, 3.0), (4, 3.0), (4, 2.5)], 0.25)
    assert upper == [(1, 3.25), (4, 3.25), (4, 2.75)] and lower == [(1, 2.75), (4, 2.75), (4, 2.25)]
