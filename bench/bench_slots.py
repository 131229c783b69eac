"""Slots: experiments per hour with two CPU slots against one, on the same proposals.

A CPU-bound training of about 2.5 s (one core: a Python loop), 12 replayed
proposals that each change their own constant (every one a discard, so both
nights run exactly the same 12 candidates), the agent answering at once,
greedy acceptance. The same night with `[slots] cpu = 2` and with one slot,
alternated over PAIRS pairs on this 2-core machine; the run command stamps its
own start and end. Experiments per hour counts the candidates over the wall
time from the first candidate's start to the last one's end. Goal: 2 slots at
least 1.8 times 1 slot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import git, make_repo, median

N = 12
PAIRS = 3
WORK = 30_000_000  # loop iterations: about 2.5 s of one core here
TRAIN = "".join(f"C{i} = 0.0\n" for i in range(N)) + (
    f"total = 0\nfor i in range({WORK}):\n    total += i % 7\n"
    f"print('val_bpb:', 1.0 + {' + '.join(f'C{i}' for i in range(N))})\n"
)


def night(cpu_slots: int) -> tuple[float, int]:
    """One session: candidates per hour, and how many ran."""
    stamps = Path(tempfile.mktemp(prefix="arsup-bench-slots-"))
    run = f"date +%s.%N | sed 's/^/start /' >> {stamps}; {{python}} train.py; date +%s.%N | sed 's/^/end /' >> {stamps}"
    root = make_repo(TRAIN, run)
    slots = f"cpu = {cpu_slots}" if cpu_slots > 1 else 'gpus = "none"'
    with (root / "arsup.toml").open("a") as config:
        config.write(f'\n[slots]\n{slots}\n\n[acceptance]\nmode = "greedy"\n')
    git(root, "commit", "-qam", "slots")
    lines = []
    for i in range(N):
        edit = f"train.py\n```python\n<<<<<<< SEARCH\nC{i} = 0.0\n=======\nC{i} = 0.01\n>>>>>>> REPLACE\n```\n"
        lines.append({"hypothesis": f"constant {i} up", "edits": edit})
    script = root.parent / f"{root.name}-proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    stamps.write_text("")
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "bench"],
        cwd=root, check=True, capture_output=True,
    )
    events = [line.split() for line in stamps.read_text().splitlines()]
    starts = sorted(float(t) for kind, t in events if kind == "start")[1:]  # the baseline runs alone first
    ends = sorted(float(t) for kind, t in events if kind == "end")[1:]
    return len(starts) / (ends[-1] - starts[0]) * 3600, len(starts)


def main() -> None:
    one, two = [], []
    for _ in range(PAIRS):
        one.append(night(1))
        two.append(night(2))
    rate_one, rate_two = median([rate for rate, _ in one]), median([rate for rate, _ in two])
    print(f"1 slot:  {rate_one:.0f} experiments/hour (candidates per night: {[n for _, n in one]})")
    print(f"2 slots: {rate_two:.0f} experiments/hour (candidates per night: {[n for _, n in two]})")
    print(f"2 slots / 1 slot: {rate_two / rate_one:.2f} (goal: at least 1.8)")


if __name__ == "__main__":
    main()
