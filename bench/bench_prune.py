"""Pruning on tinylm: how much training a hopeless proposal no longer costs, and whether a winner is ever pruned.

The same five proposals (two learning rates 100x and 1000x too low, three
plausible ones) run on the tinylm sample twice, with `[prune]` off and on (greedy
acceptance, one run each, warm-up 1 so pruning judges from the first
proposal). Figures: training seconds of the proposals, on / off; and the
experiments kept with pruning off that were pruned with it on (goal: none).
`--smoke`: one proposal (LR doubled, a keep) on a tinylm of 20,000
training bytes (9 steps instead of 341) and 8,192 evaluated bytes, in the
benchmark's copy, no holdout run, one torch thread per run: that the figures
come out, not what they are (a tinylm run costs about 8 s whatever its
budget: torch's imports, and its compiler's on the first step).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, git, require, smoke, trained

from arsup.demo import create_demo_repo

ORIGINAL = (ROOT / "sample_projects" / "tinylm" / "train.py").read_text()
# --smoke's changes to the sample, in the benchmark's copy: (file, original line, line in the copy).
SMOKE = [
    ("prepare.py", "TOKEN_BUDGET = 700_000", "TOKEN_BUDGET = 20_000"),
    ("prepare.py", "EVAL_BYTES = 32768", "EVAL_BYTES = 8192"),
    ("arsup.toml", 'env = {EVAL_SPLIT = "holdout"}', ""),  # no holdout run after each keep
]
LINE = "LR = {}  # peak AdamW learning rate"
# Whole files, each the original with one learning rate, so a keep does not stop the next one applying.
PROPOSALS = [
    (name, ORIGINAL.replace(LINE.format("0.0005"), LINE.format(value)))
    for name, value in [
        ("LR 1000x too low", "0.0000005"), ("LR doubled", "0.001"), ("LR 100x too low", "0.000005"),
        ("LR a bit lower", "0.0004"), ("LR tripled", "0.0015"),
    ]
]


def session(prune: bool, proposals: list[tuple[str, str]], reduced: list[tuple[str, str, str]]) -> dict[str, dict]:
    """One night of `proposals` on a fresh tinylm copy with the `reduced` lines (file, old, new) changed."""
    root = create_demo_repo("tinylm", Path(tempfile.mkdtemp(prefix="arsup-prune-")) / "demo")
    for file, old, new in reduced:
        text = (root / file).read_text()
        require(old in text, f"sample_projects/tinylm/{file} no longer has `{old}`; update SMOKE")
        (root / file).write_text(text.replace(old, new))
    config = (root / "arsup.toml").read_text()
    config += f"\n[prune]\nenabled = {'true' if prune else 'false'}\nwarmup = 1\n\n[acceptance]\nmode = \"greedy\"\n"
    (root / "arsup.toml").write_text(config)
    lines = [{"hypothesis": name, "files": {"train.py": text}} for name, text in proposals]
    script = root.parent / "proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    git(root, "add", "arsup.toml", "prepare.py")
    git(root, "commit", "-qm", "bench")
    done = subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "prune"],
        cwd=root, capture_output=True, text=True, env={**os.environ, **({"OMP_NUM_THREADS": "1"} if reduced else {})},
    )
    if done.returncode:
        raise SystemExit(f"the session failed:\n{done.stdout}{done.stderr}")
    trained(root, "prune", len(proposals))
    records = [json.loads(line) for line in (root / ".arsup" / "journal.jsonl").read_text().splitlines()]
    done = {r["experiment"]["hypothesis"]: r["experiment"] for r in records if r["event"] == "experiment"}
    shutil.rmtree(root.parent, ignore_errors=True)
    return done


def main() -> None:
    require(all(text != ORIGINAL for _, text in PROPOSALS), f"tinylm's train.py has no `{LINE.format('0.0005')}`")
    proposals, reduced = (PROPOSALS[1:2], SMOKE) if smoke(__doc__) else (PROPOSALS, [])
    off, on = session(False, proposals, reduced), session(True, proposals, reduced)
    names = [name for name, _ in proposals]
    for name in names:
        print(f"{name:26} off: {off[name]['status']:8} on: {on[name]['status']:8} {on[name]['reason'][:70]}")
    train_off = sum(sum(r["wall_s"] for r in off[n]["runs"]) for n in names)
    train_on = sum(sum(r["wall_s"] for r in on[n]["runs"]) for n in names)
    wrongly = [n for n in names if off[n]["status"] == "keep" and on[n]["reason"].startswith("pruned")]
    print(f"training seconds of the proposals, pruning on / off: {train_on:.1f} / {train_off:.1f} = "
          f"{train_on / train_off:.2f}")
    print(f"kept without pruning but pruned with it: {len(wrongly)} {wrongly} (goal: 0)")


if __name__ == "__main__":
    main()
