"""The record of one experiment: what was tried, on which commit, and how it ended.

Records are plain data so that the journal can write them as JSON and rebuild
them on resume, and so that events can carry copies across threads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class Status:
    """Experiment statuses; strings so they read the same in the journal and results.tsv."""

    PROPOSED = "proposed"  # the agent answered; the edit is not committed yet
    RUNNING = "running"  # committed, training
    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    INVALID = "invalid"  # the edit could not be applied; it never trained
    SKIPPED = "skipped"  # a person declined it before it trained

    FINAL = frozenset({KEEP, DISCARD, CRASH, INVALID, SKIPPED})
    TRAINED = frozenset({KEEP, DISCARD, CRASH})


@dataclass
class RunResult:
    """One training process: how it ended and what it cost."""

    seed: int
    log_path: str
    exit_code: int | None = None
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    timed_out: bool = False
    killed: bool = False  # stopped by the supervisor (user stop, kill), not by itself
    metrics: dict[str, float] = field(default_factory=dict)
    crash_reason: str = ""


@dataclass
class Experiment:
    """One hypothesis, its edit, its commit and its outcome."""

    id: str
    tag: str
    parent: str  # the commit the edit was made on (the head of the kept line)
    hypothesis: str
    agent: str
    commit: str = ""  # the attempt's own commit; the parent for the baseline
    diff: str = ""
    files: list[str] = field(default_factory=list)
    status: str = Status.PROPOSED
    reason: str = ""
    metric: float | None = None  # the value the decision used: the mean over the runs
    metric_std: float | None = None  # spread over the runs (None with one run)
    p_value: float | None = None  # the paired test's, when it was confirmed
    gain_sigma: float | None = None  # the gain over the best in noise sigmas
    sigma: float | None = None  # the noise floor the decision used
    metrics: dict[str, float] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)
    crash_tail: str = ""  # the log's last lines, for the agent, when it crashed
    proposed_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    propose_s: float = 0.0
    agent_data: dict[str, Any] = field(default_factory=dict)  # Proposal.meta, JSON-serialisable
    is_baseline: bool = False  # the unmodified code a run branch starts with

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Experiment:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["runs"] = [RunResult(**run) for run in values.get("runs", [])]
        return cls(**values)

    def copy(self) -> Experiment:
        return Experiment.from_json(self.to_json())
