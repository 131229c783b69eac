from __future__ import annotations

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.headless import experiment_line


def _experiment(**fields: object) -> Experiment:
    base = dict(id="0007", tag="t", parent="p", hypothesis="LR 0.0005 -> 0.003:\tTPE\npick", agent="tuner")
    return Experiment(**{**base, **fields})


def test_a_confirmed_keep_shows_its_evidence() -> None:
    runs = [RunResult(seed=i, log_path="") for i in range(3)]
    kept = _experiment(status=Status.KEEP, metric=0.981234, p_value=0.0123, gain_sigma=4.21, runs=runs)
    line = experiment_line(kept, kept, "val_bpb")
    assert line == (
        "0007  keep     val_bpb   0.981234  best   0.981234  LR 0.0005 -> 0.003: TPE pick  (p 0.0123, +4.2 sigma, 3 runs)"
    )


def test_a_keep_shows_its_holdout_beside_the_metric() -> None:
    kept = _experiment(status=Status.KEEP, metric=0.981234, holdout=0.990001)
    assert experiment_line(kept, kept, "val_bpb").endswith("TPE pick  holdout 0.990001")


def test_a_crash_shows_no_metric_and_its_reason() -> None:
    crashed = _experiment(status=Status.CRASH, metric=None, reason="exit code 1\nTraceback")
    assert experiment_line(crashed, None, "val_bpb").endswith("-  best          -  LR 0.0005 -> 0.003: TPE pick  [exit code 1 Traceback]")
