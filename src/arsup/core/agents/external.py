"""The researcher is outside the loop: proposals come from clients of the control socket (`arsup mcp`).

`[agent] kind = "external"` makes a loop whose agent is a person's own
interactive session (Claude Code, Codex) speaking through `arsup mcp`. The
loop asks as for any agent; `propose` waits for a client to hand it one.
Invariants:

* `propose` runs on the proposer thread only and returns within POLL_S of
  the loop's cancel event; `offer` runs on client threads, any number at once.
* An offer is either taken by `propose` within `accept_s` or withdrawn with
  `busy` (the loop is not asking: its queue is full, or it is paused); it is
  never left waiting where no one will see its outcome.
* A taken offer gets the checks every proposal gets (`context.check`); a
  refusal goes back to the client, and `propose` waits for the next offer.
  An accepted one is settled by the loop's own events: its id once numbered
  (queued, or waiting on a person's approval), or the reason it ended
  before running. Nothing else of the loop changes.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.events import ApprovalRequested, Event, ExperimentFinished, ProposalQueued
from arsup.core.experiment import Experiment, Status

KIND = "external"
POLL_S = 0.2  # how often a waiting `propose` looks at the loop's cancel event
ACCEPT_S = 5.0  # how long an offer waits for the loop to ask before it is withdrawn as busy
SETTLE_S = 60.0  # how long a taken offer waits for its id (planning is git reads: seconds at most)
OFFER = "offer"  # Proposal.meta / Experiment.agent_data: the offer's token, how its events are recognised


@dataclass
class Outcome:
    """What became of an offer: an id (accepted), or why not (refused, or busy: the loop is not asking)."""

    id: str = ""
    refused: str = ""
    busy: bool = False
    status: str = ""  # the experiment's status when the outcome was known: queued, or how it ended

    def reply(self) -> dict[str, Any]:
        """As a control's reply carries it (whose own "id" is the request's)."""
        return {"experiment": self.id, "refused": self.refused, "busy": self.busy, "status": self.status}


@dataclass
class _Offer:
    proposal: Proposal
    taken: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome = field(default_factory=Outcome)

    def settle(self, outcome: Outcome) -> None:
        if not self.settled.is_set():
            self.outcome = outcome
            self.settled.set()


class ExternalAgent:
    """The loop's agent when proposals come over the control socket; subscribe it to the engine's events."""

    name = KIND

    def __init__(self, accept_s: float = ACCEPT_S, settle_s: float = SETTLE_S) -> None:
        self.accept_s, self.settle_s = accept_s, settle_s
        self._cond = threading.Condition()
        self._offers: deque[_Offer] = deque()
        self._accepted: dict[str, _Offer] = {}  # token -> offer taken and passed, until its events settle it
        self._notify: Callable[[str], None] | None = None  # the loop's notices, once it has asked for a proposal

    # -- the clients' side (client threads) -------------------------------------------

    def offer(self, hypothesis: str, files: dict[str, str]) -> Outcome:
        """Hand the loop a proposal and wait for what became of it (see the module's invariants)."""
        token = uuid.uuid4().hex
        offer = _Offer(Proposal(hypothesis, files=dict(files), meta={OFFER: token}))
        with self._cond:
            self._offers.append(offer)
            self._cond.notify_all()
        if not offer.taken.wait(self.accept_s):
            with self._cond:
                if not offer.taken.is_set():  # still ours to withdraw: propose never saw it
                    self._offers.remove(offer)
                    return Outcome(busy=True)
        if not offer.settled.wait(self.settle_s):
            with self._cond:
                self._accepted.pop(token, None)
            return Outcome(refused="the loop took the proposal but did not number it in time; see `arsup status`")
        return offer.outcome

    # -- the loop's side ---------------------------------------------------------------

    def tell(self, text: str) -> None:
        """A notice for the person about the session outside (its Stop hook let it stop)."""
        if self._notify is None:
            raise ValueError("the loop has not asked for a proposal yet")
        self._notify(text)

    def propose(self, context: AgentContext) -> Proposal | None:
        """The next offer that passes the checks; None once the loop stops."""
        self._notify = context.notify
        while True:
            offer = self._take(context)
            if offer is None:
                return None
            try:
                refusal = context.check(offer.proposal)
            except Exception as exc:  # the loop ends with it (AgentFailed); the client must hear it too
                offer.settle(Outcome(refused=f"the loop failed while checking it: {exc}"))
                raise
            if refusal:
                offer.settle(Outcome(refused=refusal))
                continue
            with self._cond:
                self._accepted[offer.proposal.meta[OFFER]] = offer
            return offer.proposal

    def observe(self, experiment: Experiment) -> None:
        """Nothing to learn: the client reads the history through its own tools."""

    def __call__(self, event: Event) -> None:
        """The engine subscriber: an accepted offer learns its id from the first event that names it."""
        match event:
            case ProposalQueued() | ApprovalRequested() | ExperimentFinished():
                experiment = event.experiment
            case _:
                return
        token = experiment.agent_data.get(OFFER)
        if not token:
            return
        with self._cond:
            offer = self._accepted.pop(token, None)
        if offer is None:
            return
        invalid = isinstance(event, ExperimentFinished) and experiment.status == Status.INVALID
        refused = experiment.reason if invalid else ""
        offer.settle(Outcome(id=experiment.id, refused=refused, status=str(experiment.status)))

    def _take(self, context: AgentContext) -> _Offer | None:
        with self._cond:
            while not self._offers or context.cancel.is_set():
                if context.cancel.is_set():  # offers left are withdrawn as busy by their own clients
                    return None
                self._cond.wait(POLL_S)
            offer = self._offers.popleft()
            offer.taken.set()
            return offer
