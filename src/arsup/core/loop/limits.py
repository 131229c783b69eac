"""Why a night ends: the budgets, the watchdogs over streaks, and a fatal error a part of the loop reported.

Decisions only: `why_end` and `after` return an Ending (or a Pause, where a
person watches) from counters, the config and the experiment just finished;
the scheduler acts on them. Called by the scheduler on the loop thread and
on slot threads; `_lock` guards the counters and `fatal`. `fail` is called
by the trainer and the integrity check (any slot thread).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from arsup.config import BudgetConfig, WatchdogConfig
from arsup.core import changes as changes_
from arsup.core.experiment import Cause, Experiment, Status
from arsup.core.metrics import names_the_wrong_metric
from arsup.core.loop.flags import Flags

MAX_INVALID_IN_A_ROW = 5
STOPPED_AFTER_RUN = "stopped after the run, as asked"
NO_MORE_IDEAS = "the agent has no more ideas"


@dataclass(frozen=True)
class Ending:
    """Why the loop ends, and whether that is an error (exit 1) or an end the person asked for."""

    reason: str
    error: bool = False


@dataclass(frozen=True)
class Pause:
    """A watchdog fired where a person watches: pause, say this, and let them decide."""

    text: str


class Limits:
    def __init__(self, budget: BudgetConfig, watchdog: WatchdogConfig, runs_folder: str) -> None:
        self.budget, self.watchdog = budget, watchdog
        self.runs_folder = runs_folder  # where the logs are, for the message that ends a crash streak
        self.interactive = False  # a person watches (the screen): pause and ask where headless would stop
        self._lock = threading.Lock()
        self._fatal = ""
        self._invalid_in_a_row = 0
        self._crashes_in_a_row = 0
        self._circling_seen = ""  # the last experiment of a streak already paused for
        self.trained = 0  # experiments trained this session
        self.started_at = 0.0

    def start_session(self, now: float) -> None:
        with self._lock:
            self.started_at, self.trained = now, 0

    def fail(self, reason: str) -> None:
        """The loop must end after the current experiment (the first reason is kept)."""
        with self._lock:
            self._fatal = self._fatal or reason

    def budget_spent(self, done: int, spent_usd: float, now: float | None = None) -> str:
        """Why no experiment beyond `done` may start, '' while the budget lasts (`spent_usd`: since the start)."""
        budget, now = self.budget, time.time() if now is None else now
        if budget.max_experiments and done >= budget.max_experiments:
            return f"reached the budget of {_count(budget.max_experiments, 'experiment')}"
        if budget.max_hours and now - self.started_at >= budget.max_hours * 3600:
            return f"reached the budget of {budget.max_hours:g} hour{'' if budget.max_hours == 1 else 's'}"
        if budget.max_cost_usd and spent_usd >= budget.max_cost_usd:
            return f"reached the budget of {budget.max_cost_usd:g} USD"
        return ""

    def why_end(self, flags: Flags, in_flight: int, spent_usd: float) -> Ending | None:
        """Why no new experiment may start now, if one of the loop's limits says so."""
        if flags.stopped.is_set():
            return Ending(flags.stop_reason)
        if flags.after_run.is_set():
            return Ending(STOPPED_AFTER_RUN)
        spent = self.budget_spent(self.trained + in_flight, spent_usd)
        return Ending(spent) if spent else None

    def left_to_those_under_way(self, flags: Flags, in_flight: int, spent_usd: float) -> bool:
        """Whether the end `why_end` says is only that the experiments under way (slots still waiting for their
        proposal included) use up the budget: then they finish, and only no new one starts."""
        if not in_flight or flags.stopped.is_set() or flags.after_run.is_set():
            return False
        return not self.budget_spent(self.trained, spent_usd)

    def more_after_this(self, flags: Flags, in_flight: int, spent_usd: float) -> bool:
        """Whether another experiment may start after those now under way (so one is prepared meanwhile);
        `spent_usd` counts the one starting."""
        return not flags.after_run.is_set() and not self.budget_spent(self.trained + max(1, in_flight), spent_usd)

    def after(self, experiment: Experiment, history: list[Experiment], stopped: bool) -> Ending | Pause | None:
        """After each experiment: an end the loop must take (a fatal error, a failed baseline, a streak), a
        pause where a person watches, or None. `history` includes `experiment`."""
        with self._lock:
            if self._fatal:
                return Ending(self._fatal, error=True)
            if experiment.status == Status.CRASH and experiment.is_baseline and not stopped:
                return Ending(_failed_baseline(experiment), error=True)
            if experiment.status == Status.INVALID:
                self._invalid_in_a_row += 1
                if self._invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
                    return Ending(f"{MAX_INVALID_IN_A_ROW} invalid edits in a row; check the agent", error=True)
                return None
            self._invalid_in_a_row = 0
            if experiment.status in Status.TRAINED:
                self.trained += 1
            crashed = experiment.status == Status.CRASH and not (experiment.runs and experiment.runs[-1].killed)
            self._crashes_in_a_row = self._crashes_in_a_row + 1 if crashed else 0
            limit = self.watchdog.crashes_in_a_row
            if limit and self._crashes_in_a_row >= limit and not stopped:
                self._crashes_in_a_row = 0
                said = f"{limit} crashes in a row (the last: {experiment.reason})"
                if not self.interactive:
                    return Ending(f"{said}; check the training script and the logs in {self.runs_folder}", error=True)
                return Pause(f"{said}: paused; look at the log, then resume or leave a note")
            return None if stopped else self._going_in_circles(history)

    def _going_in_circles(self, history: list[Experiment]) -> Ending | Pause | None:
        """`[watchdog] same_idea`: the agent's last experiments all act on one place; stop, or pause once per
        streak (after a resume, a new streak counts from there)."""
        limit = self.watchdog.same_idea
        trail = [e for e in changes_.circling(history) if e.id > self._circling_seen]
        if not limit or len(trail) < limit:
            return None
        self._circling_seen = trail[-1].id
        where = changes_.describe_place(changes_.place(trail[-1].diff))
        said = f"{len(trail)} experiments in a row changed the same place ({where}): {', '.join(e.id for e in trail)}"
        if not self.interactive:
            return Ending(f"{said}; the agent is going in circles: leave a note (arsup note) and start again", True)
        return Pause(f"{said}: paused; the agent is going in circles: leave a note, then resume")


def _failed_baseline(experiment: Experiment) -> str:
    """Why a crashed baseline (or a person's commit) ends the night: nothing can be judged against it."""
    log = experiment.runs[-1].log_path if experiment.runs else ""
    what = "the baseline" if not experiment.by_person else f"the person's commit {experiment.commit[:7]}"
    if experiment.runs and experiment.runs[-1].cause == Cause.NODE_LOST:  # lost twice: the cluster failed
        said = f"{what}'s run was lost twice ({experiment.reason})"
        return f"{said}; check the cluster's nodes (ray status) and restart arsup. Log: {log}"
    if experiment.runs and experiment.runs[-1].killed:  # a person's kill (a stop returns before): not a crash
        return (f"{what} ({experiment.id}) was killed by you, so nothing can be judged against it and the night "
                f"ends here; start arsup again to measure it anew. Log: {log}")
    if names_the_wrong_metric(experiment.reason):  # the config names another line than the training prints
        return (f"{what} measured nothing: {experiment.reason}. Set it in arsup.toml (or make the training print "
                f"that line), then start again. Log: {log}")
    return f"{what} crashed ({experiment.reason}); fix the training script. Log: {log}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
