"""Proposals made ahead, on the proposer thread: ask the agent, plan the edit against the best, get it approved.

Nothing here writes a file: a Prepared holds what would be written, and the
scheduler writes it when its turn comes. Invariants:

* The agent is called from the proposer threads only (`_prepare_next`, and
  `observe` through `_deliver`), as many at once as it has lanes
  (`lanes_of`, at most one per slot): an agent with one lane never sees two
  calls at once. Each proposer thread has its own git (`_own_vcs`); a plan
  and the hold of its signature are one step (`_planning`), so of two same
  changes proposed at once the second is refused as a repeat.
* A proposal is journaled (QUEUED) as soon as it exists: a kill -9 before its
  turn loses neither its hypothesis nor what it cost.
* `take` runs on the loop or a slot thread; `ahead`, `push` and `observe` on
  any thread. The pipeline has its own lock; `_unobserved` is a deque
  (appends and pops are atomic); `_waiting` is an Event because the loop sets
  it and the proposer reads it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from arsup.config import Config
from arsup.core import acceptance, journal, policy
from arsup.core import changes as changes_
from arsup.core.agents.base import TRANSCRIPT, Agent, AgentContext, Proposal, lanes_of
from arsup.core.agents.edits import EditError
from arsup.core.events import AgentText, LoopState, ProposalQueued, Proposing
from arsup.core.experiment import Experiment, Status, Verdict
from arsup.core.loop.bus import EventBus
from arsup.core.loop.flags import POLL_S, Flags
from arsup.core.loop.line import KeptLine
from arsup.core.loop.numbering import Numbering
from arsup.core.loop.planning import EditPlanner, Snapshot, signature
from arsup.core.loop.questions import Questions
from arsup.core.pipeline import Pipeline
from arsup.core.vcs import Vcs


class AgentFailed(Exception):
    """The agent cannot make proposals any more; the loop ends with its reason."""


@dataclass
class Prepared:
    """A proposal made ahead: planned (and approved, where the policy asks) against its best, not yet written."""

    experiment: Experiment
    proposal: Proposal
    made_for: Experiment  # the best when it was made: what `changes` were planned against
    base: Snapshot
    changes: dict[str, str] = field(default_factory=dict)
    verdict: Verdict | None = None  # how it ends before a commit: invalid or skipped
    again: bool = False  # a candidate measured once already, on a best that was replaced meanwhile (slots)


class Proposer:
    def __init__(
        self, config: Config, root: Path, agent: Agent, log: journal.Journal, bus: EventBus, flags: Flags,
        questions: Questions, line: KeptLine, planner: EditPlanner, numbering: Numbering,
        policy_now: Callable[[], str], notes: Callable[[], list[str]],
    ) -> None:
        self.config, self.root, self.agent, self.journal, self.bus, self.flags = config, root, agent, log, bus, flags
        self.questions, self.line, self.planner, self.numbering = questions, line, planner, numbering
        self._policy_now, self._notes = policy_now, notes
        self._pipeline: Pipeline[Prepared] | None = None
        self._local = threading.local()  # each proposer thread's own git (GitPython is not thread-safe)
        self._opened: list[Vcs] = []  # every thread's, for close()
        self._opened_lock = threading.Lock()
        self._planning = threading.Lock()  # a plan and its hold, one step across the proposer threads
        self._unobserved: deque[Experiment] = deque()  # finished, not yet shown to the agent (its thread does)
        self.earlier: list[Experiment] = []  # the other tags' finished experiments, as the agent sees them
        self._waiting = threading.Event()  # the loop has nothing to run until the proposer delivers

    # -- the scheduler's side (loop and slot threads) -----------------------------------

    def open(self, depth: int, slots: int = 1) -> None:
        """Make up to `depth` proposals ahead, as many at once as the agent can, the slots can use and
        `[agent] at_once` allows."""
        workers = min(lanes_of(self.agent), slots, self.config.agent.at_once or slots)
        self._pipeline = Pipeline(self._prepare_next, depth, workers=workers)

    def take(self, in_place: bool, cancel: threading.Event) -> Prepared | None:
        """The next prepared proposal; None when the agent has no more ideas or `cancel` is set. `in_place`:
        the loop waits for it in the project folder (nothing else trains), so the screen says it proposes."""
        assert self._pipeline is not None
        if in_place:
            self.bus.state(LoopState.PROPOSING, self.agent.name)
            self._waiting.set()
        try:
            return self._pipeline.take(cancel)
        finally:
            self._waiting.clear()

    def ahead(self) -> None:
        """A run started: the agent may prepare the next experiments while it trains."""
        if self._pipeline is not None:
            self._pipeline.ahead()

    def push(self, prepared: Prepared) -> None:
        """A candidate to run first (one carried onto a best that moved on)."""
        assert self._pipeline is not None
        self._pipeline.push(prepared)

    def observe(self, experiment: Experiment) -> None:
        """A finished experiment, for the agent to learn from on its own thread before it proposes again."""
        self._unobserved.append(experiment.for_agent())

    def close(self) -> list[Prepared]:
        """Stop making proposals (the caller set `proposals_cancel`); those never taken, oldest first."""
        unrun = self._pipeline.close() if self._pipeline is not None else []
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for vcs in opened:
            vcs.close()
        return unrun

    def journal_queued(self, experiment: Experiment) -> None:
        """Record a proposal as soon as it exists, before its turn: a kill -9 meanwhile must not lose its
        hypothesis and what it cost (a restart records it as skipped, as a stop's record of the unrun does)."""
        experiment.status = Status.QUEUED
        self.journal.record(experiment)

    def instructions(self) -> str:
        """The research instructions as the next proposal reads them (a person may edit them live)."""
        path = self.root / self.config.project.instructions
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    # -- the proposer thread ------------------------------------------------------------------

    def _prepare_next(self) -> Prepared | None:
        """Ask the agent, plan the edit against the best, get it approved; write nothing."""
        cancel = self.flags.proposals_cancel
        while self.flags.paused.is_set() and not cancel.is_set():  # a pause spends no tokens
            cancel.wait(POLL_S)
        if cancel.is_set():
            return None
        self._deliver()
        best = self.line.best()
        if best is None:
            raise AgentFailed("internal: a proposal was asked for before the branch had a best")
        base = Snapshot(self._own_vcs(), best.commit)
        number = self.numbering.reserve()
        self.bus.emit(Proposing(number))
        asked_at = time.time()
        try:
            proposal = self.agent.propose(self._context(number, best, base))
        except Exception as exc:  # the agent cannot go on; nothing was written yet
            raise AgentFailed(f"the {self.agent.name} agent failed: {exc}") from exc
        if proposal is None:
            return None
        maker = proposal.agent or self.agent.name
        experiment = self.numbering.new(proposal.hypothesis, maker, parent=best.commit, experiment_id=number)
        experiment.propose_s = round(time.time() - asked_at, 3)
        experiment.agent_data = dict(proposal.meta)
        experiment.made_for = best.id
        self._keep_transcript(experiment)
        self.journal_queued(experiment)
        prepared = Prepared(experiment, proposal, best, base)
        try:
            with self._planning:  # of two same changes proposed at once (two lanes), the second is a repeat
                prepared.changes = self.planner.plan(proposal, base)
                self.line.hold(experiment, signature(prepared.changes, base))
        except EditError as exc:
            prepared.verdict = Verdict(Status.INVALID, str(exc))
            return prepared
        if policy.asks(self._policy_now(), policy.EDIT):
            self._approve_edit(prepared)
        if prepared.verdict is None:
            self.line.hold(experiment, signature(prepared.changes, base))  # the person's version, if they edited
            self.bus.emit(ProposalQueued(experiment.copy()))
        return prepared

    def _keep_transcript(self, experiment: Experiment) -> None:
        """A coding agent's whole transcript goes beside the experiment's runs (`agent.jsonl`), not into the
        journal, which every start and attach reads whole; the record keeps where it is."""
        transcript = experiment.agent_data.pop(TRANSCRIPT, None)
        if not transcript:
            return
        path = self.journal.run_dir(experiment.id) / "agent.jsonl"
        path.write_text("".join(json.dumps(event, default=str) + "\n" for event in transcript), encoding="utf-8")
        experiment.agent_data[TRANSCRIPT] = str(path.relative_to(self.root))

    def _own_vcs(self) -> Vcs:
        vcs = getattr(self._local, "vcs", None)
        if vcs is None:
            vcs = self._local.vcs = Vcs(self.root)
            with self._opened_lock:
                self._opened.append(vcs)
        return vcs

    def _context(self, number: str, best: Experiment, base: Snapshot) -> AgentContext:
        project = self.config.project
        files = {path: text for path in self.planner.editable_files(base.vcs) if (text := base.shown(path)) is not None}
        history = self.line.history()
        crashed = history[-1] if history and history[-1].status == Status.CRASH else None
        return AgentContext(
            instructions=self.instructions(),
            files=files,
            history=[e.for_agent() for e in history],
            metric=self.config.metric.name,
            goal=self.config.metric.goal,
            time_budget=project.time_budget,
            best=best.for_agent(),
            noise=self.line.noise(),
            rule=acceptance.Rule.from_config(self.config.acceptance),
            circling=[e.for_agent() for e in changes_.circling(history)],
            in_flight=[queued for _, queued, _ in self.line.pending()],
            earlier=list(self.earlier),
            last_crash_tail=crashed.crash_tail if crashed else "",
            notes=list(self._notes()),
            cancel=self.flags.proposals_cancel,
            check=lambda proposal: self.planner.refusal(proposal, base),
            on_text=lambda text: self.bus.emit(AgentText(number, text)),
            notify=lambda message: self.bus.notice(message, "warning"),
            export=lambda folder: base.vcs.export(best.commit, folder),
        )

    def _approve_edit(self, prepared: Prepared) -> None:
        """Show the person the diff against the best it was made for; take their answer or their version."""
        experiment, changes, base = prepared.experiment, prepared.changes, prepared.base
        experiment.diff = changes_.diff_texts({path: base.text(path) for path in changes}, changes, context=3)
        cancel = self.flags.proposals_cancel
        answer = self.questions.ask(policy.EDIT, experiment, changes, cancel=cancel, announce=self._waiting.is_set())
        if answer is None:  # the loop stopped (then it records the proposal as never run) or it was withdrawn
            if not cancel.is_set():
                prepared.verdict = Verdict(Status.SKIPPED, "the question was withdrawn")
        elif not answer.approved:
            prepared.verdict = Verdict(Status.SKIPPED, "skipped by user")
        elif answer.files is not None and answer.files != changes:
            prepared.proposal = Proposal(experiment.hypothesis, files=answer.files)
            try:
                prepared.changes = self.planner.plan(prepared.proposal, base, own=experiment.id)
            except EditError as exc:
                prepared.verdict = Verdict(Status.INVALID, f"after the person's edit: {exc}")
            experiment.agent_data["edited_by_user"] = True

    def _deliver(self) -> None:
        while self._unobserved:
            experiment = self._unobserved.popleft()
            try:
                self.agent.observe(experiment)
            except Exception as exc:  # the agent's bookkeeping must not lose the experiment
                self.bus.notice(f"agent {self.agent.name} failed to learn from {experiment.id}: {exc!r}", "warning")


