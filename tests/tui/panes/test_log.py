"""A past experiment's log: the tail of each run from disk, never the whole file."""

from __future__ import annotations

from pathlib import Path

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.tui.panes.log import past_log, read_tail


def test_tail_of_a_big_log(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("".join(f"step {i}\n" for i in range(100_000)))
    lines = read_tail(log, max_bytes=1000)
    assert lines[-1] == "step 99999" and len(lines) < 120 and all(line.startswith("step ") for line in lines)


def test_each_run_with_a_rule_and_missing_logs_said(tmp_path: Path) -> None:
    (tmp_path / "run.log").write_text("seed 0\nval_bpb: 2.0\n")
    runs = [RunResult(seed=0, log_path=str(tmp_path / "run.log")), RunResult(seed=1, log_path=str(tmp_path / "x.log"))]
    experiment = Experiment("0002", "t", "c", "wider", "script", status=Status.DISCARD, runs=runs)
    lines = past_log(experiment)
    assert lines[:3] == ["── run 1 of 2, seed 0 ──", "seed 0", "val_bpb: 2.0"]
    assert lines[3] == "── run 2 of 2, seed 1 ──" and lines[4].startswith("cannot read")


def test_never_trained() -> None:
    invalid = Experiment("0003", "t", "c", "bad edit", "llm", status=Status.INVALID, reason="SEARCH matched\nnothing")
    assert past_log(invalid) == ["no log: 0003 never trained (invalid: SEARCH matched nothing)"]
