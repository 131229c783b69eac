"""Supervisor overhead per experiment: from one run's end to the next run's start.

The agent answers at once (a replayed script) and the run is one shell line
that prints the metric, so what is left is arsup's own work: journal fsyncs,
results.tsv, git commit/reset/refs, the edit, the process start.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time

from common import make_repo, median

N = 30


def main() -> None:
    stamps = tempfile.mktemp(prefix="arsup-bench-stamps-")
    run = (
        f"date +%s.%N | sed 's/^/start /' >> {stamps}; "
        "sed -n 's/^V = /val_bpb: /p' train.py; "
        f"date +%s.%N | sed 's/^/end /' >> {stamps}"
    )
    root = make_repo("V = 1.0\n", run)
    rng = random.Random(0)
    lines = []
    for i in range(N):
        new = f"V = {rng.uniform(0.5, 1.5):.6f}"
        lines.append({"hypothesis": f"try {i}", "files": {"train.py": new + "\n"}})
    (root / "proposals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    open(stamps, "w").close()
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", "script:proposals.jsonl", "--tag", "bench"],
        cwd=root, check=True, capture_output=True,
    )
    total = time.monotonic() - started
    events = [line.split() for line in open(stamps).read().splitlines()]
    starts = [float(t) for kind, t in events if kind == "start"]
    ends = [float(t) for kind, t in events if kind == "end"]
    gaps_ms = [(s - e) * 1000 for e, s in zip(ends, starts[1:])]
    statuses = [row.split("\t")[3] for row in (root / "results.tsv").read_text().splitlines()[1:]]
    print(f"experiments: {len(starts)} ({statuses.count('keep')} kept, {statuses.count('discard')} discarded)")
    print(f"run end -> next run start: median {median(gaps_ms):.1f} ms, max {max(gaps_ms):.1f} ms (goal: median < 150 ms)")
    print(f"whole session: {total:.2f} s for {len(starts)} experiments")


if __name__ == "__main__":
    main()
