"""What the screen knows about the session, folded from engine events; no Textual here.

The app keeps one `SessionView` and feeds it every event in order; panes
read from it. Keeping this apart from the widgets means the header's figures
(best, delta, counts, progress) are plain functions of events, testable
without a terminal, and a snapshot test can build any screen by posting a
fixed sequence of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    Proposing,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, Status

MAX_AGENT_TEXT = 20_000  # characters of a streaming reply kept for the hypothesis pane


@dataclass
class SessionView:
    """The session as the screen shows it."""

    metric: str
    goal: str
    time_budget: float
    branch: str = ""
    state: str = "starting"
    detail: str = ""
    history: list[Experiment] = field(default_factory=list)
    best: Experiment | None = None
    running: Experiment | None = None
    run_index: int = 0  # which training run of the running experiment (repeats and confirmations add runs)
    run_started_at: float = 0.0
    proposing_id: str = ""
    agent_text: str = ""
    pending: ApprovalRequested | None = None
    ended: SessionEnded | None = None

    def load(self, experiments: list[Experiment], best: Experiment | None) -> None:
        """Start from experiments finished before this screen opened (a resumed tag, or browse mode)."""
        self.history = [e for e in experiments if e.status in Status.FINAL]
        self.best = best

    def apply(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.branch = event.branch
        elif isinstance(event, Proposing):
            self.proposing_id, self.agent_text = event.experiment_id, ""
        elif isinstance(event, AgentText):
            if event.experiment_id == self.proposing_id:
                self.agent_text = (self.agent_text + event.text)[-MAX_AGENT_TEXT:]
        elif isinstance(event, StateChanged):
            self.state, self.detail = event.state, event.detail
        elif isinstance(event, ApprovalRequested):
            self.pending = event
        elif isinstance(event, ExperimentStarted):
            self.running = event.experiment
            self.run_index, self.run_started_at = 1, event.experiment.started_at
        elif isinstance(event, RunStarted):
            self.run_index, self.run_started_at = event.index, event.started_at
        elif isinstance(event, ExperimentFinished):
            self._finished(event)
        elif isinstance(event, SessionEnded):
            self.ended, self.state, self.detail = event, "ended", ""
            self.running = self.pending = None

    def _finished(self, event: ExperimentFinished) -> None:
        done = event.experiment
        self.history.append(done)
        self.best = event.best
        if self.running is not None and self.running.id == done.id:
            self.running = None
        if self.pending is not None and self.pending.experiment.id == done.id:
            self.pending = None

    def approval_closed(self, request: ApprovalRequested) -> None:
        """The question was answered, or withdrawn by the engine (stop, policy change)."""
        if self.pending is request:
            self.pending = None

    # -- figures ------------------------------------------------------------------

    @property
    def baseline(self) -> Experiment | None:
        return next((e for e in self.history if e.is_baseline and e.status == Status.KEEP), None)

    def counts(self) -> dict[str, int]:
        """Finished experiments by status (kept, discarded, crashed, and the rest)."""
        counts = {status: 0 for status in (Status.KEEP, Status.DISCARD, Status.CRASH, Status.INVALID, Status.SKIPPED)}
        for experiment in self.history:
            counts[experiment.status] = counts.get(experiment.status, 0) + 1
        return counts

    def progress(self, now: float) -> float | None:
        """How far the current training run is through its time budget, 0..1; None when nothing trains."""
        if self.running is None or not self.run_started_at or self.time_budget <= 0:
            return None
        return min(1.0, max(0.0, (now - self.run_started_at) / self.time_budget))

    def kept_by_commit(self) -> dict[str, Experiment]:
        return {e.commit: e for e in self.history if e.status == Status.KEEP}

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

    def state_label(self, now: float, pausing: bool) -> str:
        """The state as the header says it: proposing, awaiting approval (run), training 42%, paused."""
        if self.ended is not None:
            return "ended"
        label = self.state
        if self.state == "training":
            done = self.progress(now)
            label = "training" if done is None else f"training {round(done * 100)}%"
            if self.run_index > 1:
                label += f" (run {self.run_index})"
        elif self.state == "awaiting approval" and self.detail:
            label = f"awaiting approval ({self.detail})"
        if pausing and self.state != "paused":
            label += ", pausing after this step"
        return label
