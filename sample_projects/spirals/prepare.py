"""Data and metric of the spirals sample. Read-only: do not edit.

Two interleaved spirals in the plane, one per class: a classic problem that a
linear model cannot solve and a small MLP can, given a decent learning rate.
The points are generated from a fixed seed at import, so every machine and
every experiment sees the same train and validation sets, and nothing is
written to disk. The budget is data, not time: every run trains on
SAMPLE_BUDGET points, so its result does not depend on how busy the machine
is. TIME_BUDGET, which the supervisor sets, only caps the wall clock of a run
that is far too slow.
"""

from __future__ import annotations

import math
import os

import torch

SAMPLE_BUDGET = 300_000  # training points drawn per run (with replacement): the fixed budget every experiment gets
TIME_BUDGET = float(os.environ.get("ARSUP_TIME_BUDGET", "60"))  # wall-clock cap in seconds, set by the supervisor
NUM_CLASSES = 2
DATA_SEED = 7  # fixed: the data must not depend on the experiment's seed
N_TRAIN = 1000
N_VAL = 2000
TURNS = 3.0  # how many times each spiral winds around the origin
NOISE = 0.03  # Gaussian jitter, relative to the outer radius 1


def make_spirals(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points (n, 2) as float32 and their labels (n,) as int64, half per class."""
    labels = torch.arange(n) % NUM_CLASSES
    # sqrt spreads points evenly along the spiral's length rather than crowding the centre
    radius = torch.rand(n, generator=generator).sqrt()
    angle = radius * TURNS * 2 * math.pi + labels * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points += NOISE * torch.randn(n, 2, generator=generator)
    return points, labels


def _build() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(DATA_SEED)
    train_x, train_y = make_spirals(N_TRAIN, generator)
    val_x, val_y = make_spirals(N_VAL, generator)
    return train_x, train_y, val_x, val_y


TRAIN_X, TRAIN_Y, VAL_X, VAL_Y = _build()

# The holdout: points no decision was ever made on. arsup's [holdout] runs set EVAL_SPLIT=holdout, and
# evaluate_accuracy then scores fresh spirals from another seed. Other runs never draw them.
HOLDOUT_SEED = DATA_SEED + 1
if os.environ.get("EVAL_SPLIT") == "holdout":
    VAL_X, VAL_Y = make_spirals(N_VAL, torch.Generator().manual_seed(HOLDOUT_SEED))


def get_batch(batch_size: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A random training batch: points (B, 2) and labels (B,)."""
    index = torch.randint(N_TRAIN, (batch_size,), generator=generator)
    return TRAIN_X[index].to(device), TRAIN_Y[index].to(device)


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, device: torch.device | str = "cpu") -> float:
    """Fraction of the fixed validation points whose argmax logit is the true class.

    The model maps points (N, 2) to logits (N, NUM_CLASSES).
    """
    was_training = model.training
    model.eval()
    predictions = model(VAL_X.to(device)).argmax(dim=1).cpu()
    model.train(was_training)
    return (predictions == VAL_Y).float().mean().item()
