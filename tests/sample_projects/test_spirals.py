"""The spirals sample behaves the way arsup needs: a real run and a maximized metric in [0, 1]."""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import torch

from arsup.config import load

pytestmark = pytest.mark.slow  # the sample project's torch code, and real training runs

SUMMARY_KEYS = {"val_accuracy", "training_seconds", "total_seconds", "peak_vram_mb", "num_steps"}


def _budget_steps(folder: Path, hyperparameters: Callable[[Path], dict[str, object]]) -> int:
    """The optimizer steps the data budget allows at the copy's batch size."""
    batch_size = hyperparameters(folder / "train.py")["BATCH_SIZE"]
    match = re.search(r"^SAMPLE_BUDGET = ([\d_]+)", (folder / "prepare.py").read_text(), flags=re.MULTILINE)
    assert match, "prepare.py must fix the data budget as SAMPLE_BUDGET"
    return int(match[1]) // int(batch_size)  # type: ignore[call-overload]


def test_short_run_reports_a_summary_and_leaves_the_tree_clean(sample_copy, run_train, hyperparameters) -> None:
    folder = sample_copy("spirals")
    run = run_train(folder, budget_s=1.0)  # a one-second cap: less than the data budget takes on a CPU

    assert run.returncode == 0, run.stderr
    assert "FAIL" not in run.stdout
    before_summary = run.stdout.split("\n---\n")[0]
    assert "\rstep " in before_summary, "progress must be a \\r-rewritten line"
    summary = run.summary
    assert set(summary) == SUMMARY_KEYS
    assert math.isfinite(summary["val_accuracy"]) and 0.0 <= summary["val_accuracy"] <= 1.0
    assert 1 <= summary["num_steps"] <= _budget_steps(folder, hyperparameters)
    if summary["num_steps"] < _budget_steps(folder, hyperparameters):  # stopped by the cap, and says so
        assert summary["training_seconds"] >= 1.0
        assert "time cap" in before_summary
    assert run.changed == [], "a run must not write into the work tree"


def test_the_data_budget_ends_the_run_and_the_seed_alone_decides_the_result(
    sample_copy, run_train, set_constant, hyperparameters
) -> None:
    folder = sample_copy("spirals")
    steps = 300
    set_constant(folder / "prepare.py", "SAMPLE_BUDGET", steps * hyperparameters(folder / "train.py")["BATCH_SIZE"])

    # Side by side, so the runs also slow each other down; a cap that never binds.
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda seed: run_train(folder, budget_s=60.0, seed=seed), (0, 0, 1)))

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.summary["num_steps"] == steps
        assert "time cap" not in run.stdout
    first, again, other_seed = runs
    if not torch.cuda.is_available():  # GPU kernels may reorder sums; the CPU ones do not
        assert first.summary["val_accuracy"] == again.summary["val_accuracy"], (
            "the same seed and data budget must give the same val_accuracy, however busy the machine"
        )
        assert first.losses == again.losses
    assert other_seed.losses != first.losses, "ARSUP_SEED must reach the initialisation and the batches"


def test_hyperparameters_are_one_line_literals(sample_copy, hyperparameters) -> None:
    constants = hyperparameters(sample_copy("spirals") / "train.py")

    assert {"HIDDEN", "N_LAYERS", "LR", "WEIGHT_DECAY", "BATCH_SIZE"} <= set(constants)
    assert next(iter(constants)) == "LR", "the learning rate comes first: the tuner tries constants in file order"
    assert all(isinstance(value, (int, float, str)) for value in constants.values())


def test_data_is_fixed_and_a_constant_guess_scores_one_half(load_prepare) -> None:
    prepare = load_prepare("spirals")

    again_x, again_y = prepare._build()[2:]
    assert torch.equal(prepare.VAL_X, again_x) and torch.equal(prepare.VAL_Y, again_y)

    class Constant(torch.nn.Module):
        def forward(self, points: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(points), prepare.NUM_CLASSES)

    assert prepare.evaluate_accuracy(Constant()) == 0.5


def test_config_is_valid_for_arsup() -> None:
    config = load(Path(__file__).resolve().parents[2] / "sample_projects" / "spirals")

    assert (config.metric.name, config.metric.goal) == ("val_accuracy", "maximize")
    assert config.project.time_budget == 60  # a cap: a default run takes about 5 s on a quiet CPU
    assert config.project.timeout > config.project.time_budget
