"""What the engine tells its subscribers (the headless printer, the TUI's bridge, tests).

Plain dataclasses, sent from engine threads. Experiments inside are copies, so
a subscriber can keep them without racing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arsup.core.experiment import Experiment


@dataclass(frozen=True)
class SessionStarted:
    tag: str
    branch: str
    head: str
    resumed: int  # experiments already in the journal for this tag


@dataclass(frozen=True)
class Proposing:
    experiment_id: str


@dataclass(frozen=True)
class AgentText:
    """A piece of the agent's reply as it streams (the hypothesis forming on screen)."""

    experiment_id: str
    text: str


@dataclass(frozen=True)
class ExperimentStarted:
    experiment: Experiment


@dataclass(frozen=True)
class RunOutput:
    experiment_id: str
    lines: list[str] = field(default_factory=list)
    partial: str = ""  # the current `\r` progress line


@dataclass(frozen=True)
class ExperimentFinished:
    experiment: Experiment
    best: Experiment | None


@dataclass(frozen=True)
class Notice:
    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class SessionEnded:
    reason: str
    error: bool = False


Event = SessionStarted | Proposing | AgentText | ExperimentStarted | RunOutput | ExperimentFinished | Notice | SessionEnded
