"""A slow CLI agent and two slots: one proposal made at a time against one per slot at once.

A `command` agent (a Python script of this benchmark's own) thinks for THINK_S
seconds and then sets a constant of its own (every one a discard); a training
of TRAIN_S seconds that sleeps (no CPU: what is measured is the scheduling,
not this 2-core machine); two CPU slots, greedy acceptance. The same night
with `[agent] at_once = 1` (one proposer, as arsup had before) and with the
default (one proposal per slot at once), alternated over PAIRS pairs; the run
command stamps its own start and end. Experiments per hour counts the
candidates over the wall time from the first candidate's start to the last
one's end; duty is the training time over both slots' wall time. With the agent
four times slower than a run, one proposer feeds a slot every THINK_S: two at
once should give close to twice the experiments. `--smoke`: 4 proposals of a
tenth of the time, one pair.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import SUM_OF_CONSTANTS, Stamps, constants, make_repo, median, require, smoke, trained

N = 12  # --smoke: 4
PAIRS = 3  # --smoke: 1
THINK_S = 2.0  # --smoke: a tenth
TRAIN_S = 0.5

# The agent: take the first constant no other call took (an exclusive file per constant), think, set it.
AGENT = """\
import os, pathlib, sys, time
taken, think = pathlib.Path(sys.argv[1]), float(sys.argv[2])
for i in range(1000):
    try:
        os.close(os.open(taken / f"C{i}", os.O_CREAT | os.O_EXCL))
        break
    except FileExistsError:
        continue
time.sleep(think)
train = pathlib.Path("train.py")
train.write_text(train.read_text().replace(f"C{i} = 0.0\\n", f"C{i} = 0.010000\\n"))
print(f"HYPOTHESIS: C{i} to 0.01")
"""


def night(at_once: int, n: int, think_s: float, train_s: float) -> tuple[float, float]:
    """One session: candidates per hour, and the slots' duty."""
    stamps, outside = Stamps(), Path(tempfile.mkdtemp(prefix="arsup-bench-agent-"))
    agent, taken = outside / "agent.py", outside / "taken"
    agent.write_text(AGENT)
    taken.mkdir()
    sections = {
        **stamps.sections, "slots": {"cpu": 2}, "acceptance": {"mode": "greedy"},
        "agent": {"kind": "command", "command": f"{sys.executable} {agent} {taken} {think_s}", "at_once": at_once},
    }
    root = make_repo(constants(n), stamps.around(f"sleep {train_s}; {SUM_OF_CONSTANTS}"), sections)
    done = subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--tag", "bench", "--max-experiments", str(n + 1)],
        cwd=root, capture_output=True, text=True,
    )
    require(done.returncode == 0, f"the night ended with exit {done.returncode}: {done.stdout[-600:]}{done.stderr[-600:]}")
    trained(root, "bench", n)
    starts, ends = (sorted(times)[1:] for times in stamps.read())  # the baseline runs alone first
    require(len(starts) == len(ends) == n, f"{len(starts)} starts and {len(ends)} ends stamped for {n} runs")
    wall = ends[-1] - starts[0]
    busy = sum(end - start for start, end in zip(starts, ends))
    return n / wall * 3600, busy / (2 * wall)


def main() -> None:
    scale = 0.1 if smoke(__doc__) else 1.0
    pairs, n = (1, 4) if scale < 1 else (PAIRS, N)
    one, two = [], []
    for _ in range(pairs):
        one.append(night(1, n, THINK_S * scale, TRAIN_S))
        two.append(night(0, n, THINK_S * scale, TRAIN_S))
    rate_one, rate_two = median([rate for rate, _ in one]), median([rate for rate, _ in two])
    duty_one, duty_two = median([duty for _, duty in one]), median([duty for _, duty in two])
    print(f"agent {THINK_S * scale:g} s a proposal, runs {TRAIN_S:g} s, 2 slots, {n} proposals, {pairs} pairs")
    print(f"one proposal at a time (at_once = 1): {rate_one:7.0f} experiments/hour, duty {100 * duty_one:4.1f} %")
    print(f"one per slot at once (the default):   {rate_two:7.0f} experiments/hour, duty {100 * duty_two:4.1f} %")
    print(f"ratio: {rate_two / rate_one:.2f} x the experiments (goal: close to 2)")


if __name__ == "__main__":
    main()
