"""Pipelined proposals: how long the trainer waits for the agent, with and without a queue.

A replayed agent that thinks 2 s per proposal, runs of 3 s, 10 proposals (a
mix of keeps and discards, each an edit of its own constant so a keep never
stops the next one applying), one slot. The same night runs with `[slots]
queue = 1` (the agent proposes while the run trains) and `queue = 0` (it
proposes once the run ended), alternated over PAIRS pairs. The run command
stamps its own start and end, so the idle gap is exactly the time between
one run's end and the next one's start; the duty cycle is the trainer's busy
time over the wall time from the first proposal's run to the last run's end.
Goals: pipelined median gap under 0.5 s, duty cycle at least 0.9.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import git, make_repo, median

THINK_S = 2.0
RUN_S = 3.0
N = 10
PAIRS = 2
TRAIN = "".join(f"C{i} = 0.0\n" for i in range(N)) + f"print('val_bpb:', 1.0 + {' + '.join(f'C{i}' for i in range(N))})\n"


def night(queue: int) -> tuple[list[float], float, int]:
    """One session; the idle gaps between runs, the duty cycle, and how many proposals were kept."""
    stamps = Path(tempfile.mktemp(prefix="arsup-bench-pipeline-"))
    run = (
        f"date +%s.%N | sed 's/^/start /' >> {stamps}; sleep {RUN_S}; {{python}} train.py; "
        f"date +%s.%N | sed 's/^/end /' >> {stamps}"
    )
    root = make_repo(TRAIN, run)
    with (root / "arsup.toml").open("a") as config:
        config.write(f'\n[slots]\nqueue = {queue}\n\n[acceptance]\nmode = "greedy"\n')
    rng = random.Random(1)
    lines = []
    for i in range(N):
        step = rng.choice([-0.01, 0.01])  # a keep lowers the metric, a discard raises it
        edit = f"train.py\n```python\n<<<<<<< SEARCH\nC{i} = 0.0\n=======\nC{i} = {step}\n>>>>>>> REPLACE\n```\n"
        lines.append({"hypothesis": f"constant {i} to {step}", "edits": edit, "think_s": THINK_S})
    script = root.parent / f"{root.name}-proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    git(root, "commit", "-qam", "queue")
    stamps.write_text("")
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "bench"],
        cwd=root, check=True, capture_output=True,
    )
    events = [line.split() for line in stamps.read_text().splitlines()]
    starts = [float(t) for kind, t in events if kind == "start"][1:]  # the baseline's run has nothing before it
    ends = [float(t) for kind, t in events if kind == "end"][1:]
    gaps = [start - end for end, start in zip(ends, starts[1:])]
    busy = sum(end - start for start, end in zip(starts, ends))
    statuses = [row.split("\t")[3] for row in (root / "results.tsv").read_text().splitlines()[2:]]
    return gaps, busy / (ends[-1] - starts[0]), statuses.count("keep")


def main() -> None:
    results: dict[int, list[tuple[list[float], float, int]]] = {1: [], 0: []}
    for _ in range(PAIRS):
        for queue in (1, 0):
            results[queue].append(night(queue))
    for queue, label in ((0, "sequential (queue 0)"), (1, "pipelined  (queue 1)")):
        gaps = [gap for gaps, _, _ in results[queue] for gap in gaps]
        duty = median([duty for _, duty, _ in results[queue]])
        kept = [kept for _, _, kept in results[queue]]
        print(f"{label}: idle gap median {median(gaps):.2f} s, max {max(gaps):.2f} s; duty cycle {duty:.2f}; kept {kept}")
    print("goals: pipelined idle gap under 0.5 s, duty cycle at least 0.9")


if __name__ == "__main__":
    main()
