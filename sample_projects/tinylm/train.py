"""Train a tiny byte-level GPT on a fixed amount of data and report val_bpb. The file to edit.

Everything here is fair game for an experiment: the hyperparameters below, the
model, the optimizer, the schedule. What is fixed lives in prepare.py. The
run ends with autoresearch's summary block (a `---` line, then `name: value`
lines), which the supervisor parses.
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
from prepare import TIME_BUDGET, TOKEN_BUDGET, VOCAB_SIZE, evaluate_bpb, get_batch  # noqa: E402

# Hyperparameters: one constant per line, so that an experiment is a one-line edit.
# The optimisation ones come first: they usually matter most.
LR = 0.0005  # peak AdamW learning rate
WARMUP_STEPS = 300  # linear warmup from 0 to LR; the default budget is 341 steps
FINAL_LR_FRAC = 0.1  # the cosine schedule ends at this fraction of LR
BATCH_SIZE = 32  # sequences per step; the data budget is fixed, so a smaller batch means more steps
WEIGHT_DECAY = 0.1
BETA1 = 0.9
BETA2 = 0.95
GRAD_CLIP = 1.0  # max global gradient norm
N_LAYER = 2
N_HEAD = 4
N_EMBD = 128
BLOCK_SIZE = 64  # context length in bytes
DROPOUT = 0.0
ACTIVATION = "gelu"  # one of "gelu", "relu", "silu"


def make_activation(name: str) -> nn.Module:
    """The MLP nonlinearity named by ACTIVATION."""
    return {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}[name]()


def diverged(loss: float) -> bool:
    """True when training blew up: the loss starts near ln(256) = 5.5, so 100 is unmistakable."""
    return not math.isfinite(loss) or loss > 100.0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each byte sees only the bytes before it."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.proj = nn.Linear(N_EMBD, N_EMBD)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time_steps, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=2)
        q, k, v = (t.view(batch, time_steps, N_HEAD, channels // N_HEAD).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=DROPOUT if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(batch, time_steps, channels)
        return self.dropout(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: attention then MLP, each on a residual branch."""

    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(N_EMBD)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(N_EMBD)
        self.mlp = nn.Sequential(
            nn.Linear(N_EMBD, 4 * N_EMBD),
            make_activation(ACTIVATION),
            nn.Linear(4 * N_EMBD, N_EMBD),
            nn.Dropout(DROPOUT),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Byte ids (B, T) -> next-byte logits (B, T, VOCAB_SIZE)."""

    def __init__(self) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB_SIZE, N_EMBD)
        self.position_embedding = nn.Embedding(BLOCK_SIZE, N_EMBD)
        self.blocks = nn.Sequential(*(Block() for _ in range(N_LAYER)))
        self.ln_f = nn.LayerNorm(N_EMBD)
        self.lm_head = nn.Linear(N_EMBD, VOCAB_SIZE, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Small normal weights (GPT-2 style) keep the first losses near ln(256).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        return self.lm_head(self.ln_f(self.blocks(x)))


def learning_rate(step: int, progress: float) -> float:
    """Linear warmup over steps, then cosine decay over the data budget (progress in [0, 1])."""
    warmup = min(1.0, (step + 1) / max(1, WARMUP_STEPS))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return LR * warmup * (FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * cosine)


def main() -> None:
    t_start = time.time()
    seed = int(os.environ.get("ARSUP_SEED", "0"))  # owned by the supervisor, not a hyperparameter
    random.seed(seed)
    torch.manual_seed(seed)
    batch_generator = torch.Generator().manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert N_EMBD % N_HEAD == 0, f"N_EMBD ({N_EMBD}) must be a multiple of N_HEAD ({N_HEAD})"

    model = GPT().to(device)
    num_params = sum(p.numel() for p in model.parameters())
    # Decay matrices and embeddings only; decaying biases and norm gains just hurts.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(BETA1, BETA2),
    )

    # Data-based training: every experiment sees TOKEN_BUDGET training bytes, so the result does not
    # depend on how busy the machine is. A bigger batch or context means fewer steps; a bigger model,
    # more compute per byte. TIME_BUDGET is only a wall-clock cap: a run that hits it stops early.
    total_steps = max(1, TOKEN_BUDGET // (BATCH_SIZE * BLOCK_SIZE))
    t_train = time.time()
    training_seconds = 0.0
    step = 0
    while step < total_steps and training_seconds < TIME_BUDGET:
        lr = learning_rate(step, step / total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(BATCH_SIZE, BLOCK_SIZE, batch_generator, device)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        loss_value = loss.item()  # also waits for the GPU, so the clock below is honest
        if diverged(loss_value):
            print("\nFAIL", flush=True)
            sys.exit(1)
        training_seconds = time.time() - t_train
        step += 1
        if step % 10 == 1 or step == total_steps:  # from the first step on, so even a short run shows progress
            print(f"\rstep {step:05d}/{total_steps:05d} | loss {loss_value:.4f} | lr {lr:.2e} | "
                  f"{training_seconds:5.1f} s", end="", flush=True)
    print()
    if step < total_steps:
        print(f"time cap of {TIME_BUDGET:g} s reached after {step} of {total_steps} steps: "
              "the run saw less data than the budget", flush=True)

    val_bpb = evaluate_bpb(model, BLOCK_SIZE, device)
    if not math.isfinite(val_bpb):
        print("FAIL", flush=True)
        sys.exit(1)
    peak_vram_mb = torch.cuda.max_memory_allocated() / 1024**2 if device.type == "cuda" else 0.0
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {training_seconds:.1f}")
    print(f"total_seconds:    {time.time() - t_start:.1f}")
    print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params_M:     {num_params / 1e6:.1f}")


if __name__ == "__main__":
    main()
