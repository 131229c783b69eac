from __future__ import annotations

from pathlib import Path

import pytest

from arsup import config
from arsup.core.checks import ablate, verify
from arsup.report.checks import ablation_lines, verify_lines
from tests.core.test_checks import night  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


def test_verify_report_reads_like_the_morning_after(night: Path) -> None:  # noqa: F811
    lines = verify_lines(verify(config.load(night), night, "night", None, seeds=3), "val_bpb")
    assert lines[0].endswith("(0003: turn on B)")
    assert lines[1] == "  val_bpb: mean 0.850000 ± 0.020000 over 3 seeds"
    assert lines[3] == "  val_bpb: mean 1.000000 ± 0.020000 over 3 seeds"
    assert lines[4] == "gain over the baseline: +0.150000 (7.5 sigma) over 3 paired seeds, p = 0"


def test_ablation_report_has_a_row_per_kept_change(night: Path) -> None:  # noqa: F811
    lines = ablation_lines(ablate(config.load(night), night, "night", seeds=2), "val_bpb")
    assert len(lines) == 3
    assert "0002  turn on A" in lines[1] and "+0.100000" in lines[1] and "over 2 paired seeds" in lines[1]
    assert "0003  turn on B" in lines[2] and "+0.050000" in lines[2]
