"""The tinylm sample behaves the way arsup needs: a real run, a real metric, a real crash."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

import torch

from arsup.config import load

SUMMARY_KEYS = {"val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "num_steps", "num_params_M"}


def test_short_run_reports_a_summary_and_leaves_the_tree_clean(sample_copy, run_train) -> None:
    run = run_train(sample_copy("tinylm"), budget_s=1.0)

    assert run.returncode == 0, run.stderr
    assert "FAIL" not in run.stdout
    assert "\rstep " in run.stdout.split("\n---\n")[0], "progress must be a \\r-rewritten line"
    summary = run.summary
    assert set(summary) == SUMMARY_KEYS
    assert math.isfinite(summary["val_bpb"]) and 0.0 < summary["val_bpb"] < 8.0  # beats a uniform byte guess
    assert summary["training_seconds"] >= 1.0
    assert summary["total_seconds"] >= summary["training_seconds"]
    assert summary["num_steps"] >= 1
    if not torch.cuda.is_available():
        assert summary["peak_vram_mb"] == 0.0
    assert run.changed == [], "a run must not write into the work tree"


def test_exploding_learning_rate_prints_fail_and_exits_nonzero(sample_copy, run_train) -> None:
    folder = sample_copy("tinylm")
    train_py = folder / "train.py"
    text, count = re.subn(r"^LR = .*$", "LR = 1e6", train_py.read_text(), flags=re.MULTILINE)
    assert count == 1
    train_py.write_text(text)

    run = run_train(folder, budget_s=1.0)

    assert run.returncode != 0
    assert re.search(r"\bFAIL\b", run.stdout)
    assert run.summary == {}


def test_hyperparameters_are_one_line_literals(sample_copy, hyperparameters) -> None:
    constants = hyperparameters(sample_copy("tinylm") / "train.py")

    assert {"N_LAYER", "N_HEAD", "N_EMBD", "BLOCK_SIZE", "BATCH_SIZE", "LR", "WEIGHT_DECAY", "WARMUP_STEPS"} <= set(
        constants
    )
    assert all(isinstance(value, (int, float, str)) for value in constants.values())
    assert constants["N_EMBD"] % constants["N_HEAD"] == 0


def test_corpus_is_deterministic_and_the_metric_is_calibrated(load_prepare) -> None:
    prepare = load_prepare("tinylm")

    corpus = prepare.build_corpus()
    assert corpus == prepare.build_corpus()
    assert 100_000 < len(corpus) < 2_000_000
    assert len(prepare.TRAIN_DATA) + len(prepare.VAL_DATA) == len(corpus)

    class Uniform(torch.nn.Module):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*idx.shape, prepare.VOCAB_SIZE)

    for block_size in (32, 64, 256):
        assert math.isclose(prepare.evaluate_bpb(Uniform(), block_size), 8.0, rel_tol=1e-6)


def test_batches_are_next_byte_pairs(load_prepare) -> None:
    prepare = load_prepare("tinylm")

    x, y = prepare.get_batch(4, 16, torch.Generator().manual_seed(0))

    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_config_is_valid_for_arsup() -> None:
    config = load(Path(__file__).resolve().parents[2] / "sample_projects" / "tinylm")

    assert (config.metric.name, config.metric.goal) == ("val_bpb", "minimize")
    assert config.project.time_budget == 30
