"""The night's chart as matplotlib draws it: names that never overlap or leave the picture, crashes off the scale.

Measured with matplotlib's own renderer on the real, dense mar8 night (126
experiments, 23 keeps, a dozen of them in the first 14), imported and
reported as a user would, and on a sparse night of three keeps.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

from arsup.core import importing
from arsup.core.experiment import Experiment, Status
from arsup.core.summary import summarize
from arsup.report import chart
from arsup.report.night import write_report
from tests.conftest import git
from tests.core.test_importing import MAR8

pytestmark = pytest.mark.slow  # a real git repository for the import


def _keep_labels(figure) -> list:
    """The keeps' names: the texts of the metric axes that are hypotheses (not the holdout's warning)."""
    return [t for t in figure.axes[0].texts if not t.get_text().startswith("holdout diverges")]


def _assert_readable(figure, names: int) -> None:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = _keep_labels(figure)
    assert len(labels) == names
    boxes = [t.get_window_extent(renderer) for t in labels]
    page = figure.bbox
    for text, box in zip(labels, boxes):
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, text.get_text()
        assert figure.axes[0].bbox.contains(box.x0, box.y0) and figure.axes[0].bbox.contains(box.x1, box.y1)
    for (a, box_a), (b, box_b) in combinations(zip(labels, boxes), 2):
        assert not box_a.overlaps(box_b), f"{a.get_text()!r} overlaps {b.get_text()!r}"


def test_the_mar8_nights_keep_names_never_overlap_and_its_crash_is_off_the_metric_scale(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    importing.import_results(tmp_path, MAR8, tag="mar8")
    written = write_report(tmp_path, ["mar8"], tmp_path / "out")
    assert (tmp_path / "out" / "progress.png").stat().st_size > 0
    summary = written.summaries[0]
    figure = chart.draw_night(summary, tmp_path / "p.png")
    _assert_readable(figure, names=23)
    metric_axes = figure.axes[0]
    crosses = [c for ax in figure.axes for c in ax.collections if c.get_label() == "crashed"]
    assert len(crosses) == 1 and len(crosses[0].get_offsets()) == 1
    strip = crosses[0].axes
    assert strip is not metric_axes  # its own row: a crash has no value to sit at
    assert strip.get_shared_x_axes().joined(strip, metric_axes)  # under its experiment number
    assert not strip.get_yticks().size and strip.get_ylabel() == "crashed"
    assert strip.bbox.y1 <= metric_axes.bbox.y0  # below the chart, not inside its scale
    assert sum(len(c.get_offsets()) for ax in figure.axes for c in ax.collections) == 126  # every experiment a mark
    assert "best val_bpb 0.969686, improvement +2.83% over the baseline" in metric_axes.get_title(loc="left")


def _record(id_: str, status: str, metric: float | None, hypothesis: str) -> Experiment:
    return Experiment(id=id_, tag="t", parent="p", hypothesis=hypothesis, agent="llm", commit=id_ * 7,
                      status=status, metric=metric, is_baseline=id_ == "0001")


def test_a_sparse_night_names_its_keeps_beside_them_and_has_no_crash_row(tmp_path: Path) -> None:
    night = [_record("0001", Status.KEEP, 2.0, "baseline"),
             _record("0002", Status.DISCARD, 2.1, "wider"),
             _record("0003", Status.KEEP, 1.8, "a much longer hypothesis about the learning rate schedule"),
             _record("0004", Status.KEEP, 1.7, "the very last keep, at the right edge of the chart")]
    figure = chart.draw_night(summarize("t", night, "val_bpb", "minimize"), tmp_path / "p.png")
    _assert_readable(figure, names=3)
    assert len(figure.axes) == 1  # no crash, no crash row
    ax, renderer = figure.axes[0], figure.canvas.get_renderer()
    for text, (x, y) in zip(_keep_labels(figure), [(1, 2.0), (3, 1.8), (4, 1.7)]):
        px, py = ax.transData.transform((x, y))
        box = text.get_window_extent(renderer)
        near = max(box.x0 - px, px - box.x1, 0) ** 2 + max(box.y0 - py, py - box.y1, 0) ** 2
        assert near < 40 ** 2, text.get_text()  # beside its point, not far away
