from __future__ import annotations

import math
import random
import statistics

import pytest

from arsup.core.acceptance import (
    Decision, Rule, confirm, decide_greedy, gain, head_of_line, noise, one_sided_p, screen,
)
from arsup.core.experiment import Experiment, RunResult, Status


def _experiment(values: list[float], status: str = Status.KEEP, id_: str = "0001") -> Experiment:
    runs = [RunResult(seed=i, log_path="", metrics={"m": v}) for i, v in enumerate(values)]
    return Experiment(id=id_, tag="t", parent="p", hypothesis="h", agent="a", status=status,
                      metric=sum(values) / len(values), runs=runs)


def test_greedy_is_autoresearchs_rule() -> None:
    assert decide_greedy(0.9, None, "minimize", "m").keep
    assert decide_greedy(0.9, 1.0, "minimize", "m").keep
    assert not decide_greedy(1.0, 1.0, "minimize", "m").keep
    assert decide_greedy(0.9, 0.8, "maximize", "acc").keep


def test_gain_is_positive_when_better_for_both_goals() -> None:
    assert gain(0.9, 1.0, "minimize") == pytest.approx(0.1)
    assert gain(0.9, 0.8, "maximize") == pytest.approx(0.1)


def test_noise_is_pooled_over_repeated_commits() -> None:
    a, b = _experiment([1.0, 1.2, 1.4]), _experiment([2.0, 2.2])
    estimate = noise([a, b, _experiment([5.0])], "m")
    pooled = math.sqrt((0.04 * 2 + 0.02 * 1) / 3)
    assert estimate.sigma == pytest.approx(pooled) and estimate.runs == 5
    assert "from 5 runs" in estimate.describe()
    assert noise([_experiment([1.0])], "m") is None


def test_crashed_runs_do_not_count_as_noise() -> None:
    crashed = _experiment([1.0, 9.0])
    crashed.runs[1].crash_reason = "exit code 1"
    assert noise([crashed], "m") is None


def test_screen_drops_gains_under_the_threshold() -> None:
    rule = Rule(threshold_sigma=1.0)
    assert screen(0.9995, 1.0, "minimize", 0.001, rule, "m").reason.startswith("screen:")
    assert screen(0.998, 1.0, "minimize", 0.001, rule, "m") is None
    assert not screen(1.001, 1.0, "minimize", 0.0, rule, "m").keep  # worse, even with no noise
    assert screen(0.82, 0.80, "maximize", 0.01, rule, "acc") is None


def test_zero_variance_gives_a_certain_answer() -> None:
    assert one_sided_p([0.1, 0.1, 0.1]) == 0.0
    assert one_sided_p([0.0, 0.0, 0.0]) == 1.0
    decision = confirm({0: 0.9, 1: 0.9, 2: 0.9}, {0: 1.0, 1: 1.0, 2: 1.0}, "minimize", 0.0, Rule(), "m")
    assert decision.keep and decision.p_value == 0.0 and decision.gain_sigma is None


@pytest.mark.slow
def test_better_on_the_screen_but_worse_on_confirmation_is_discarded() -> None:
    best = {0: 1.00, 1: 1.00, 2: 1.00}
    candidate = {0: 0.98, 1: 1.01, 2: 1.02}
    decision = confirm(candidate, best, "minimize", 0.01, Rule(), "m")
    assert not decision.keep and "not significant" in decision.reason and decision.p_value > 0.05


@pytest.mark.slow
def test_a_real_gain_is_kept_with_its_p_value_and_sigma() -> None:
    best = {0: 1.000, 1: 1.010, 2: 0.990}
    candidate = {0: 0.950, 1: 0.962, 2: 0.938}
    decision = confirm(candidate, best, "minimize", 0.01, Rule(), "m")
    assert decision.keep and decision.p_value < 0.05
    assert decision.gain_sigma == pytest.approx(5.0, rel=0.01)


def test_min_effect_and_maximize() -> None:
    best = {0: 0.80, 1: 0.81, 2: 0.79}
    candidate = {0: 0.81, 1: 0.8201, 2: 0.8002}
    assert confirm(candidate, best, "maximize", 0.01, Rule(), "acc").keep
    small = confirm(candidate, best, "maximize", 0.01, Rule(min_effect=0.05), "acc")
    assert not small.keep and "min_effect" in small.reason


def test_a_significant_gain_under_the_bar_for_a_mean_is_not_kept() -> None:
    best = {0: 1.00, 1: 1.02, 2: 0.98}
    nudged = {seed: value - 1e-4 for seed, value in best.items()}  # the same every seed: p is tiny
    decision = confirm(nudged, best, "minimize", 0.02, Rule(), "m")
    assert decision.p_value is not None and decision.p_value < 0.05
    assert not decision.keep and "1 sigma / sqrt(3) (0.011547)" in decision.reason
    moved = {seed: value - 0.012 for seed, value in best.items()}  # just over 0.02 / sqrt(3)
    assert confirm(moved, best, "minimize", 0.02, Rule(), "m").keep
    assert confirm(nudged, best, "minimize", 0.0, Rule(), "m").keep  # no noise: any strict gain is real


@pytest.mark.slow
def test_the_paired_test_holds_its_false_positive_rate() -> None:
    rng = random.Random(7)
    hits = sum(one_sided_p([rng.gauss(0, 1) for _ in range(3)]) < 0.05 for _ in range(4000))
    assert 0.03 < hits / 4000 < 0.07


def test_head_of_line_is_the_latest_keep() -> None:
    first, later = _experiment([1.0], id_="0001"), _experiment([0.9], id_="0003")
    assert head_of_line([first, _experiment([0.5], Status.DISCARD, "0002"), later]).id == "0003"
    assert head_of_line([_experiment([1.0], Status.CRASH)]) is None


def _candidate(values: list[float], agent: str = "llm") -> Experiment:
    candidate = _experiment(values, status=Status.RUNNING, id_="0002")
    candidate.agent = agent
    return candidate


def test_judge_keeps_the_first_result_and_a_persons_commit_without_comparing() -> None:
    from arsup.core.acceptance import judge
    from arsup.core.experiment import PERSON

    first = judge(_candidate([5.0]), None, Rule(), 0.1, "m", "minimize")
    assert first.keep and "first result" in first.reason
    persons = judge(_candidate([5.0], agent=PERSON), _experiment([1.0, 1.0, 1.0]), Rule(), 0.1, "m", "minimize")
    assert persons.keep and "person's commit" in persons.reason  # worse, and still the new reference


def test_judge_screens_then_asks_for_the_confirmation_runs_then_confirms() -> None:
    from arsup.core.acceptance import Decision, MoreRuns, judge

    reference, rule = _experiment([1.0, 1.01, 0.99]), Rule(confirm_runs=3, threshold_sigma=1.0)
    assert judge(_candidate([0.95]), reference, rule, 0.01, "m", "minimize") == MoreRuns(3)
    dropped = judge(_candidate([0.999]), reference, rule, 0.01, "m", "minimize")
    assert isinstance(dropped, Decision) and not dropped.keep and dropped.reason.startswith("screen:")
    confirmed = judge(_candidate([0.95, 0.96, 0.94]), reference, rule, 0.01, "m", "minimize")
    assert isinstance(confirmed, Decision) and confirmed.keep and confirmed.p_value is not None
    lucky = judge(_candidate([0.95, 1.02, 1.0]), reference, rule, 0.01, "m", "minimize")
    assert isinstance(lucky, Decision) and not lucky.keep and "not significant" in lucky.reason


def test_judge_greedy_is_one_run_and_strictly_better() -> None:
    from arsup.core.acceptance import judge

    reference, greedy = _experiment([1.0]), Rule(mode="greedy")
    assert judge(_candidate([0.999]), reference, greedy, 0.5, "m", "minimize").keep  # the noise is not asked
    assert not judge(_candidate([1.0]), reference, greedy, 0.0, "m", "minimize").keep


def test_judge_refuses_a_candidate_without_a_metric() -> None:
    from arsup.core.acceptance import judge

    crashed = _candidate([1.0])
    crashed.metric = None
    with pytest.raises(ValueError, match="0002"):
        judge(crashed, _experiment([1.0]), Rule(), 0.1, "m", "minimize")


def test_the_rule_is_read_from_the_config() -> None:
    from arsup.config import AcceptanceConfig

    rule = Rule.from_config(AcceptanceConfig(mode="greedy", confirm_runs=5, threshold_sigma=2.0, alpha=0.01,
                                             min_effect=0.1))
    assert rule == Rule("greedy", 5, 2.0, 0.01, 0.1)


def test_a_borderline_gain_on_the_first_look_earns_the_further_seeds() -> None:
    # Demo 0006: a large gain whose 3 paired differences spread, p 0.0514: discarded at once before.
    from arsup.core.acceptance import MoreRuns, judge

    reference, rule = _experiment([1.61, 1.62, 1.60, 1.61, 1.62]), Rule(confirm_runs=3, max_runs=5)
    borderline = judge(_candidate([1.21, 1.55, 0.9]), reference, rule, 0.01, "m", "minimize")
    assert borderline == MoreRuns(5)
    clear = judge(_candidate([1.21, 1.22, 1.20]), reference, rule, 0.01, "m", "minimize")
    assert isinstance(clear, Decision) and clear.keep and clear.p_value < rule.alpha / 2


def test_the_looks_share_alpha_so_the_extra_runs_keep_the_test_valid() -> None:
    rule = Rule(confirm_runs=3, max_runs=5, alpha=0.05)
    assert rule.looks(paired=5) == (3, 5) and rule.level(paired=5) == pytest.approx(0.025)
    assert rule.looks(paired=3) == (3,) and rule.level(paired=3) == 0.05  # no seeds to add: one look, all of alpha
    assert rule.looks(paired=4) == (3, 4)
    assert Rule(confirm_runs=3, max_runs=3).looks(paired=5) == (3,)  # today's rule: one look at 3 runs


def test_a_gain_that_stays_unclear_is_discarded_in_words_after_the_last_look() -> None:
    from arsup.core.acceptance import judge

    reference, rule = _experiment([1.0, 1.0, 1.0, 1.0, 1.0]), Rule(confirm_runs=3, max_runs=5)
    unclear = judge(_candidate([0.97, 1.01, 0.96, 1.01, 0.99]), reference, rule, 0.01, "m", "minimize")
    assert isinstance(unclear, Decision) and not unclear.keep
    assert f"not significant: p {unclear.p_value:.2g} > 0.025 after 5 runs" in unclear.reason, unclear.reason
    assert "alpha 0.05 over 2 looks" in unclear.reason


def test_a_hopeless_or_small_gain_is_not_given_more_runs() -> None:
    from arsup.core.acceptance import judge

    reference, rule = _experiment([1.0, 1.01, 0.99, 1.0, 1.0]), Rule(confirm_runs=3, max_runs=5)
    hopeless = judge(_candidate([0.98, 1.03, 1.0]), reference, rule, 0.01, "m", "minimize")  # p far over 4 alpha
    assert isinstance(hopeless, Decision) and not hopeless.keep
    assert "not significant: p" in hopeless.reason and "after 3 runs" in hopeless.reason
    small = judge(_candidate([0.9990, 1.0085, 0.9905]), reference, rule, 0.01, "m", "minimize")  # under the bar
    assert isinstance(small, Decision) and not small.keep


@pytest.mark.slow
def test_two_looks_hold_the_false_positive_rate() -> None:
    # Under no effect, keeping at p < alpha/2 after 3 runs or, from a borderline p, after 5, keeps at most alpha.
    from arsup.core.acceptance import judge

    rng = random.Random(11)
    rule, kept, trials = Rule(confirm_runs=3, max_runs=5, threshold_sigma=0.0), 0, 3000
    for _ in range(trials):
        reference = _experiment([rng.gauss(0, 1) for _ in range(5)])
        values = [rng.gauss(0, 1) for _ in range(5)]
        decision = judge(_candidate(values[:3]), reference, rule, 1.0, "m", "minimize")
        if not isinstance(decision, Decision):
            decision = judge(_candidate(values), reference, rule, 1.0, "m", "minimize")
        kept += decision.keep
    assert kept / trials < 0.05


def test_a_time_capped_run_is_left_out_of_the_noise_and_said_so() -> None:
    # A tinylm baseline run under CPU contention stopped at step 181 of 341: its value made the floor ~40x wider.
    baseline = _experiment([3.3374, 3.3401, 3.9120, 3.3350])
    baseline.runs[2].capped = 181 / 341
    estimate = noise([baseline], "m")
    assert estimate.sigma == pytest.approx(statistics.stdev([3.3374, 3.3401, 3.3350]))
    assert estimate.runs == 3 and estimate.describe().endswith("from 3 runs (1 time-capped run left out)")
