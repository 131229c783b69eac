"""The one small protocol every proposal maker follows.

The engine gives an agent a context and gets back a proposal (or nothing, when
the agent has no more ideas); after each experiment it tells the agent how it
went. Agents never touch git, files or processes: the engine applies edits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from arsup.core.acceptance import Noise, Rule
from arsup.core.experiment import Experiment

TRANSCRIPT = "transcript"  # Proposal.meta: a coding agent's events; the engine keeps them in agent.jsonl, records where


@dataclass
class Proposal:
    """A hypothesis and the change that tests it.

    Exactly one of ``edits`` (SEARCH/REPLACE blocks, see ``edits.py``) and
    ``files`` (path -> whole new text) carries the change.
    """

    hypothesis: str
    edits: str = ""
    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # agent's own data, kept as Experiment.agent_data
    agent: str = ""  # who made it, where one Agent speaks for several (a roster); "" is the Agent's own name


@dataclass
class AgentContext:
    """Everything an agent may read to make its next proposal."""

    instructions: str  # program.md, verbatim
    files: dict[str, str]  # editable path -> current text on the kept line
    history: list[Experiment]  # every finished experiment of this run, oldest first
    metric: str
    goal: str  # "minimize" or "maximize"
    time_budget: float
    best: Experiment | None = None
    noise: Noise | None = None  # how much runs of the same code differ: what a gain must beat
    rule: Rule | None = None  # how a candidate gets kept
    circling: list[Experiment] = field(default_factory=list)  # the latest experiments, all acting on one place
    # proposed, not finished (queued or training), oldest first
    in_flight: list[Experiment] = field(default_factory=list)
    # the repo's other tags' finished experiments (earlier nights), oldest first: what they tried on the same code
    # need not be tried again
    earlier: list[Experiment] = field(default_factory=list)
    last_crash_tail: str = ""
    notes: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)  # set when the loop stops; agents wait on it
    check: Callable[[Proposal], str] = lambda proposal: ""  # why the engine would refuse it ("" if it would not)
    on_text: Callable[[str], None] = lambda text: None  # the reply as it streams, for the screen
    notify: Callable[[str], None] = lambda message: None  # a notice for the person (retries, overflow)
    # Writes the best commit's project folder into an empty folder (no .git, no .arsup): a scratch copy a coding
    # agent may work in; what it changes there becomes its proposal.
    export: Callable[[Path], None] = lambda folder: None


class Agent(Protocol):
    name: str

    def propose(self, context: AgentContext) -> Proposal | None:
        """Return the next proposal, or None when out of ideas."""

    def observe(self, experiment: Experiment) -> None:
        """Learn from a finished experiment (kept, discarded, crashed or invalid)."""


def lanes_of(agent: Agent) -> int:
    """How many proposals `agent` can make at once, one call per thread. An agent that does not say (a `lanes`
    attribute; a roster of CLI agents does) has the protocol's promise: it never sees two calls at once."""
    return max(1, int(getattr(agent, "lanes", 1)))
