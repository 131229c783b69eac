"""Pruning: a run far behind the best run at the same point is stopped as a discard; one on par is not."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest

from arsup.config import PruneConfig
from arsup.core.experiment import Status
from arsup.core.pruning import Pruner, loss_at, parse
from tests.conftest import edit, make_engine, make_project, write_script

PATTERN = re.compile(PruneConfig().pattern)

# Prints a \r progress bar like autoresearch: 20 steps, the loss falling from 5 to SCALE * 1.
CURVED = textwrap.dedent(
    """\
    import time
    SCALE = 1.0
    for step in range(1, 21):
        print(f"\\rstep {step:05d}/00020 | loss {SCALE * (1 + 4 / step):.4f} | lr 1e-3", end="", flush=True)
        time.sleep(0.05)
    print()
    print(f"val_bpb: {SCALE:.6f}")
    """
)


def test_progress_lines_give_points() -> None:
    assert parse("step 00021/00341 | loss 4.2820 | lr 4.96e-04 |   3.3 s", PATTERN) == (21 / 341, 4.282)
    fraction, loss = parse("step 5/10 train loss: nan", PATTERN)  # type: ignore[misc]
    assert fraction == 0.5 and math.isnan(loss)
    assert parse("val_bpb: 0.98", PATTERN) is None
    assert parse("step 12/10 | loss 1.0", PATTERN) is None


def test_loss_at_interpolates_inside_the_curve_only() -> None:
    curve = [[0.1, 5.0], [0.5, 3.0], [1.0, 2.0]]
    assert loss_at(curve, 0.3) == pytest.approx(4.0)
    assert loss_at(curve, 0.5) == 3.0
    assert loss_at(curve, 0.05) is None and loss_at([], 0.5) is None


def test_a_pruner_waits_for_its_earliest_point_then_judges_once() -> None:
    best = [[i / 10, 10.0 / i] for i in range(1, 11)]
    pruner = Pruner(PATTERN, best, margin=0.1, earliest=0.3)
    assert pruner.feed(["step 2/10 | loss 50"], "") == ""  # far worse, but too early to tell
    verdict = pruner.feed([], "step 4/10 | loss 9.0")
    assert verdict == "pruned at 40%: loss 9 against the best run's 2.5 at the same point (margin 10%)"
    assert pruner.feed([], "step 5/10 | loss 9.0") == ""  # said once
    assert [point[0] for point in pruner.curve] == [0.2, 0.4, 0.5]
    on_par = Pruner(PATTERN, best, margin=0.1, earliest=0.3)
    assert on_par.feed(["step 4/10 | loss 2.7"], "") == ""


@pytest.mark.slow
def test_a_hopeless_run_is_pruned_as_a_discard_and_a_good_one_is_not(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "repo", train=CURVED, project={"time_budget": 20, "timeout": 30},
        prune={"enabled": True, "warmup": 1, "earliest": 0.3, "margin": 0.1},
    )
    script = write_script(
        root,
        {"hypothesis": "ten times worse", "edits": edit("SCALE = 1.0", "SCALE = 10.0")},
        {"hypothesis": "a bit better", "edits": edit("SCALE = 1.0", "SCALE = 0.9")},
    )
    engine, _ = make_engine(root, script, acceptance={"mode": "greedy"})
    engine.run()
    baseline, worse, better = engine.history
    assert baseline.runs[0].curve and baseline.runs[0].curve[-1][0] == 1.0  # the reference is recorded
    assert worse.status == Status.DISCARD and worse.reason.startswith("pruned at 30%: loss ")
    assert worse.runs[0].curve[-1][0] < 0.5 and worse.runs[0].wall_s < baseline.runs[0].wall_s
    assert better.status == Status.KEEP and not better.runs[0].pruned
    rows = (root / "results.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[3] for row in rows] == ["keep", "discard", "keep"]


@pytest.mark.slow
def test_pruning_is_off_by_default_and_during_warmup(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=CURVED, project={"time_budget": 20, "timeout": 30})
    script = write_script(root, {"hypothesis": "ten times worse", "edits": edit("SCALE = 1.0", "SCALE = 10.0")})
    engine, _ = make_engine(root, script, acceptance={"mode": "greedy"})
    engine.run()
    assert engine.history[1].status == Status.DISCARD and engine.history[1].reason.startswith("val_bpb")
    assert engine.history[1].runs[0].curve == []
