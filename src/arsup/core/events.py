"""What the engine tells its subscribers (the headless printer, the TUI's bridge, tests).

Plain dataclasses, sent from engine threads. Experiments inside are copies, so
a subscriber can keep them without racing the engine.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum

from arsup.core.experiment import Experiment


class LoopState(str, Enum):
    """What the loop is doing; a str, so it reads the same in JSON and in comparisons."""

    STARTING = "starting"
    PROPOSING = "proposing"
    AWAITING_APPROVAL = "awaiting approval"
    TRAINING = "training"
    PAUSED = "paused"
    ENDED = "ended"

    def __str__(self) -> str:  # as its value in f-strings too, on every Python
        return str(self.value)


@dataclass(frozen=True)
class SessionStarted:
    """A loop started (or was attached to): what a view needs before any experiment arrives."""

    tag: str
    branch: str
    head: str
    resumed: int  # experiments already in the journal for this tag
    project: str = ""  # the project folder
    metric: str = "val_bpb"
    goal: str = "minimize"
    time_budget: float = 0.0
    policy: str = "auto"
    agent: str = ""
    model: str = ""  # the llm agent's model
    paused: bool = False
    pid: int = 0  # the loop's process
    started_at: float = 0.0  # when this session of the loop started (a screen may attach hours later)
    holdout_keeps: int = 0  # [holdout] on: the keeps over which a divergence from val is warned (0: off)
    history: list[Experiment] = field(default_factory=list)  # this tag's finished experiments, oldest first


@dataclass(frozen=True)
class Proposing:
    experiment_id: str


@dataclass(frozen=True)
class AgentText:
    """A piece of the agent's reply as it streams (the hypothesis forming on screen)."""

    experiment_id: str
    text: str


@dataclass(frozen=True)
class ProposalQueued:
    """A proposal made while a run trains, waiting for its turn (`made_for` says against which best)."""

    experiment: Experiment


@dataclass(frozen=True)
class ExperimentStarted:
    experiment: Experiment
    slot: str = ""  # which slot trains it (with several: "gpu0", "cpu1"...)


@dataclass(frozen=True)
class RunStarted:
    """One training run of an experiment: the screen, a baseline repeat or a confirmation."""

    experiment_id: str
    seed: int
    index: int  # 1-based
    started_at: float


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
class StateChanged:
    """What the loop is doing now (the detail: the question's kind, the experiment, the agent)."""

    state: LoopState
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", LoopState(self.state))  # from the wire it comes as a str


@dataclass(frozen=True)
class PolicyChanged:
    """When the loop asks a person changed (a key, a command)."""

    policy: str


@dataclass(frozen=True)
class Paused:
    """A pause was asked for: the loop waits after its current step until resumed."""


@dataclass(frozen=True)
class Resumed:
    """The loop goes on."""


@dataclass(frozen=True)
class ApprovalRequested:
    """The policy asks a person; answer by setting the future's result to a `policy.Answer`.

    The engine waits on the future with a timeout and checks its stop flag, so
    quitting never hangs on an unanswered question.
    """

    kind: str  # policy.EDIT, RUN or KEEP
    experiment: Experiment
    future: Future  # type: ignore[type-arg]
    files: dict[str, str] = field(default_factory=dict)  # for an edit: the new texts, editable before approval
    question_id: str = ""  # names the question to `Controls.answer` from another process


@dataclass(frozen=True)
class QuestionClosed:
    """A question is no longer open: answered (by any client) or withdrawn (a stop, a policy change)."""

    question_id: str
    approved: bool | None  # None: withdrawn


@dataclass(frozen=True)
class Notice:
    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class NoteAdded:
    """A person's note to the agent; `read` once a proposal's prompt has had it (the agent reads every note in
    every prompt from then on): until then the screen and `arsup status` show it as waiting."""

    text: str
    read: bool = False


@dataclass(frozen=True)
class StopAfterRunAsked:
    """The loop ends after the experiments under way: said until it does, on every screen and in `arsup status`."""


@dataclass(frozen=True)
class SessionEnded:
    reason: str
    error: bool = False
    state_folder: bool = False  # the error is with arsup's own files or their disk: exit 2, as for a bad start


Event = (
    SessionStarted
    | Proposing
    | AgentText
    | StateChanged
    | PolicyChanged
    | Paused
    | Resumed
    | ApprovalRequested
    | ProposalQueued
    | ExperimentStarted
    | RunStarted
    | RunOutput
    | ExperimentFinished
    | Notice
    | QuestionClosed
    | NoteAdded
    | StopAfterRunAsked
    | SessionEnded
)
