"""The kept line: what this session has finished, what is proposed and not yet measured, and what trains.

Every thread of the loop reads it (the proposer plans against it, slots
judge against it, the façade answers `best()` for the screen) and the
recorder changes it. One reentrant lock, `_lock`, guards all of it:

* `_history`: the tag's finished experiments, oldest first; appended by the
  recorder only, read through copies (`history()`), never handed out live;
* `_pending`: proposed and not finished (queued or training), id -> (the
  experiment as the agent sees it, what its edit sets), so a proposal that
  repeats one is refused before it is measured;
* `_in_flight`: experiments the slots have taken and not finished.

`recording()` holds the lock over a change of several steps: the recorder
holds it while it moves the run branch, writes the record and results.tsv
and appends to the history, so the integrity check, which holds it while it
compares results.tsv with the history, never sees half of it.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

from arsup.core import acceptance
from arsup.core import changes as changes_
from arsup.core.experiment import Experiment, Status, total_usage


class KeptLine:
    def __init__(self, metric: str) -> None:
        self.metric = metric
        self._lock = threading.RLock()
        self._history: list[Experiment] = []
        self._pending: dict[str, tuple[Experiment, changes_.Signature]] = {}
        self._in_flight = 0

    def recording(self) -> AbstractContextManager[bool]:
        """The lock, for a change or a comparison that must see the line whole."""
        return self._lock

    def load(self, history: list[Experiment]) -> None:
        with self._lock:
            self._history = list(history)

    def history(self) -> list[Experiment]:
        with self._lock:
            return list(self._history)

    def best(self) -> Experiment | None:
        """The head of the kept line: what the next candidate is built on and must beat."""
        with self._lock:
            return acceptance.head_of_line(self._history)

    def reference(self, experiment: Experiment) -> Experiment | None:
        """What a result is judged against: the kept experiment it started from (with slots, the line may
        have moved on meanwhile), or for a baseline the best so far."""
        with self._lock:
            if experiment.is_baseline:
                return acceptance.head_of_line(self._history)
            return next(
                (e for e in reversed(self._history) if e.status == Status.KEEP and e.commit == experiment.parent), None
            )

    def noise(self) -> acceptance.Noise | None:
        with self._lock:
            return acceptance.noise(self._history, self.metric)

    def spend(self, since: float = 0.0) -> dict[str, float]:
        """The agent's token and dollar spend over experiments proposed after `since` (all by default)."""
        with self._lock:
            return total_usage(e for e in self._history if e.proposed_at >= since)

    def trained(self) -> int:
        with self._lock:
            return sum(e.status in Status.TRAINED for e in self._history)

    def hold(self, experiment: Experiment, signature: changes_.Signature) -> None:
        """A proposal queued: until it is measured, one that repeats it is refused."""
        with self._lock:
            self._pending[experiment.id] = (experiment.for_agent(), signature)

    def pending(self) -> list[tuple[str, Experiment, changes_.Signature]]:
        with self._lock:
            return [(key, queued, signature) for key, (queued, signature) in self._pending.items()]

    def settle(self, experiment: Experiment) -> None:
        """A finished experiment joins the history (the recorder's, under `recording()`)."""
        with self._lock:
            self._pending.pop(experiment.id, None)
            self._history.append(experiment)

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight
