"""Shared set-up for the benchmarks: a throwaway research repo in a temp folder."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from arsup import config  # noqa: E402


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=root, check=True, capture_output=True,
    )


def make_repo(train: str, run: str, **project: object) -> Path:
    root = Path(tempfile.mkdtemp(prefix="arsup-bench-"))
    (root / "program.md").write_text("benchmark\n")
    (root / "train.py").write_text(train)
    data = config.detect(root)
    data["project"].update({"run": run, "protected": [], "time_budget": 60, "timeout": 120, **project})
    (root / "arsup.toml").write_text(config.to_toml(data))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench")
    return root


def median(values: list[float]) -> float:
    return statistics.median(values)
