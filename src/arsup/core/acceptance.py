"""Keep or discard: the one place the decision is made, and the statistics behind it.

Greedy single-run acceptance (autoresearch's rule) keeps a change that does
nothing about half the time once seeds move the metric as much as real
changes do. The `confirm` rule screens each candidate with one run, drops it
when it beats the best by less than `threshold_sigma` noise standard
deviations, and otherwise re-runs it on the best's seeds and keeps it only
when a one-sided paired t-test says the gain is real (p < alpha), and the mean
gain clears the screen's bar for a mean (`threshold_sigma` sigma / sqrt(runs))
and `min_effect`. The bar matters where seeds drive the noise: a change that
does nothing gives nearly the same value seed for seed, passes the screen
whenever the first seed is the best's lucky one, and then wins the paired test
on a consistent 1e-6. The noise sigma is pooled over every commit that ran more than
once, so it sharpens as the night goes on.

Confirmation is sequential, in at most two looks: at `confirm_runs` runs and
at `max_runs` (as many as the reference has seeds to pair, up to that). A
large gain whose three differences happen to spread (demo 0006: 25% better,
p 0.0514) is not thrown away: when p lies between the look's level and
`borderline` times alpha and the mean gain clears its bar, the candidate runs
on the further seeds and the paired test is read again on all of them. The
looks share alpha, half each (a Bonferroni split, the conservative form of a
Pocock-style equal split): the rule keeps a change that does nothing only if
the first look or the last one rejects, so with probability at most
alpha/2 + alpha/2 = alpha, whatever the correlation of the two looks and
whatever made the rule go on. (Pocock's own nominal level for two looks,
0.0294, leans on that correlation under a normal model; three paired t values
are too far from normal to lean on it.) Where no second look can happen (the
reference has only `confirm_runs` seeds, or `max_runs == confirm_runs`, today's
rule) the one look has all of alpha: that is known before the candidate runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from arsup.core.experiment import Experiment, Status

if TYPE_CHECKING:
    from arsup.config import AcceptanceConfig


@dataclass(frozen=True)
class Rule:
    mode: str = "confirm"  # or "greedy"
    confirm_runs: int = 3  # runs in all for a candidate that passes the screen
    threshold_sigma: float = 1.0
    alpha: float = 0.05
    min_effect: float = 0.0
    max_runs: int = 5  # runs in all for a borderline candidate: the second look
    borderline: float = 4.0  # a first look's p under borderline * alpha earns the second look

    @classmethod
    def from_config(cls, accept: AcceptanceConfig) -> Rule:
        return cls(
            accept.mode, accept.confirm_runs, accept.threshold_sigma, accept.alpha, accept.min_effect,
            accept.max_runs, accept.borderline,
        )

    def looks(self, paired: int) -> tuple[int, ...]:
        """The run counts at which the paired test is read, given how many seeds the reference has to pair."""
        last = min(self.max_runs, paired)
        return (self.confirm_runs,) if last <= self.confirm_runs else (self.confirm_runs, last)

    def level(self, paired: int) -> float:
        """Each look's significance level: alpha split evenly over the looks (see the module's docstring)."""
        return self.alpha / len(self.looks(paired))

    def mean_bar(self, sigma: float, runs: int) -> float:
        """The least mean gain over `runs` paired runs that is kept: the screen's bar for one run, scaled to a
        mean's spread, and `min_effect`."""
        return max(self.threshold_sigma * sigma / math.sqrt(runs), self.min_effect)


@dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str
    p_value: float | None = None
    gain_sigma: float | None = None  # the mean gain in noise standard deviations


@dataclass(frozen=True)
class Noise:
    sigma: float
    runs: int  # how many runs the estimate rests on
    capped: int = 0  # runs left out of it: the time budget cut them short (core/load.py)

    def describe(self) -> str:
        left_out = f" ({self.capped} time-capped run{'s' * (self.capped > 1)} left out)" if self.capped else ""
        return f"sigma {self.sigma:.6g} from {self.runs} runs{left_out}"


def is_better(candidate: float, best: float, goal: str) -> bool:
    return candidate < best if goal == "minimize" else candidate > best


def gain(candidate: float, best: float, goal: str) -> float:
    """How much better the candidate is, positive whatever the goal."""
    return best - candidate if goal == "minimize" else candidate - best


def values_by_seed(experiment: Experiment, metric: str) -> dict[int, float]:
    return {run.seed: run.metrics[metric] for run in experiment.runs if not run.crash_reason and metric in run.metrics}


def noise(experiments: Iterable[Experiment], metric: str) -> Noise | None:
    """Pooled standard deviation of repeated runs of the same commit; None before any repeat.

    A run the time budget cut short measured the machine's load, not the seed: one such tinylm run made the
    floor about 40 times wider. It is left out, and the estimate says how many were."""
    squares, dof, runs, capped = 0.0, 0, 0, 0
    for experiment in experiments:
        measured = values_by_seed(experiment, metric)
        short = {run.seed for run in experiment.runs if run.capped and run.seed in measured}
        values = [value for seed, value in measured.items() if seed not in short]
        if len(values) >= 2:
            squares += statistics.variance(values) * (len(values) - 1)
            dof += len(values) - 1
            runs += len(values)
            capped += len(short)
    return Noise(math.sqrt(squares / dof), runs, capped) if dof else None


def decide_greedy(candidate: float, best: float | None, goal: str, metric: str) -> Decision:
    """autoresearch's rule: keep when strictly better than the best so far."""
    if best is None:
        return Decision(True, "first result on this branch: the reference to beat")
    delta = candidate - best
    if is_better(candidate, best, goal):
        return Decision(True, f"{metric} {candidate:.6f} beats the best {best:.6f} ({delta:+.6f})")
    return Decision(False, f"{metric} {candidate:.6f} does not beat the best {best:.6f} ({delta:+.6f})")


def screen(candidate: float, best: float, goal: str, sigma: float, rule: Rule, metric: str) -> Decision | None:
    """After one run: a Decision to discard, or None when the candidate deserves confirmation runs."""
    won = gain(candidate, best, goal)
    bar = rule.threshold_sigma * sigma
    if won <= 0 or won < bar:
        return Decision(
            False,
            f"screen: {metric} {candidate:.6f} vs best {best:.6f}: gain {won:+.6f} is under "
            f"{rule.threshold_sigma:g} sigma ({bar:.6f})",
            gain_sigma=won / sigma if sigma else None,
        )
    return None


def one_sided_p(gains: list[float]) -> float:
    """p-value of a one-sided paired t-test that the mean gain is above zero.

    With no spread at all (a deterministic script) the answer is certain: 0 when
    every gain is positive, 1 otherwise.
    """
    spread_is_rounding = len(gains) >= 2 and statistics.pstdev(gains) <= 1e-9 * max(abs(g) for g in gains)
    if len(gains) < 2 or spread_is_rounding:
        return 0.0 if gains and min(gains) > 0 else 1.0
    from scipy import stats

    return float(stats.ttest_1samp(gains, 0.0, alternative="greater").pvalue)


def confirm(
    candidate: dict[int, float], best: dict[int, float], goal: str, sigma: float, rule: Rule, metric: str
) -> Decision | MoreRuns:
    """After the confirmation runs: keep only a gain the paired test believes and that is large enough, or, on a
    first look that is borderline, ask for the runs of the second look."""
    seeds = sorted(set(candidate) & set(best))
    gains = [gain(candidate[s], best[s], goal) for s in seeds]
    mean_gain = statistics.fmean(gains) if gains else 0.0
    p = one_sided_p(gains)
    in_sigma = mean_gain / sigma if sigma else None
    summary = (
        f"mean gain {mean_gain:+.6f}"
        + (f" ({in_sigma:.1f} sigma)" if in_sigma is not None else "")
        + f" over {len(seeds)} paired seeds, p = {p:.3g}"
    )
    if len(seeds) < 2:
        return Decision(False, f"{summary}: fewer than 2 paired seeds", p, in_sigma)
    looks, level = rule.looks(len(best)), rule.level(len(best))
    bar = rule.mean_bar(sigma, len(seeds))
    if p >= level:
        last = looks[-1]
        if len(candidate) < last and p < rule.borderline * rule.alpha and mean_gain >= bar:
            return MoreRuns(last)
        split = f" (alpha {rule.alpha:g} over {len(looks)} looks)" if len(looks) > 1 else ""
        return Decision(
            False, f"{summary}: not significant: p {p:.2g} > {level:g} after {len(seeds)} runs{split}", p, in_sigma,
        )
    if mean_gain < rule.min_effect:
        return Decision(False, f"{summary}: below min_effect {rule.min_effect:g}", p, in_sigma)
    if mean_gain < bar:
        return Decision(
            False, f"{summary}: under {rule.threshold_sigma:g} sigma / sqrt({len(seeds)}) ({bar:.6f}), "
            "too small to tell from the noise", p, in_sigma,
        )
    return Decision(True, f"{summary}: a real gain of {metric}", p, in_sigma)


@dataclass(frozen=True)
class MoreRuns:
    """The candidate earns runs (`runs` in all, one per seed) and is judged again on them: after the screen, the
    first look's; after a borderline first look, the second's."""

    runs: int


def judge(
    candidate: Experiment, reference: Experiment | None, rule: Rule, sigma: float, metric: str, goal: str,
) -> Decision | MoreRuns:
    """The keep decision over measured runs: the whole tree, with no git, process or config in it.

    `reference` is what the candidate started from (None: nothing to beat
    yet); `sigma` the noise floor. Under `confirm` a candidate with fewer
    runs than `rule.confirm_runs` is screened on its mean; one that passes
    gets MoreRuns, and once it has them the paired test decides, or, when its
    first look is borderline, asks for MoreRuns again (the second look)."""
    if reference is None:
        return Decision(True, "the first result on this branch: the reference to beat")
    if candidate.by_person:
        return Decision(True, "a person's commit on the run branch, measured: the new reference")
    if candidate.metric is None or reference.metric is None:
        raise ValueError(f"judge: experiment {candidate.id} or its reference {reference.id} has no {metric}")
    if rule.mode == "greedy":
        return decide_greedy(candidate.metric, reference.metric, goal, metric)
    if len(candidate.runs) < rule.confirm_runs:
        screened = screen(candidate.metric, reference.metric, goal, sigma, rule, metric)
        return screened if screened is not None else MoreRuns(rule.confirm_runs)
    return confirm(values_by_seed(candidate, metric), values_by_seed(reference, metric), goal, sigma, rule, metric)


def head_of_line(history: Iterable[Experiment]) -> Experiment | None:
    """The latest keep: the head of the kept line, which every new candidate is built on and must beat.

    Each keep beat the one before it, so this is also the best result so far.
    """
    kept = [e for e in history if e.status == Status.KEEP and e.metric is not None]
    return kept[-1] if kept else None
