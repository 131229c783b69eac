"""What a front end knows about the session, folded from events; no Textual here.

Every front end keeps one `SessionView` and feeds it every event in order:
the screen's panes read from it, and so do the one-shot commands (`arsup
status`) and the headless printer's closing lines. It is all a front end
knows of the loop: the loop may run in this process (tests) or in another
one (attached over the control socket), and browse mode feeds it the
journal as one `SessionStarted`. The figures (best, delta, counts, progress,
spend) are plain functions of events, testable without a terminal, and a
snapshot test can build any screen by posting a fixed sequence of events.

Invariants: `history` holds finished experiments only, oldest first; the
first `SessionEnded` is the one kept (a client that loses the connection
reports one more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arsup.core import acceptance
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    LoopState,
    NoteAdded,
    Paused,
    PolicyChanged,
    ProposalQueued,
    Proposing,
    QuestionClosed,
    Resumed,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
    StopAfterRunAsked,
)
from arsup.core.experiment import Experiment, Status, total_usage

HOME_SLOT = "main"  # the slot that trains in the project folder (see core/slots.py)
MAX_AGENT_TEXT = 20_000  # characters of a streaming reply kept for the hypothesis pane


@dataclass
class SessionView:
    """The session as the screen shows it."""

    metric: str = "val_bpb"
    goal: str = "minimize"
    time_budget: float = 0.0
    holdout_keeps: int = 0  # [holdout] is on: keeps show their holdout score beside the metric
    branch: str = ""
    project: str = ""  # the project folder
    policy: str = ""
    agent: str = ""
    model: str = ""
    paused: bool = False  # a pause was asked for (the loop may still finish its step)
    stopping_after_run: bool = False  # asked to end after the experiments under way
    notes: list[str] = field(default_factory=list)  # the night's notes to the agent
    notes_read: int = 0  # how many of them a prompt has had: the rest wait for the next proposal
    started_at: float = 0.0  # when the loop's session started (0: unknown, e.g. browsing)
    _kept: tuple[tuple[int, int], dict[str, Experiment]] | None = field(default=None, repr=False, compare=False)
    pid: int = 0  # the loop's process
    state: LoopState = LoopState.STARTING
    detail: str = ""
    history: list[Experiment] = field(default_factory=list)
    best: Experiment | None = None
    running: Experiment | None = None  # the experiment the live panes follow: the last one started
    slots: dict[str, Experiment] = field(default_factory=dict)  # what each slot trains now
    run_index: int = 0  # which training run of the running experiment (repeats and confirmations add runs)
    run_started_at: float = 0.0
    proposing_id: str = ""
    agent_text: str = ""
    queued: list[Experiment] = field(default_factory=list)  # proposals made while a run trained, next first
    questions: list[ApprovalRequested] = field(default_factory=list)  # open, oldest first (see `pending`)
    ended: SessionEnded | None = None

    def apply(self, event: Event) -> None:
        match event:
            case SessionStarted():
                self._started(event)
            case Proposing():
                self.proposing_id, self.agent_text = event.experiment_id, ""
                self.notes_read = len(self.notes)
            case NoteAdded():
                self.notes.append(event.text)
                self.notes_read = len(self.notes) if event.read else self.notes_read
            case StopAfterRunAsked():
                self.stopping_after_run = True
            case AgentText() if event.experiment_id == self.proposing_id:
                self.agent_text = (self.agent_text + event.text)[-MAX_AGENT_TEXT:]
            case StateChanged():
                self.state, self.detail = event.state, event.detail
            case PolicyChanged():
                self.policy = event.policy
            case Paused():
                self.paused = True
            case Resumed():
                self.paused = False
            case ApprovalRequested():
                self.questions.append(event)
            case QuestionClosed():
                self.questions = [q for q in self.questions if q.question_id != event.question_id]
            case ProposalQueued():
                self.queued.append(event.experiment)
            case ExperimentStarted():
                self.queued = [e for e in self.queued if e.id != event.experiment.id]
                self.slots[event.slot or HOME_SLOT] = event.experiment
                self.running = event.experiment
                self.run_index, self.run_started_at = 1, event.experiment.started_at
            case RunStarted():
                self.run_index, self.run_started_at = event.index, event.started_at
            case ExperimentFinished():
                self._finished(event)
            case SessionEnded() if self.ended is None:
                self.ended, self.state, self.detail = event, LoopState.ENDED, ""
                self.running, self.questions, self.slots = None, [], {}

    def _started(self, event: SessionStarted) -> None:
        self.metric, self.goal, self.time_budget = event.metric, event.goal, event.time_budget
        self.branch, self.project, self.policy = event.branch, event.project, event.policy
        self.agent, self.model, self.paused, self.pid = event.agent, event.model, event.paused, event.pid
        self.started_at, self.holdout_keeps = event.started_at, event.holdout_keeps
        self.notes, self.notes_read, self.stopping_after_run = [], 0, False  # said again after the start
        self.history = [e for e in event.history if e.status in Status.FINAL]
        self.best = acceptance.head_of_line(self.history)

    def _finished(self, event: ExperimentFinished) -> None:
        done = event.experiment
        self.history.append(done)
        self.best = event.best
        self.slots = {name: e for name, e in self.slots.items() if e.id != done.id}
        if self.running is not None and self.running.id == done.id:  # follow another slot's, if one trains
            self.running = max(self.slots.values(), key=lambda e: e.started_at, default=None)
            self.run_started_at = self.running.started_at if self.running is not None else 0.0
        self.questions = [q for q in self.questions if q.experiment.id != done.id]
        self.queued = [e for e in self.queued if e.id != done.id]

    @property
    def proposing_next(self) -> bool:
        """The agent makes the next proposal while a run trains (and has not delivered it yet)."""
        return self.running is not None and self.proposing_id > self.running.id and not self.queued

    @property
    def waiting_notes(self) -> list[str]:
        """The notes no prompt has had yet: the agent reads them from its next proposal on."""
        return self.notes[self.notes_read:]

    @property
    def pending(self) -> ApprovalRequested | None:
        """The question to answer now: the oldest open one (a queued proposal's may wait behind a run's)."""
        return self.questions[0] if self.questions else None

    def approval_closed(self, request: ApprovalRequested) -> None:
        """The question was answered here, or withdrawn by the loop (stop, policy change)."""
        self.questions = [q for q in self.questions if q is not request]

    # -- figures ------------------------------------------------------------------

    @property
    def project_name(self) -> str:
        return Path(self.project).name

    @property
    def baseline(self) -> Experiment | None:
        return next((e for e in self.history if e.is_baseline and e.status == Status.KEEP), None)

    def counts(self) -> dict[str, int]:
        """Finished experiments by status (kept, discarded, crashed, and the rest). `keep` counts the kept
        changes, the baseline not counted: as the report and the summary count (a screen said 4, the report 3)."""
        counts = {status: 0 for status in (Status.KEEP, Status.DISCARD, Status.CRASH, Status.INVALID, Status.SKIPPED)}
        for experiment in self.history:
            if not (experiment.is_baseline and experiment.status == Status.KEEP):
                counts[experiment.status] = counts.get(experiment.status, 0) + 1
        return counts

    def spend(self) -> dict[str, float]:
        """The agent's calls, tokens and dollars over the history."""
        return total_usage(self.history)

    def progress_of(self, experiment: Experiment, now: float) -> float:
        """How far an experiment in flight is through its current run's budget, 0..1 (its first run for
        another slot's: the view follows one experiment's runs)."""
        started = self.run_started_at if experiment is self.running else experiment.started_at
        return min(1.0, max(0.0, (now - started) / self.time_budget)) if self.time_budget > 0 else 0.0

    def progress(self, now: float) -> float | None:
        """How far the current training run is through its time budget, 0..1; None when nothing trains."""
        if self.running is None or not self.run_started_at or self.time_budget <= 0:
            return None
        return min(1.0, max(0.0, (now - self.run_started_at) / self.time_budget))

    @property
    def training(self) -> list[Experiment]:
        """Every experiment in flight, one per busy slot, oldest first."""
        return sorted(self.slots.values(), key=lambda e: e.started_at)

    def duty_cycles(self, now: float) -> dict[str, float]:
        """Each slot's busy share of this session's wall time (training / wall); empty before it is known.

        Counts the runs of experiments started in this session and those under
        way; what pipelining and slots exist to push towards 1. With several
        slots, the project folder's own (the baseline's) is left out."""
        wall = now - self.started_at
        if not self.started_at or wall <= 0:
            return {}
        busy: dict[str, float] = {}
        for e in self.history:
            if e.started_at >= self.started_at and e.runs:
                name = e.slot or HOME_SLOT
                busy[name] = busy.get(name, 0.0) + sum(run.wall_s for run in e.runs)
        for name, e in self.slots.items():
            busy[name] = busy.get(name, 0.0) + max(0.0, now - e.started_at)
        if len(busy) > 1:
            busy.pop(HOME_SLOT, None)
        return {name: min(1.0, seconds / wall) for name, seconds in sorted(busy.items())}

    def kept_by_commit(self) -> dict[str, Experiment]:
        """Kept experiments by commit; built once per history change (every row of a long night asks)."""
        key = (id(self.history), len(self.history))
        if self._kept is None or self._kept[0] != key:
            self._kept = (key, {e.commit: e for e in self.history if e.status == Status.KEEP})
        return self._kept[1]

    def parent_metric(self, experiment: Experiment) -> float | None:
        """The metric of the kept experiment this one started from: what its delta is measured against."""
        parent = self.kept_by_commit().get(experiment.parent)
        if parent is None or parent is experiment or parent.commit == experiment.commit:
            return None
        return parent.metric

    def notebook(self) -> str:
        """The lab notebook of the latest LLM experiment: the agent's reasoning so far."""
        for experiment in reversed(self.history):
            note = experiment.agent_data.get("notebook")
            if isinstance(note, str) and note.strip():
                return note
        return ""

    def state_label(self, now: float) -> str:
        """The state as the header says it: proposing, awaiting approval (run), training 42%, paused."""
        if self.ended is not None:
            return "ended"
        label = str(self.state)
        if self.state == LoopState.TRAINING:
            done = self.progress(now)
            label = "training" if done is None else f"training {round(done * 100)}%"
            if self.run_index > 1:
                label += f" (run {self.run_index})"
        elif self.state == LoopState.AWAITING_APPROVAL and self.detail:
            label = f"awaiting approval ({self.detail})"
        if self.paused and self.state != LoopState.PAUSED:
            label += ", pausing after this step"
        if self.stopping_after_run:
            label += ", stopping after this run"
        return label
