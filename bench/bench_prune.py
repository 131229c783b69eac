"""Pruning on tinylm: how much training a hopeless proposal no longer costs, and whether a winner is ever pruned.

The same five proposals (two learning rates 100x and 1000x too low, three
plausible ones) run on the tinylm sample twice, with `[prune]` off and on (greedy
acceptance, one run each, warm-up 1 so pruning judges from the first
proposal). Figures: training seconds of the proposals, on / off; and the
experiments kept with pruning off that were pruned with it on (goal: none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT

from arsup.demo import create_demo_repo

ORIGINAL = (ROOT / "sample_projects" / "tinylm" / "train.py").read_text()
LINE = "LR = {}  # peak AdamW learning rate"
# Whole files, each the original with one learning rate, so a keep does not stop the next one applying.
PROPOSALS = [
    (name, ORIGINAL.replace(LINE.format("0.0005"), LINE.format(value)))
    for name, value in [
        ("LR 1000x too low", "0.0000005"), ("LR doubled", "0.001"), ("LR 100x too low", "0.000005"),
        ("LR a bit lower", "0.0004"), ("LR tripled", "0.0015"),
    ]
]


def session(prune: bool) -> dict[str, dict]:
    root = create_demo_repo("tinylm", Path(tempfile.mkdtemp(prefix="arsup-prune-")) / "demo")
    config = (root / "arsup.toml").read_text()
    config += f"\n[prune]\nenabled = {'true' if prune else 'false'}\nwarmup = 1\n\n[acceptance]\nmode = \"greedy\"\n"
    (root / "arsup.toml").write_text(config)
    lines = [{"hypothesis": name, "files": {"train.py": text}} for name, text in PROPOSALS]
    script = root.parent / "proposals.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    subprocess.run(["git", "add", "arsup.toml"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@l", "commit", "-qm", "bench"], cwd=root, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{script}", "--tag", "prune"],
        cwd=root, capture_output=True, text=True,
    )
    if done.returncode:
        raise SystemExit(f"the session failed:\n{done.stdout}{done.stderr}")
    records = [json.loads(line) for line in (root / ".arsup" / "journal.jsonl").read_text().splitlines()]
    done = {r["experiment"]["hypothesis"]: r["experiment"] for r in records if r["event"] == "experiment"}
    shutil.rmtree(root.parent, ignore_errors=True)
    return done


def main() -> None:
    off, on = session(prune=False), session(prune=True)
    names = [name for name, _ in PROPOSALS]
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
