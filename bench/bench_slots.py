"""Slots: experiments per hour with two CPU slots against one, on the same proposals.

A CPU-bound training of about 2.5 s (one core: a Python loop), 12 replayed
proposals that each change their own constant (every one a discard, so both
nights run exactly the same 12 candidates), the agent answering at once,
greedy acceptance. The same night with `[slots] cpu = 2` and with one slot,
alternated over PAIRS pairs on this 2-core machine; the run command stamps its
own start and end. Experiments per hour counts the candidates over the wall
time from the first candidate's start to the last one's end. Goal: 2 slots at
least 1.8 times 1 slot. `--smoke`: 4 proposals of a tenth of the work, one pair.
"""

from __future__ import annotations

import json
import subprocess
import sys

from common import Stamps, constants, git, make_repo, median, require, set_constants, smoke, trained

N = 12  # --smoke: 4
PAIRS = 3  # --smoke: 1
WORK = 30_000_000  # loop iterations: about 2.5 s of one core here; --smoke: a tenth


def train(n: int, work: int) -> str:
    return constants(n) + (
        f"total = 0\nfor i in range({work}):\n    total += i % 7\n"
        f"print('val_bpb:', 1.0 + {' + '.join(f'C{i}' for i in range(n))})\n"
    )


def night(cpu_slots: int, n: int, work: int) -> tuple[float, int]:
    """One session: candidates per hour, and how many ran."""
    stamps = Stamps()
    root = make_repo(train(n, work), stamps.around("{python} train.py"), stamps.sections)
    slots = f"cpu = {cpu_slots}" if cpu_slots > 1 else 'gpus = "none"'
    with (root / "arsup.toml").open("a") as config:
        config.write(f'\n[slots]\n{slots}\n\n[acceptance]\nmode = "greedy"\n')
    git(root, "commit", "-qam", "slots")
    lines = set_constants([0.01] * n)
    script = root.parent / f"{root.name}-proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "bench"],
        cwd=root, check=True, capture_output=True,
    )
    trained(root, "bench", n)
    starts, ends = (sorted(times)[1:] for times in stamps.read())  # the baseline runs alone first
    require(len(starts) == len(ends) == n, f"{len(starts)} starts and {len(ends)} ends stamped for {n} runs")
    return len(starts) / (ends[-1] - starts[0]) * 3600, len(starts)


def main() -> None:
    pairs, n, work = (1, 4, WORK // 10) if smoke(__doc__) else (PAIRS, N, WORK)
    one, two = [], []
    for _ in range(pairs):
        one.append(night(1, n, work))
        two.append(night(2, n, work))
    rate_one, rate_two = median([rate for rate, _ in one]), median([rate for rate, _ in two])
    print(f"1 slot:  {rate_one:.0f} experiments/hour (candidates per night: {[n for _, n in one]})")
    print(f"2 slots: {rate_two:.0f} experiments/hour (candidates per night: {[n for _, n in two]})")
    print(f"2 slots / 1 slot: {rate_two / rate_one:.2f} (goal: at least 1.8)")


if __name__ == "__main__":
    main()
