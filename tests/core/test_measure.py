"""Tests for arsup.core.measure: what one measured run records, with real runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arsup import config
from arsup.core import measure, runner
from tests.conftest import make_project

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails with ENOSPC")
def test_the_metric_is_read_from_what_the_full_disk_refused(tmp_path: Path) -> None:
    """The run exited 0 and printed its metric; a log the disk refused must not make it a crash."""
    root = make_project(tmp_path / "repo")
    cfg = config.load(root)
    spec = measure.run_spec(cfg, root, sys.executable, Path("/dev/full"), 0, {})
    record, tail = measure.result(cfg, spec, runner.run(spec), 0)
    assert record.crash_reason == "" and tail == ""
    assert record.metrics == {"val_bpb": pytest.approx(3.25), "peak_vram_mb": 2048.0, "training_seconds": 0.1}


def test_a_run_that_says_the_time_cap_stopped_it_is_recorded_capped(tmp_path: Path) -> None:
    """The sample projects print "time cap of 60 s reached after 181 of 341 steps" when the cap cut them short."""
    train = (
        "print('time cap of 60 s reached after 181 of 341 steps: the run saw less data than the budget')\n"
        "print('---')\nprint('val_bpb: 3.912')\nprint('num_steps:        181')\n"
    )
    root = make_project(tmp_path / "repo", train=train)
    cfg = config.load(root)
    spec = measure.run_spec(cfg, root, sys.executable, tmp_path / "run.log", 0, {})
    record, _ = measure.result(cfg, spec, runner.run(spec), 0)
    assert (record.steps, record.capped) == (181, pytest.approx(181 / 341))
