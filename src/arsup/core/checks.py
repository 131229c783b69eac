"""The morning-after checks: `verify` re-measures a commit, `ablate` credits each kept change.

Both change the work tree in place the way the loop does (only the editable
files, restored afterwards, under the repo lock), measure through the same
`measure` module with the supervisor's seeds, and write what they found to the
journal beside the night's experiments.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from arsup.config import Config
from arsup.core import acceptance, journal, measure, sandbox
from arsup.core.experiment import Experiment
from arsup.core.vcs import GitError, branch_name
from arsup.core.workspace import HeldRepo

Progress = Callable[[str], None]


@dataclass
class Measured:
    """Values of the metric by seed, and the crashes, for one state of the code."""

    values: dict[int, float] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else None


@dataclass
class Comparison:
    """A state of the code against a reference, paired by seed."""

    seeds: list[int]
    gain: float | None  # mean gain of the subject over the reference, positive = better
    p_value: float | None  # one-sided paired test that the gain is above zero
    gain_sigma: float | None


@dataclass
class VerifyReport:
    commit: str
    experiment: Experiment | None  # the journal's record of that commit, if any
    measured: Measured
    baseline: Experiment
    versus_baseline: Comparison
    noise: acceptance.Noise | None


@dataclass
class Ablation:
    experiment: Experiment  # the kept change taken out
    measured: Measured | None  # None when it could not be reverted alone
    contribution: Comparison | None  # how much better the best is with the change than without
    note: str = ""


def compare(subject: dict[int, float], reference: dict[int, float], goal: str, noise: acceptance.Noise | None) -> Comparison:
    seeds = sorted(set(subject) & set(reference))
    gains = [acceptance.gain(subject[s], reference[s], goal) for s in seeds]
    if not gains:
        return Comparison(seeds, None, None, None)
    mean_gain = statistics.fmean(gains)
    sigma = noise.sigma if noise else 0.0
    p = acceptance.one_sided_p(gains) if len(gains) > 1 else None
    return Comparison(seeds, mean_gain, p, mean_gain / sigma if sigma else None)


class _Bench:
    """The repo held for measuring: lock, git, the run's history, a place for logs."""

    def __init__(self, config: Config, root: Path, tag: str, kind: str, python: str) -> None:
        self.config, self.root, self.tag, self.python = config, root.resolve(), tag, python
        self.journal = journal.Journal(self.root)
        self.history = self.journal.experiments(tag)
        if not self.history:
            raise GitError(f"no experiments for tag {tag!r} in {self.root}")
        self.repo = HeldRepo(self.root)
        self.vcs = self.repo.vcs
        self.editable = config.project.editable
        dirty = self.repo.uncommitted(config.project)
        if dirty:
            self.repo.close()
            raise GitError(f"uncommitted changes in {', '.join(dirty)}; commit or stash them first")
        self.log_dir = self.journal.dir / kind / time.strftime("%Y%m%d-%H%M%S")
        self.unsandboxed = sandbox.warning(config.sandbox)  # said once, before the first run

    def close(self) -> None:
        self.repo.close()

    def baseline(self) -> Experiment:
        for experiment in self.history:
            if experiment.is_baseline and experiment.status == "keep":
                return experiment
        raise GitError(f"tag {self.tag!r} has no baseline that ran; nothing to compare with")

    def run_seeds(self, label: str, seeds: int, progress: Progress) -> Measured:
        measured = Measured()
        if self.unsandboxed:
            progress(self.unsandboxed)
            self.unsandboxed = ""
        for index in range(seeds):
            seed = self.config.project.seed + index
            progress(f"{label}: run {index + 1} of {seeds} (seed {seed})")
            log = self.log_dir / f"{label}.{index + 1}.log"
            record = measure.measure(self.config, self.root, self.python, log, seed, {"ARSUP_TAG": self.tag})
            if record.crash_reason:
                measured.crashes.append(f"seed {seed}: {record.crash_reason} (log {log})")
            else:
                measured.values[seed] = record.metrics[self.config.metric.name]
        return measured


def verify(
    config: Config, root: Path, tag: str, commit: str | None, seeds: int,
    progress: Progress = lambda line: None, python: str = sys.executable,
) -> VerifyReport:
    """Re-run a commit (default: the best) `seeds` times and set it beside the baseline."""
    bench = _Bench(config, root, tag, "verify", python)
    try:
        best = acceptance.head_of_line(bench.history)
        target = bench.vcs.resolve(commit) if commit else (best.commit if best else bench.baseline().commit)
        head = bench.vcs.head()
        files = bench.vcs.files_differing(head, target, bench.editable)
        bench.vcs.restore(files, target)
        try:
            measured = bench.run_seeds(target[:7], seeds, progress)
        finally:
            bench.vcs.restore(files, head)
        baseline = bench.baseline()
        noise = acceptance.noise(bench.history, config.metric.name)
        versus = compare(measured.values, acceptance.values_by_seed(baseline, config.metric.name), config.metric.goal, noise)
        experiment = next((e for e in bench.history if e.commit == target), None)
        report = VerifyReport(target, experiment, measured, baseline, versus, noise)
        bench.journal.append(
            "verify", tag=tag, commit=target, values=measured.values, crashes=measured.crashes,
            mean=measured.mean, std=measured.std, gain=versus.gain, p_value=versus.p_value,
        )
        return report
    finally:
        bench.close()


def ablate(
    config: Config, root: Path, tag: str, seeds: int,
    progress: Progress = lambda line: None, python: str = sys.executable,
) -> list[Ablation]:
    """Take each kept change out of the final best, alone, and measure what it was worth."""
    bench = _Bench(config, root, tag, "ablate", python)
    try:
        best = acceptance.head_of_line(bench.history)
        if best is None or best.is_baseline:
            raise GitError(f"tag {tag!r} kept no change; there is nothing to ablate")
        bench.vcs.start_branch(tag)
        if bench.vcs.head() != best.commit:
            raise GitError(f"{branch_name(tag)} is not at the best commit {best.commit[:7]}; check it out first")
        name, goal = config.metric.name, config.metric.goal
        noise = acceptance.noise(bench.history, name)
        best_values = acceptance.values_by_seed(best, name)
        rows = []
        for kept in [e for e in bench.history if e.status == "keep" and not e.is_baseline]:
            try:
                bench.vcs.revert_in_work_tree(bench.vcs.diff(kept.parent, kept.commit, context=0))
            except GitError as exc:
                rows.append(Ablation(kept, None, None, f"cannot be taken out alone: {exc}"))
                continue
            try:
                measured = bench.run_seeds(f"without-{kept.id}", seeds, progress)
            finally:
                bench.vcs.restore(kept.files, best.commit)
            # The change's worth: how much better the best is than the best without it.
            rows.append(Ablation(kept, measured, compare(best_values, measured.values, goal, noise)))
        bench.journal.append(
            "ablation", tag=tag, best=best.commit,
            rows=[
                {"id": r.experiment.id, "values": r.measured.values if r.measured else None,
                 "contribution": r.contribution.gain if r.contribution else None,
                 "p_value": r.contribution.p_value if r.contribution else None, "note": r.note}
                for r in rows
            ],
        )
        return rows
    finally:
        bench.close()
