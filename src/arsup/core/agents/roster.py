"""Several researchers on one night, as one `Agent` for the loop: `[agent] kind = ["claude-code", "codex"]`.

The proposals alternate between them, so a night compares them on the same
problem, the same noise and the same budget (the report's "Agents" table).
Invariants:

* Proposal n goes to agent n mod k, those out of ideas passed over: each
  gets the same share of turns whatever its speed, so the comparison
  (keeps, gain, dollars per keep) is one of equal chances.
* An agent gets no more calls at once than its lanes (`lanes_of`: a CLI
  agent one per slot, each in a workspace of its own; any other agent one):
  a call for a busy agent waits for it, so the promise each agent makes
  the loop holds inside the roster too.
* Every agent sees every finished experiment (`observe`), in order, before
  its next proposal and on the thread that makes it.
* `propose` returns None only when every agent is out of ideas (or the loop
  stopped); each proposal carries the name of the agent that made it.
"""

from __future__ import annotations

import threading
from typing import Sequence

from arsup.core.agents.base import Agent, AgentContext, Proposal, lanes_of
from arsup.core.experiment import Experiment

WAIT_S = 0.2  # how often a call waiting for a busy agent looks at the loop's cancel event
SEPARATOR = "+"  # between the agents' names in a roster's name (what a session says its agent is)


class Roster:
    def __init__(self, agents: Sequence[Agent]) -> None:
        self.agents = list(agents)
        self.name = SEPARATOR.join(agent.name for agent in self.agents)
        self.lanes = sum(lanes_of(agent) for agent in self.agents)
        self._cond = threading.Condition()
        self._busy = [0] * len(self.agents)  # calls under way, per agent
        self._turn = 0
        self._dry: set[int] = set()
        self._finished: list[Experiment] = []
        self._seen = [0] * len(self.agents)  # how many of `_finished` each agent has been shown

    def propose(self, context: AgentContext) -> Proposal | None:
        while True:
            index = self._take_turn(context)
            if index is None:
                return None
            agent = self.agents[index]
            try:
                self._catch_up(index, context)
                proposal = agent.propose(context)
            finally:
                with self._cond:
                    self._busy[index] -= 1
                    self._cond.notify_all()
            if proposal is not None:
                proposal.agent = proposal.agent or agent.name
                return proposal
            if context.cancel.is_set():
                return None
            with self._cond:
                self._dry.add(index)

    def observe(self, experiment: Experiment) -> None:
        """Kept for each agent to learn from before its next proposal (one may be busy proposing now)."""
        with self._cond:
            self._finished.append(experiment)

    def _take_turn(self, context: AgentContext) -> int | None:
        """The next agent in turn with ideas left, counted busy once it has a free lane; None when none has
        ideas left or the loop stopped while waiting."""
        with self._cond:
            index = None
            for _ in self.agents:
                candidate = self._turn % len(self.agents)
                self._turn += 1
                if candidate not in self._dry:
                    index = candidate
                    break
            if index is None:
                return None
            while self._busy[index] >= lanes_of(self.agents[index]):
                if context.cancel.is_set():
                    return None
                self._cond.wait(WAIT_S)
            self._busy[index] += 1
            return index

    def _catch_up(self, index: int, context: AgentContext) -> None:
        with self._cond:
            news = self._finished[self._seen[index]:]
            self._seen[index] = len(self._finished)
        agent = self.agents[index]
        for experiment in news:
            try:
                agent.observe(experiment)
            except Exception as exc:  # its bookkeeping must not lose the experiment or the night
                context.notify(f"agent {agent.name} failed to learn from {experiment.id}: {exc!r}")
