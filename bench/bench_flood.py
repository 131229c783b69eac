"""A run that prints 200k lines: wall time under `arsup run --headless` against the same script alone.

"Alone" is the script with its output sent straight to a file (what a person
does with `> run.log`); under arsup the output goes through a pipe, the log
file and the line splitter. Pairs alternate their order so drift cancels.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import make_repo, median, require, smoke

PAIRS = 5  # --smoke: 1
LINES = 200_000  # --smoke: 20,000
FLOOD = (
    "import sys\n"
    "for i in range(int(sys.argv[1])):\n"
    "    print(f'step {i:06d} | loss: {1.0 / (i + 1):.6f} | lr: 0.000400 | tok/s: 123456')\n"
    "print('---')\nprint('val_bpb: 1.000000')\n"
)


def alone(script: Path, lines: int) -> float:
    with open(script.parent / "alone.log", "wb") as log:
        started = time.monotonic()
        subprocess.run([sys.executable, str(script), str(lines)], stdout=log, stderr=subprocess.STDOUT, check=True)
        return time.monotonic() - started


def under_arsup(root: Path, tag: str) -> float:
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--max-experiments", "1", "--tag", tag],
        cwd=root, check=True, capture_output=True,
    )
    events = [json.loads(line) for line in (root / ".arsup" / "journal.jsonl").read_text().splitlines()]
    last = [e for e in events if e["event"] == "experiment" and e["experiment"]["tag"] == tag][-1]
    require(last["experiment"]["metric"] == 1.0, f"the run under arsup gave no metric: {last['experiment']['reason']}")
    return last["experiment"]["runs"][0]["wall_s"]


def main() -> None:
    quick = smoke(__doc__)
    pairs, lines = (1, 20_000) if quick else (PAIRS, LINES)
    root = make_repo(FLOOD, f"{{python}} train.py {lines}")
    ratios = []
    for i in range(pairs):
        if i % 2:
            supervised, plain = under_arsup(root, f"flood{i}"), alone(root / "train.py", lines)
        else:
            plain, supervised = alone(root / "train.py", lines), under_arsup(root, f"flood{i}")
        ratios.append(supervised / plain)
        print(f"pair {i + 1}: alone {plain:.3f} s, under arsup {supervised:.3f} s, ratio {supervised / plain:.3f}")
    print(f"median ratio under arsup / alone: {median(ratios):.3f} (goal: <= 1.03)")


if __name__ == "__main__":
    main()
