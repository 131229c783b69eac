"""Noise-aware acceptance against greedy on a metric that is pure noise.

The training script prints 1.0 + OFFSET + N(0, SIGMA), with its noise drawn
from the OS (so seeds cannot pair it away: the hardest case). The agent
replays 30 proposals that change nothing (each a comment line of its own, so
the "going in circles" watchdog sees 30 places, not one idea rewritten) and,
at position 16, one real improvement of 5 sigma. Three rules see the same
proposals, each over several independent nights: greedy; confirm as it was,
one look at 3 runs (`max_runs = 3`, reached through the config only); and
confirm with its default second look (a borderline first look earns runs up
to `max_runs = 5`, alpha split over the looks). `--smoke`: one night each,
6 no-ops.
"""

from __future__ import annotations

import json
import statistics

from common import make_repo, smoke, trained

from arsup import config
from arsup.core.agents.script import ScriptAgent
from arsup.core.loop import Engine
from arsup.core.experiment import Status

SIGMA = 0.001
NIGHTS = 20
NO_OPS = 30


def train(no_ops: int) -> str:
    return (
        "import random\n"
        "OFFSET = 0.0\n"
        + "".join(f"# tweak {i}\n" for i in range(no_ops))
        + f"noise = random.SystemRandom().gauss(0, {SIGMA})\n"
        "print('---')\nprint(f'val_bpb: {1.0 + OFFSET + noise:.6f}')\n"
    )


def block(search: str, replace: str) -> str:
    return f"train.py\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def proposals(no_ops: int) -> list[dict[str, str]]:
    lines = [{"hypothesis": f"no-op {i}", "edits": block(f"# tweak {i}", f"# tweak {i}, variant")}
             for i in range(no_ops)]
    real = {"hypothesis": "real improvement", "edits": block("OFFSET = 0.0", f"OFFSET = {-5 * SIGMA}")}
    lines.insert(no_ops // 2, real)
    return lines


# The rules compared: a name, and the [acceptance] section that makes it.
RULES: dict[str, dict[str, object]] = {
    "greedy": {"mode": "greedy"},
    "confirm, one look (max_runs 3)": {"mode": "confirm", "max_runs": 3},
    "confirm, two looks (max_runs 5)": {"mode": "confirm"},
}


def night(acceptance: dict[str, object], no_ops: int) -> tuple[int, bool, int]:
    """One night: (false keeps, real improvement kept, runs)."""
    root = make_repo(train(no_ops), "{python} train.py")
    script = root.parent / f"{root.name}.jsonl"
    script.write_text("".join(json.dumps(p) + "\n" for p in proposals(no_ops)))
    cfg = config.load(root, {"acceptance": acceptance})
    engine = Engine(cfg, root, ScriptAgent(script), tag="noise")
    engine.prepare()
    engine.run()
    trained(root, "noise", no_ops + 1)
    kept = [e for e in engine.history if e.status == Status.KEEP and not e.is_baseline]
    false_keeps = sum(e.hypothesis.startswith("no-op") for e in kept)
    real = any(e.hypothesis == "real improvement" for e in kept)
    return false_keeps, real, sum(len(e.runs) for e in engine.history)


def main() -> None:
    nights, no_ops = (1, 6) if smoke(__doc__) else (NIGHTS, NO_OPS)
    results = {name: [night(acceptance, no_ops) for _ in range(nights)] for name, acceptance in RULES.items()}
    greedy_runs = statistics.fmean(n[2] for n in results["greedy"])
    for name, done in results.items():
        false = [n[0] for n in done]
        runs = statistics.fmean(n[2] for n in done)
        print(
            f"{name:>31}: false keeps per night (of {no_ops}) mean {statistics.fmean(false):.2f}, max {max(false)}; "
            f"real improvement kept in {sum(n[1] for n in done)} of {nights} nights; "
            f"runs per night mean {runs:.1f} ({runs / greedy_runs:.2f} x greedy)"
        )
    print("goals: the real improvement kept every night, false keeps <= 1 of 30, runs <= 1.6 x greedy")


if __name__ == "__main__":
    main()
