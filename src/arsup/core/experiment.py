"""The record of one experiment: what was tried, on which commit, and how it ended.

Records are plain data so that the journal can write them as JSON and rebuild
them on resume, and so that events can carry copies across threads.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class Status(enum.StrEnum):
    """Experiment statuses; their values read the same in the journal and results.tsv."""

    QUEUED = "queued"  # made by the proposer, waiting for its turn: journaled, nothing written yet
    PROPOSED = "proposed"  # its turn came; the edit is being written and committed
    RUNNING = "running"  # committed, training
    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    INVALID = "invalid"  # the edit could not be applied; it never trained
    SKIPPED = "skipped"  # a person declined it before it trained

    FINAL = enum.nonmember(frozenset({KEEP, DISCARD, CRASH, INVALID, SKIPPED}))
    TRAINED = enum.nonmember(frozenset({KEEP, DISCARD, CRASH}))


class Cause(enum.StrEnum):
    """Why a run crashed, where the loop acts on it (the reason says it in words)."""

    TAMPERED = "tampered"  # it changed a protected file: restored, a crash
    GIT_CHANGED = "git changed"  # it changed `.git` (a hook, config, a ref): put back, a crash
    NODE_LOST = "node lost"  # its cluster node went away: the host's failure, run again once
    CLUSTER_GONE = "cluster gone"  # the whole cluster is gone: not measured, the loop ends


PERSON = "person"  # the agent name of a commit a person made on the run branch


@dataclass(frozen=True)
class Verdict:
    """How an experiment ends, and why in words: what the recorder writes."""

    status: Status
    reason: str


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
    pruned: str = ""  # why it was stopped as hopeless (a discard, not a crash)
    curve: list[list[float]] = field(default_factory=list)  # [fraction of the steps, loss], when pruning is on
    cause: Cause | None = None  # what the loop does about a crash, where it does something
    steps: int = 0  # the training steps its log says it ran (0: it does not say)
    capped: float = 0.0  # the share of the steps it ran when the time budget cut it short (core/load.py); 0: not

    def __post_init__(self) -> None:
        if self.cause is not None:
            self.cause = Cause(self.cause)  # from the journal: its value


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
    written: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 of the bytes arsup wrote, for recovery
    status: Status = Status.PROPOSED
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
    made_for: str = ""  # the best (its id) the proposal was made against; a keep since may have moved the line on
    slot: str = ""  # where it trained: "main" (the project folder) or a slot's worktree ("gpu1", "cpu0")
    agent_data: dict[str, Any] = field(default_factory=dict)  # Proposal.meta, JSON-serialisable
    is_baseline: bool = False  # the unmodified code a run branch starts with
    holdout: float | None = None  # [holdout]: the kept commit's score on data the agent never sees
    holdout_note: str = ""  # why a keep has no holdout value


    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, dropped: list[str] | None = None) -> Experiment:
        """Rebuild a record from JSON that an older or a newer arsup may have written.

        A wrong shape or type is a ValueError naming the field, so the journal
        can skip that line and say why, instead of a TypeError deep in the
        engine later. Keys this version does not know are left out, and named
        in `dropped` when the caller wants to say so.
        """
        values = _known_fields(cls, data, "", dropped)
        runs = enumerate(values.get("runs", []))
        values["runs"] = [RunResult(**_known_fields(RunResult, run, f"runs[{i}]", dropped)) for i, run in runs]
        if "status" in values:
            values["status"] = Status(values["status"])
        return cls(**values)

    @property
    def by_person(self) -> bool:
        """A commit a person made on the run branch, measured like a baseline: never judged, taken as the best."""
        return self.agent == PERSON

    def copy(self) -> Experiment:
        return Experiment.from_json(self.to_json())

    def for_agent(self) -> Experiment:
        """A copy without the holdout: a score the agent could see is a score it could fit."""
        copy = self.copy()
        copy.holdout, copy.holdout_note = None, ""
        return copy


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _known_fields(cls: type, data: Any, where: str, dropped: list[str] | None) -> dict[str, Any]:
    """`cls`'s fields in `data`, each checked against its type; unknown keys go to `dropped`."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the experiment'} is not an object: {reprlib.repr(data)}")
    prefix = f"{where}." if where else ""
    required = [
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [prefix + key for key in required if key not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    types_ = _field_types(cls)
    values = {}
    for key, value in data.items():
        if key not in types_:
            if dropped is not None:
                dropped.append(prefix + key)
        elif not _fits(value, types_[key]):
            raise ValueError(f"{prefix}{key} should be {_type_name(types_[key])}, not {reprlib.repr(value)}")
        else:
            values[key] = value
    return values


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can stand for a field of type `hint` (true and false are not numbers)."""
    return _checker(hint)(value)


@functools.cache
def _checker(hint: Any) -> Callable[[Any], bool]:
    """A compiled check for one type hint: the journal and every attach read thousands of records."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda value: True
    if origin in (typing.Union, types.UnionType):
        options = [_checker(arg) for arg in args]
        return lambda value: any(check(value) for check in options)
    if origin is list:
        item = _checker(args[0])
        return lambda value: isinstance(value, list) and all(item(v) for v in value)
    if origin is dict:
        entry = _checker(args[1])
        return lambda value: isinstance(value, dict) and all(isinstance(k, str) and entry(v) for k, v in value.items())
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # its value, as the journal writes it
        return lambda value: value in hint._value2member_map_
    if dataclasses.is_dataclass(hint):
        return lambda value: isinstance(value, dict)  # its own fields are checked when it is built
    if hint in (int, float):
        accepted = (int, hint)
        return lambda value: isinstance(value, accepted) and not isinstance(value, bool)
    return lambda value: isinstance(value, hint)


def _type_name(hint: Any) -> str:
    """`list[RunResult]`, not `list[arsup.core.experiment.RunResult]`."""
    return hint.__name__ if isinstance(hint, type) else re.sub(r"(?:\w+\.)+", "", str(hint))


def total_usage(experiments: Iterable[Experiment]) -> dict[str, float]:
    """The agent's calls, tokens and dollars over these experiments (each records its own usage)."""
    total = {"calls": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0, "cost_usd": 0.0}
    for experiment in experiments:
        for key, value in experiment.agent_data.get("usage", {}).items():
            if key in total:
                total[key] += value
    return total
