"""The append-only ledger (`.arsup/journal.jsonl`) and autoresearch's `results.tsv`.

The journal is the source of truth: one JSON event a line, flushed and
fsync'd before the engine goes on, so a power cut or a kill -9 loses at most
the line being written. Each experiment event carries the whole record, so
the latest one per id rebuilds the experiment; results.tsv is an export that
can always be rewritten from it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from arsup.core.experiment import Experiment, Status

STATE_DIR = ".arsup"
JOURNAL_NAME = "journal.jsonl"
RESULTS_NAME = "results.tsv"


def _durable_write(path: Path, text: str, mode: str) -> None:
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class Journal:
    """The ledger of one research repo; every tag's experiments share it, ids are unique across tags."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / STATE_DIR
        self.path = self.dir / JOURNAL_NAME
        self.dir.mkdir(parents=True, exist_ok=True)

    def run_dir(self, experiment_id: str) -> Path:
        path = self.dir / "runs" / experiment_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def append(self, event: str, **data: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **data}
        _durable_write(self.path, json.dumps(record, separators=(",", ":")) + "\n", "a")

    def record(self, experiment: Experiment) -> None:
        self.append("experiment", experiment=experiment.to_json())

    def events(self) -> list[dict[str, Any]]:
        """Every readable event; a line cut short by a crash mid-write is skipped, not fatal."""
        if not self.path.is_file():
            return []
        events = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def experiments(self, tag: str | None = None) -> list[Experiment]:
        """The latest state of each experiment, in the order they were first recorded."""
        latest: dict[str, Experiment] = {}
        for event in self.events():
            if event.get("event") != "experiment":
                continue
            experiment = Experiment.from_json(event["experiment"])
            if tag is None or experiment.tag == tag:
                latest[experiment.id] = experiment
        return list(latest.values())

    def next_number(self) -> int:
        """Ids are numbers, unique across tags, so run folders and refs never collide."""
        numbers = [int(e.id) for e in self.experiments() if e.id.isdigit()]
        return max(numbers, default=0) + 1


class RepoBusy(Exception):
    """Another arsup is working in this repo; two loops on one work tree would wreck each other."""


class RepoLock:
    """An exclusive lock on `.arsup/lock`, held while arsup changes the work tree; gone with the process."""

    def __init__(self, root: Path) -> None:
        self.path = root / STATE_DIR / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RepoBusy(
                f"another arsup (pid {holder}) is working in {self.path.parent.parent}; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def results_header(metric: str) -> str:
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription\n"


def results_row(experiment: Experiment) -> str:
    """One row exactly as autoresearch writes it; a crash reads 0.000000 and 0.0."""
    crashed = experiment.status == Status.CRASH
    value = 0.0 if crashed or experiment.metric is None else experiment.metric
    vram_mb = 0.0 if crashed else experiment.metrics.get("peak_vram_mb", 0.0)
    description = " ".join(experiment.hypothesis.split()) or "-"
    return f"{experiment.commit[:7]}\t{value:.6f}\t{vram_mb / 1024:.1f}\t{experiment.status}\t{description}\n"


def write_results(path: Path, metric: str, experiments: Iterable[Experiment]) -> None:
    """Rewrite results.tsv from the journal's experiments (only those that trained get a row)."""
    rows = [results_row(e) for e in experiments if e.status in Status.TRAINED]
    _durable_write(path, results_header(metric) + "".join(rows), "w")


def append_result(path: Path, metric: str, experiment: Experiment) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        _durable_write(path, results_header(metric), "w")
    _durable_write(path, results_row(experiment), "a")
