"""Noise-aware acceptance against greedy on a metric that is pure noise.

The training script prints 1.0 + OFFSET + N(0, SIGMA), with its noise drawn
from the OS (so seeds cannot pair it away: the hardest case). The agent
replays 30 proposals that change nothing (a comment line each) and, at
position 16, one real improvement of 5 sigma. Both rules see the same
proposals; each is repeated over several independent nights.
"""

from __future__ import annotations

import json
import statistics
import sys

from common import make_repo

sys.path.insert(0, str(__import__("common").ROOT / "src"))

from arsup import config  # noqa: E402
from arsup.core.agents.script import ScriptAgent  # noqa: E402
from arsup.core.engine import Engine  # noqa: E402
from arsup.core.experiment import Status  # noqa: E402

SIGMA = 0.001
NIGHTS = 20
TRAIN = (
    "import random\n"
    "OFFSET = 0.0\n"
    "# tweaks\n"
    f"noise = random.SystemRandom().gauss(0, {SIGMA})\n"
    "print('---')\nprint(f'val_bpb: {1.0 + OFFSET + noise:.6f}')\n"
)


def block(search: str, replace: str) -> str:
    return f"train.py\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def proposals() -> list[dict[str, str]]:
    lines = [{"hypothesis": f"no-op {i}", "edits": block("# tweaks", f"# tweaks\n# variant {i}")} for i in range(30)]
    lines.insert(15, {"hypothesis": "real improvement", "edits": block("OFFSET = 0.0", f"OFFSET = {-5 * SIGMA}")})
    return lines


def night(mode: str) -> tuple[int, bool, int]:
    """One night: (false keeps, real improvement kept, runs)."""
    root = make_repo(TRAIN, "{python} train.py")
    script = root.parent / f"{root.name}.jsonl"
    script.write_text("".join(json.dumps(p) + "\n" for p in proposals()))
    cfg = config.load(root, {"acceptance": {"mode": mode}})
    engine = Engine(cfg, root, ScriptAgent(script), tag=mode)
    engine.prepare()
    engine.run()
    kept = [e for e in engine.history if e.status == Status.KEEP and not e.is_baseline]
    false_keeps = sum(e.hypothesis.startswith("no-op") for e in kept)
    real = any(e.hypothesis == "real improvement" for e in kept)
    return false_keeps, real, sum(len(e.runs) for e in engine.history)


def main() -> None:
    results = {mode: [night(mode) for _ in range(NIGHTS)] for mode in ("greedy", "confirm")}
    for mode, nights in results.items():
        false = [n[0] for n in nights]
        print(
            f"{mode:>7}: false keeps per night (of 30) mean {statistics.fmean(false):.2f}, max {max(false)}; "
            f"real improvement kept in {sum(n[1] for n in nights)} of {NIGHTS} nights; "
            f"runs per night mean {statistics.fmean(n[2] for n in nights):.1f}"
        )
    ratio = statistics.fmean(n[2] for n in results["confirm"]) / statistics.fmean(n[2] for n in results["greedy"])
    print(f"runs, confirm / greedy: {ratio:.2f} (goal: <= 1.6; false keeps goal: <= 1 of 30)")


if __name__ == "__main__":
    main()
