"""The tinylm sample behaves the way arsup needs: a real run, a real metric, a real crash."""

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

SUMMARY_KEYS = {"val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "num_steps", "num_params_M"}


def _budget_steps(folder: Path, hyperparameters: Callable[[Path], dict[str, object]]) -> int:
    """The optimizer steps the data budget allows at the copy's settings."""
    constants = hyperparameters(folder / "train.py")
    match = re.search(r"^TOKEN_BUDGET = ([\d_]+)", (folder / "prepare.py").read_text(), flags=re.MULTILINE)
    assert match, "prepare.py must fix the data budget as TOKEN_BUDGET"
    return int(match[1]) // (int(constants["BATCH_SIZE"]) * int(constants["BLOCK_SIZE"]))  # type: ignore[call-overload]


def test_short_run_reports_a_summary_and_leaves_the_tree_clean(sample_copy, run_train, hyperparameters) -> None:
    folder = sample_copy("tinylm")
    run = run_train(folder, budget_s=3.0)  # a short cap: far less than the data budget takes on a CPU

    assert run.returncode == 0, run.stderr
    assert "FAIL" not in run.stdout
    before_summary = run.stdout.split("\n---\n")[0]
    assert "\rstep " in before_summary, "progress must be a \\r-rewritten line"
    summary = run.summary
    assert set(summary) == SUMMARY_KEYS
    assert math.isfinite(summary["val_bpb"]) and 0.0 < summary["val_bpb"] < 8.5  # near a uniform guess at worst
    if summary["num_steps"] >= 20:  # a loaded machine may stop it after a handful of steps; else it learns
        assert summary["val_bpb"] < 8.0
    assert summary["total_seconds"] >= summary["training_seconds"]
    assert 1 <= summary["num_steps"] <= _budget_steps(folder, hyperparameters)
    if summary["num_steps"] < _budget_steps(folder, hyperparameters):  # stopped by the cap, and says so
        assert summary["training_seconds"] >= 3.0
        assert "time cap" in before_summary
    if not torch.cuda.is_available():
        assert summary["peak_vram_mb"] == 0.0
    assert run.changed == [], "a run must not write into the work tree"


def test_the_data_budget_ends_the_run_and_the_seed_alone_decides_the_result(
    sample_copy, run_train, set_constant, hyperparameters
) -> None:
    folder = sample_copy("tinylm")
    constants = hyperparameters(folder / "train.py")
    steps = 12
    set_constant(folder / "prepare.py", "TOKEN_BUDGET", steps * constants["BATCH_SIZE"] * constants["BLOCK_SIZE"])
    set_constant(folder / "prepare.py", "EVAL_BYTES", 4096)  # a shorter evaluation, to keep the test fast

    # Side by side, so the runs also slow each other down; a cap that never binds.
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda seed: run_train(folder, budget_s=60.0, seed=seed), (0, 0, 1)))

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.summary["num_steps"] == steps
        assert "time cap" not in run.stdout
        assert f"step {steps:05d}/{steps:05d}" in run.stdout, "the progress line reaches the budget's last step"
    first, again, other_seed = runs
    if not torch.cuda.is_available():  # GPU kernels may reorder sums; the CPU ones do not
        assert first.summary["val_bpb"] == again.summary["val_bpb"], (
            "the same seed and data budget must give the same val_bpb, however busy the machine"
        )
        assert first.losses == again.losses
    assert math.isclose(first.summary["val_bpb"], again.summary["val_bpb"], abs_tol=1e-3)
    assert other_seed.losses != first.losses, "ARSUP_SEED must reach the initialisation and the batches"


def test_exploding_learning_rate_prints_fail_and_exits_nonzero(sample_copy, run_train, set_constant) -> None:
    folder = sample_copy("tinylm")
    train_py = folder / "train.py"
    text, count = re.subn(r"^LR = .*$", "LR = 1e6", train_py.read_text(), flags=re.MULTILINE)
    assert count == 1
    train_py.write_text(text)
    set_constant(folder / "prepare.py", "EVAL_BYTES", 4096)

    run = run_train(folder, budget_s=60.0)  # the data budget, not a loaded machine's clock, decides the steps

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
    assert next(iter(constants)) == "LR", "the learning rate comes first: the tuner tries constants in file order"


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
    assert config.project.time_budget == 120  # a cap: a default run takes about 20 s on a quiet CPU
    assert config.project.timeout > config.project.time_budget
