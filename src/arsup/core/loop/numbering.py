"""Experiment ids, handed out in order from any of the loop's threads (the proposer, the loop, the slots).

`_lock` guards `_next`; ids are never reused, even for a proposal that is
refused. A proposal's id is reserved when the agent starts on it (the screen
streams its making under that id, and proposals made at once each have
their own), so with several proposer threads the journal may record a later
id first, and an id reserved for a proposal that never came (the loop
stopped, the agent ran dry) is never recorded.
"""

from __future__ import annotations

import threading
import time

from arsup.core.experiment import Experiment

MAX_HYPOTHESIS_CHARS = 1000  # a runaway reply must not fill the journal, the prompt and the screen


class Numbering:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._lock = threading.Lock()
        self._next = 0

    def start_at(self, number: int) -> None:
        with self._lock:
            self._next = number

    def peek(self) -> str:
        """The id the next experiment will get (what the screen shows while the agent thinks)."""
        with self._lock:
            return f"{self._next:04d}"

    def reserve(self) -> str:
        """The next id, taken now for an experiment that will exist later (a proposal the agent is making)."""
        with self._lock:
            experiment_id = f"{self._next:04d}"
            self._next += 1
        return experiment_id

    def new(self, hypothesis: str, agent: str, parent: str, experiment_id: str = "") -> Experiment:
        """A new record on `parent` (with the id reserved for it, else the next), its hypothesis on one line
        and capped."""
        experiment_id = experiment_id or self.reserve()
        hypothesis = " ".join(hypothesis.split())
        if len(hypothesis) > MAX_HYPOTHESIS_CHARS:
            hypothesis = hypothesis[: MAX_HYPOTHESIS_CHARS - 1] + "…"
        return Experiment(
            id=experiment_id, tag=self.tag, parent=parent, commit=parent, hypothesis=hypothesis, agent=agent,
            proposed_at=time.time(),
        )
