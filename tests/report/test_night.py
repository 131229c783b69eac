"""`arsup report` end to end: a real loop's night, the imported mar8 log, and two nights side by side."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from arsup import config
from arsup.core import importing, journal
from arsup.core.checks import verify
from arsup.core.summary import summarize
from arsup.report import chart
from arsup.report.markdown import headline
from arsup.report.night import write_report
from tests.conftest import git
from tests.core.test_checks import night  # noqa: F401  (fixture)
from tests.core.test_importing import MAR8

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_run_branch_gives_chart_summary_json_and_results(night: Path) -> None:  # noqa: F811
    verify(config.load(night), night, "night", None, seeds=2)
    written = write_report(night, ["night"])
    out = night / ".arsup" / "reports" / "night"
    assert written.out == out and [p.name for p in written.files] == [
        "progress.png", "report.md", "summary.json", "results.tsv"]
    assert _png_size(out / "progress.png") == (14 * 110, 7 * 110)
    figures = json.loads((out / "summary.json").read_text())
    assert figures["best"] == pytest.approx(0.85) and figures["kept"] == 2 and figures["metric"] == "val_bpb"
    assert [k["id"] for k in figures["kept_changes"]] == ["0001", "0002", "0003"]
    report = (out / "report.md").read_text()
    assert headline(written.summaries[0]) in report and "![night](progress.png)" in report
    assert "### 0003 turn on B" in report and "+B = 1" in report and "- verified: mean 0.860000" in report
    assert "| **noise floor** | sigma 0.02 from 9 runs |" in report
    ledger = journal.Journal(night)
    assert (out / "results.tsv").read_text() == journal.results_text("val_bpb", ledger.experiments("night"))
    assert git(night, "status", "--porcelain") == ""


def test_the_imported_mar8_log_reports_without_a_config(tmp_path: Path) -> None:
    importing.import_results(tmp_path, MAR8, tag="mar8")
    written = write_report(tmp_path, ["mar8"], tmp_path / "out")
    figures = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert figures["best"] == 0.969686 and figures["experiments"] == 126 and figures["baseline"] == 0.9979
    assert figures["wall_hours"] is None and figures["source"] == str(MAR8)
    assert figures["gpus_used"] is None and figures["gpu_hours"] is None  # a results.tsv does not say
    assert (tmp_path / "out" / "results.tsv").read_text() == MAR8.read_text()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| **wall time** | unknown (no times recorded) |" in report
    assert "| **slot-hours** | unknown (no times recorded) |" in report and "GPU-hours" not in report
    assert headline(written.summaries[0]).startswith(
        "mar8: best val_bpb 0.969686 (0119); improvement 0.028214 (2.83%) over the baseline 0.997900;")


def test_the_chart_shows_every_point_the_best_and_names_the_keeps(tmp_path: Path) -> None:
    ledger = journal.Journal(tmp_path)
    importing.import_results(tmp_path, MAR8, tag="mar8")
    summary = summarize("mar8", ledger.experiments("mar8"), "val_bpb", "minimize")
    figure = chart.draw_night(summary, tmp_path / "p.png")
    ax = figure.axes[0]
    assert len(ax.texts) == 23  # each keep named, the baseline included
    assert ax.texts[1].get_text().startswith("halve batch 524K to 262K")
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["discarded", "kept", "best so far", "baseline"]  # the crash is in its own row (test_chart.py)
    low, high = ax.get_ylim()
    assert low < 0.969686 and high > 0.9979  # the whole kept line is in view
    plotted = sum(len(c.get_offsets()) for axes in figure.axes for c in axes.collections)
    assert plotted == 126  # every experiment is a mark: inside, on the edge, or a crash cross in the row below


def test_two_nights_side_by_side(night: Path) -> None:  # noqa: F811
    importing.import_results(night, MAR8, tag="mar8")
    written = write_report(night, ["night", "mar8"], night / "both")
    names = sorted(str(p.relative_to(night / "both")) for p in written.files)
    assert names == sorted(["compare.png", "compare.md", "summary.json"] + [
        f"{tag}/{name}" for tag in ("night", "mar8")
        for name in ("progress.png", "report.md", "summary.json", "results.tsv")])
    nights = json.loads((night / "both" / "summary.json").read_text())["nights"]
    assert [n["tag"] for n in nights] == ["night", "mar8"]
    compare = (night / "both" / "compare.md").read_text()
    assert "| **best** | 0.850000 (0003, commit" in compare and "| 0.969686 (0122, commit" in compare  # ids go on after 0003
    figure = chart.draw_overlay(written.summaries, night / "o.png")
    by_count, by_time = figure.axes
    assert len(by_count.lines) == 2 and len(by_time.lines) == 1  # the imported night has no times
    assert "no times recorded for: mar8" in by_time.texts[0].get_text()
    assert by_time.get_xlabel() == "minutes"  # a night of seconds is not drawn in hours


def test_an_unknown_tag_is_a_clear_error(night: Path) -> None:  # noqa: F811
    with pytest.raises(journal.JournalError, match="no experiments of tag 'nope'.*tags in the journal: night"):
        write_report(night, ["nope"])


def test_a_night_with_a_holdout_shows_it_and_its_divergence(tmp_path: Path) -> None:
    from tests.core.test_engine_holdout import holdout_night

    root = holdout_night(tmp_path)
    written = write_report(root, ["t1"])
    summary = written.summaries[0]
    assert [k.holdout for k in summary.kept_changes] == pytest.approx([2.064, 2.128, 2.256, 2.512])
    assert "the holdout got worse by 0.384" in summary.holdout_warning
    report = (written.out / "report.md").read_text()
    assert "| id | commit | val_bpb | holdout | improvement |" in report
    assert "**warning: over the last 3 keeps" in report
    assert json.loads((written.out / "summary.json").read_text())["kept_changes"][3]["holdout"] == 2.512
    figure = chart.draw_night(summary, tmp_path / "h.png")
    ax = figure.axes[0]
    held = next(line for line in ax.lines if line.get_label() == "holdout of keeps")
    assert held.get_ydata().tolist() == pytest.approx([2.064, 2.128, 2.256, 2.512])
    assert ax.get_ylim()[1] > 2.512  # on the metric's own scale, all in view
    assert any("holdout diverges" in t.get_text() for t in ax.texts)
