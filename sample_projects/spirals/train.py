"""Train an MLP on the two spirals on a fixed amount of data and report val_accuracy. The file to edit.

Everything here is fair game for an experiment; what is fixed lives in
prepare.py. The run ends with autoresearch's summary block (a `---` line,
then `name: value` lines), which the supervisor parses.
"""

import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing prepare must not leave a __pycache__ in the work tree
from prepare import NUM_CLASSES, SAMPLE_BUDGET, TIME_BUDGET, evaluate_accuracy, get_batch  # noqa: E402

# Hyperparameters: one constant per line, so that an experiment is a one-line edit.
# The optimisation ones come first: they usually matter most.
LR = 0.0002  # peak AdamW learning rate
FINAL_LR_FRAC = 0.1  # the cosine schedule ends at this fraction of LR
WEIGHT_DECAY = 0.0
BATCH_SIZE = 64  # points per step; the data budget is fixed, so a smaller batch means more steps
HIDDEN = 64  # width of every hidden layer
N_LAYERS = 3  # hidden layers
ACTIVATION = "relu"  # one of "relu", "tanh", "gelu", "silu"


def make_activation(name: str) -> nn.Module:
    """The hidden nonlinearity named by ACTIVATION."""
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}[name]()


def make_model() -> nn.Module:
    """Points (N, 2) -> class logits (N, NUM_CLASSES)."""
    layers: list[nn.Module] = []
    width = 2
    for _ in range(N_LAYERS):
        layers += [nn.Linear(width, HIDDEN), make_activation(ACTIVATION)]
        width = HIDDEN
    layers.append(nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*layers)


def learning_rate(progress: float) -> float:
    """Cosine decay from LR to FINAL_LR_FRAC * LR over the data budget (progress in [0, 1])."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return LR * (FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * cosine)


def diverged(loss: float) -> bool:
    """True when training blew up: the loss starts near ln(2) = 0.7, so 100 is unmistakable."""
    return not math.isfinite(loss) or loss > 100.0


def main() -> None:
    t_start = time.time()
    seed = int(os.environ.get("ARSUP_SEED", "0"))  # owned by the supervisor, not a hyperparameter
    random.seed(seed)
    torch.manual_seed(seed)
    batch_generator = torch.Generator().manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(1)  # matrices this small run faster on one CPU thread than on several

    model = make_model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    # Data-based training: every experiment sees SAMPLE_BUDGET training points, so the result does not
    # depend on how busy the machine is; a bigger batch means fewer steps. TIME_BUDGET is only a
    # wall-clock cap: a run that hits it stops early.
    total_steps = max(1, SAMPLE_BUDGET // BATCH_SIZE)
    t_train = time.time()
    training_seconds = 0.0
    step = 0
    while step < total_steps and training_seconds < TIME_BUDGET:
        lr = learning_rate(step / total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(BATCH_SIZE, batch_generator, device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()  # also waits for the GPU, so the clock below is honest
        if diverged(loss_value):
            print("\nFAIL", flush=True)
            sys.exit(1)
        training_seconds = time.time() - t_train
        step += 1
        if step % 100 == 1 or step == total_steps:  # from the first step on, so even a short run shows progress
            print(f"\rstep {step:06d}/{total_steps:06d} | loss {loss_value:.4f} | lr {lr:.2e} | "
                  f"{training_seconds:5.1f} s", end="", flush=True)
    print()
    if step < total_steps:
        print(f"time cap of {TIME_BUDGET:g} s reached after {step} of {total_steps} steps: "
              "the run saw less data than the budget", flush=True)

    val_accuracy = evaluate_accuracy(model, device)
    peak_vram_mb = torch.cuda.max_memory_allocated() / 1024**2 if device.type == "cuda" else 0.0
    print("---")
    print(f"val_accuracy:     {val_accuracy:.6f}")
    print(f"training_seconds: {training_seconds:.1f}")
    print(f"total_seconds:    {time.time() - t_start:.1f}")
    print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
    print(f"num_steps:        {step}")


if __name__ == "__main__":
    main()
