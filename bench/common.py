"""Shared set-up for the benchmarks: a throwaway research repo in a temp folder, the `--smoke` flag, the checks.

Every script takes `--smoke` (CI runs each one so): a few experiments, seconds,
and the same checks as a full run, so a benchmark that can no longer produce
its figure (a night that ended early, a count that is off) fails, exit 1.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from arsup import config  # noqa: E402
from arsup.core.experiment import Experiment, Status  # noqa: E402
from arsup.core.journal import Journal  # noqa: E402


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=root, check=True, capture_output=True,
    )


def make_repo(train: str, run: str, sections: dict[str, dict] | None = None, **project: object) -> Path:
    """A committed research repo: `train`, `run` and `project` in [project], and further `sections` of
    arsup.toml (e.g. {"sandbox": {...}})."""
    root = Path(tempfile.mkdtemp(prefix="arsup-bench-"))
    (root / "program.md").write_text("benchmark\n")
    (root / "train.py").write_text(train)
    data = config.detect(root)
    data["project"].update({"run": run, "protected": [], "time_budget": 60, "timeout": 120, **project})
    for name, values in (sections or {}).items():
        data.setdefault(name, {}).update(values)
    (root / "arsup.toml").write_text(config.to_toml(data))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench")
    return root


# The metric of a train.py made of `constants(n)`: 1 + their sum, read by a shell line (no Python start).
SUM_OF_CONSTANTS = "awk -F' = ' '{s += $2} END {printf \"val_bpb: %.6f\\n\", 1 + s}' train.py"


def constants(n: int) -> str:
    """train.py's constant lines `C0 = 0.0` ... `C{n-1} = 0.0`, which `set_constants` proposals edit."""
    return "".join(f"C{i} = 0.0\n" for i in range(n))


def set_constants(values: list[float]) -> list[dict[str, str]]:
    """Replayed proposals, the i-th setting C{i} to values[i]: each acts on a place of its own, so none is
    refused as a repeat, a keep never stops the next one applying, and the "going in circles" watchdog
    (the same place edited again and again) never stops the night."""
    return [
        {"hypothesis": f"C{i} to {value:g}",
         "edits": f"train.py\n```python\n<<<<<<< SEARCH\nC{i} = 0.0\n=======\nC{i} = {value:.6f}\n"
                  ">>>>>>> REPLACE\n```\n"}
        for i, value in enumerate(values)
    ]


class Stamps:
    """A run command's own start and end times, stamped into a file outside the project, so the gap from
    one run's end to the next one's start is arsup's alone. The file's folder is one of the runs'
    `[sandbox] writable` paths (give `sections` to make_repo): the default sandbox, bubblewrap where it
    works (CI installs it), gives each run a private /tmp that would hide a file there."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="arsup-bench-stamps-"))
        self.path = self.folder / "stamps"
        self.path.write_text("")
        self.sections = {"sandbox": {"writable": [*config.SandboxConfig().writable, str(self.folder)]}}

    def around(self, command: str) -> str:
        """`command` between a start stamp and an end stamp."""
        return (f"date +%s.%N | sed 's/^/start /' >> {self.path}; {command}; "
                f"date +%s.%N | sed 's/^/end /' >> {self.path}")

    def read(self) -> tuple[list[float], list[float]]:
        """The start and the end times, each in the order they were written."""
        events = [line.split() for line in self.path.read_text().splitlines()]
        return [float(t) for kind, t in events if kind == "start"], [float(t) for kind, t in events if kind == "end"]


def median(values: list[float]) -> float:
    return statistics.median(values)


def parser(doc: str) -> argparse.ArgumentParser:
    """The script's arguments, `--smoke` among them; `doc` is its docstring, whose first line describes it."""
    arguments = argparse.ArgumentParser(description=doc.splitlines()[0])
    arguments.add_argument("--smoke", action="store_true",
                           help="a few experiments, seconds: that the benchmark still produces its figure (CI)")
    return arguments


def smoke(doc: str) -> bool:
    """For a script whose only argument is `--smoke`: whether it was given."""
    return parser(doc).parse_args().smoke


def require(holds: bool, why: str) -> None:
    """The benchmark cannot produce its figure: exit 1 saying why, so CI fails on it."""
    if not holds:
        raise SystemExit(f"{Path(sys.argv[0]).name}: {why}")


def trained(root: Path, tag: str, proposals: int) -> list[Experiment]:
    """The session `tag` in root's journal, checked to have trained every one of its `proposals` (the
    baseline apart): a night stopped early (a watchdog, crashes in a row) gives no figure. Returns its
    experiments."""
    journal = Journal(root)
    experiments = journal.experiments(tag)
    ends = [event["reason"] for event in journal.events() if event["event"] == "session_end" and event["tag"] == tag]
    count = sum(e.status in Status.TRAINED and not e.is_baseline for e in experiments)
    require(count == proposals, f"{count} of {proposals} proposals trained in session {tag!r}; it ended: "
            f"{ends[-1] if ends else 'no end recorded'}")
    return experiments
