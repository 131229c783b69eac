"""The spirals sample behaves the way arsup needs: a real run and a maximized metric in [0, 1]."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from arsup.config import load

SUMMARY_KEYS = {"val_accuracy", "training_seconds", "total_seconds", "peak_vram_mb", "num_steps"}


def test_short_run_reports_a_summary_and_leaves_the_tree_clean(sample_copy, run_train) -> None:
    run = run_train(sample_copy("spirals"), budget_s=1.0)

    assert run.returncode == 0, run.stderr
    assert "FAIL" not in run.stdout
    assert "\rstep " in run.stdout.split("\n---\n")[0], "progress must be a \\r-rewritten line"
    summary = run.summary
    assert set(summary) == SUMMARY_KEYS
    assert math.isfinite(summary["val_accuracy"]) and 0.0 <= summary["val_accuracy"] <= 1.0
    assert summary["training_seconds"] >= 1.0
    assert summary["num_steps"] >= 1
    assert run.changed == [], "a run must not write into the work tree"


def test_hyperparameters_are_one_line_literals(sample_copy, hyperparameters) -> None:
    constants = hyperparameters(sample_copy("spirals") / "train.py")

    assert {"HIDDEN", "N_LAYERS", "LR", "WEIGHT_DECAY", "BATCH_SIZE"} <= set(constants)
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
    assert config.project.time_budget == 10
