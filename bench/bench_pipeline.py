"""Pipelined proposals: how long the trainer waits for the agent, with and without a queue.

A replayed agent that thinks 2 s per proposal, runs of 3 s, 10 proposals (a
mix of keeps and discards, each an edit of its own constant so a keep never
stops the next one applying), one slot. The same night runs with `[slots]
queue = 1` (the agent proposes while the run trains) and `queue = 0` (it
proposes once the run ended), alternated over PAIRS pairs. The run command
stamps its own start and end, so the idle gap is exactly the time between
one run's end and the next one's start; the duty cycle is the trainer's busy
time over the wall time from the first proposal's run to the last run's end.
Goals: pipelined median gap under 0.5 s, duty cycle at least 0.9. `--smoke`:
4 proposals, 0.5 s of thinking and of running, one pair.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

from common import Stamps, constants, git, make_repo, median, require, set_constants, smoke, trained

THINK_S = 2.0  # --smoke: 0.5
RUN_S = 3.0  # --smoke: 0.5
N = 10  # --smoke: 4
PAIRS = 2  # --smoke: 1


def train(n: int) -> str:
    return constants(n) + f"print('val_bpb:', 1.0 + {' + '.join(f'C{i}' for i in range(n))})\n"


def night(queue: int, n: int, think_s: float, run_s: float) -> tuple[list[float], float, int]:
    """One session; the idle gaps between runs, the duty cycle, and how many proposals were kept."""
    stamps = Stamps()
    root = make_repo(train(n), stamps.around(f"sleep {run_s}; {{python}} train.py"), stamps.sections)
    with (root / "arsup.toml").open("a") as config:
        config.write(f'\n[slots]\nqueue = {queue}\n\n[acceptance]\nmode = "greedy"\n')
    rng = random.Random(1)
    steps = [rng.choice([-0.01, 0.01]) for _ in range(n)]  # a keep lowers the metric, a discard raises it
    lines = [{**line, "think_s": think_s} for line in set_constants(steps)]
    script = root.parent / f"{root.name}-proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    git(root, "commit", "-qam", "queue")
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "bench"],
        cwd=root, check=True, capture_output=True,
    )
    trained(root, "bench", n)
    starts, ends = (times[1:] for times in stamps.read())  # the baseline's run has nothing before it
    require(len(starts) == len(ends) == n, f"{len(starts)} starts and {len(ends)} ends stamped for {n} runs")
    gaps = [start - end for end, start in zip(ends, starts[1:])]
    busy = sum(end - start for start, end in zip(starts, ends))
    statuses = [row.split("\t")[3] for row in (root / "results.tsv").read_text().splitlines()[2:]]
    return gaps, busy / (ends[-1] - starts[0]), statuses.count("keep")


def main() -> None:
    pairs, n, think_s, run_s = (1, 4, 0.5, 0.5) if smoke(__doc__) else (PAIRS, N, THINK_S, RUN_S)
    results: dict[int, list[tuple[list[float], float, int]]] = {1: [], 0: []}
    for _ in range(pairs):
        for queue in (1, 0):
            results[queue].append(night(queue, n, think_s, run_s))
    for queue, label in ((0, "sequential (queue 0)"), (1, "pipelined  (queue 1)")):
        gaps = [gap for gaps, _, _ in results[queue] for gap in gaps]
        duty = median([duty for _, duty, _ in results[queue]])
        kept = [kept for _, _, kept in results[queue]]
        print(f"{label}: idle gap median {median(gaps):.2f} s, max {max(gaps):.2f} s; duty cycle {duty:.2f}; kept {kept}")
    print("goals: pipelined idle gap under 0.5 s, duty cycle at least 0.9")


if __name__ == "__main__":
    main()
