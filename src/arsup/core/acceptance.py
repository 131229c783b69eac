"""Keep or discard: the one place the decision is made.

For now this is autoresearch's greedy rule (keep when strictly better than the
best so far). A noise-aware rule replaces it here, and only here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str


def is_better(candidate: float, best: float, goal: str) -> bool:
    return candidate < best if goal == "minimize" else candidate > best


def decide(candidate: float, best: float | None, goal: str, metric: str) -> Decision:
    """Greedy acceptance; `best` is None only before the baseline has a value."""
    if best is None:
        return Decision(True, "first result on this branch: the reference to beat")
    delta = candidate - best
    if is_better(candidate, best, goal):
        return Decision(True, f"{metric} {candidate:.6f} beats the best {best:.6f} ({delta:+.6f})")
    return Decision(False, f"{metric} {candidate:.6f} does not beat the best {best:.6f} ({delta:+.6f})")
