"""Runs the machine's load cut short: a run that hit the time budget with fewer steps than the code's others.

The sample projects train on a fixed number of steps with the time budget as
a wall-clock cap only, so their numbers do not depend on load as long as no
run hits the cap; under CPU contention one did (a tinylm baseline run stopped
at step 181 of 341), its value was far from its seeds' others and the noise
floor grew about 40 times. Such a run is flagged (`RunResult.capped`, the
fraction of the steps it ran) and left out of the noise estimate; the note
says so wherever the experiment is shown. Two ways to tell, from the log:

* the training says so: a line `... after S of T steps` (the sample
  projects' "time cap of 60 s reached after 181 of 341 steps");
* it ran to the budget (its wall time reached `time_budget`) and printed
  `num_steps: S` with S under CAP_SHARE of the most steps among the runs of
  the same commit (autoresearch's train.py always trains to its budget, so
  its steps are what vary with load).
"""

from __future__ import annotations

import re

from arsup.core.experiment import Experiment, RunResult

CAP_LINE = re.compile(r"\bafter (\d+) of (\d+) steps\b")
NUM_STEPS = re.compile(r"^\s*num_steps\s*[:=]\s*(\d+)\s*$", re.MULTILINE)
CAP_SHARE = 0.9  # fewer steps than this share of the code's most, at the budget: the load cut it short


def steps(text: str) -> tuple[int, float]:
    """From a run's log: (the steps it ran, 0 when it does not say; the fraction of its planned steps when
    it says it stopped at the time cap short of them, else 0)."""
    capped = CAP_LINE.findall(text)
    if capped:
        done, planned = (int(n) for n in capped[-1])
        return done, done / planned if 0 < planned and done < planned else 0.0
    counted = NUM_STEPS.findall(text)
    return (int(counted[-1]), 0.0) if counted else (0, 0.0)


def mark_capped(runs: list[RunResult], time_budget: float) -> None:
    """Flag, among one commit's runs, each that ran to the time budget with under CAP_SHARE of the most steps
    of its runs (a flag the training's own cap line set stays)."""
    most = max((run.steps for run in runs if not run.crash_reason), default=0)
    for run in runs:
        at_budget = time_budget > 0 and run.wall_s >= time_budget
        if most and at_budget and 0 < run.steps < CAP_SHARE * most and not run.capped:
            run.capped = run.steps / most


def shortest(experiment: Experiment) -> float:
    """The share of the steps its most cut-short run ran; 0 when the budget cut none short."""
    return min((run.capped for run in experiment.runs if run.capped), default=0.0)


def note(experiment: Experiment) -> str:
    """`time-capped at 53% of the steps: compare with care`, for its most cut-short run; "" when none was."""
    if not (share := shortest(experiment)):
        return ""
    capped = sum(bool(run.capped) for run in experiment.runs)
    runs = f" ({capped} of {len(experiment.runs)} runs)" if len(experiment.runs) > 1 else ""
    return f"time-capped at {share:.0%} of the steps{runs}: compare with care"
