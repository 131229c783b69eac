"""Supervisor overhead per experiment: from one run's end to the next run's start.

The agent answers at once (a replayed script) and the run is one shell line
that prints the metric (1 + the sum of train.py's constants), so what is left
is arsup's own work: journal fsyncs, results.tsv, git commit/reset/refs, the
edit, the process start, and the checks on each proposal (the repeat refusal,
the "going in circles" watchdog) at their defaults. Each proposal sets its own
constant to a random value (a keep when it is below zero), so no two are the
same idea and the night runs them all.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

from common import SUM_OF_CONSTANTS, Stamps, constants, make_repo, median, require, set_constants, smoke, trained

N = 30  # proposals; --smoke: 6
TAG = "bench"


def main() -> None:
    n = 6 if smoke(__doc__) else N
    stamps = Stamps()
    root = make_repo(constants(n), stamps.around(SUM_OF_CONSTANTS), stamps.sections)
    rng = random.Random(0)
    lines = set_constants([rng.uniform(-0.5, 0.5) for _ in range(n)])
    (root / "proposals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", "script:proposals.jsonl", "--tag", TAG],
        cwd=root, check=True, capture_output=True,
    )
    total = time.monotonic() - started
    experiments = trained(root, TAG, n)
    starts, ends = stamps.read()
    runs = sum(len(e.runs) for e in experiments)
    require(len(starts) == len(ends) == runs, f"{len(starts)} runs stamped, the journal holds {runs}")
    gaps_ms = [(s - e) * 1000 for e, s in zip(ends, starts[1:])]
    statuses = [e.status for e in experiments if not e.is_baseline]
    print(f"experiments: {len(experiments)} (the baseline, {statuses.count('keep')} kept, "
          f"{statuses.count('discard')} discarded), {runs} runs")
    print(f"run end -> next run start: median {median(gaps_ms):.1f} ms, max {max(gaps_ms):.1f} ms (goal: median < 150 ms)")
    print(f"whole session: {total:.2f} s for {runs} runs")


if __name__ == "__main__":
    main()
