from __future__ import annotations

from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.load import mark_capped, note, steps

TINYLM_CAPPED = (
    "step 00181/00341 | loss 3.1 | lr 1.0e-03 | 0.3 s/step\n"
    "time cap of 60 s reached after 181 of 341 steps: the run saw less data than the budget\n"
    "---\nval_bpb:          3.912000\nnum_steps:        181\n"
)


def test_the_training_saying_it_hit_the_cap_gives_the_share_of_steps() -> None:
    done, capped = steps(TINYLM_CAPPED)
    assert done == 181 and capped == 181 / 341
    assert steps("---\nval_bpb: 1.0\nnum_steps:        341\n") == (341, 0.0)
    assert steps("---\nval_bpb: 1.0\n") == (0, 0.0)


def _run(seed: int, steps_: int, wall_s: float) -> RunResult:
    return RunResult(seed=seed, log_path="", wall_s=wall_s, metrics={"m": 1.0}, steps=steps_)


def test_a_run_at_the_budget_with_fewer_steps_than_its_commits_others_is_flagged() -> None:
    # autoresearch's train.py trains until its budget: steps are what the load changes.
    runs = [_run(0, 950, 305.0), _run(1, 940, 304.0), _run(2, 500, 306.0), _run(3, 930, 120.0)]
    mark_capped(runs, time_budget=300)
    assert [round(r.capped, 3) for r in runs] == [0, 0, 0.526, 0]  # run 3 ended before the budget: not the load
    experiment = Experiment(id="0001", tag="t", parent="p", hypothesis="h", agent="a", status=Status.KEEP, runs=runs)
    assert note(experiment) == "time-capped at 53% of the steps (1 of 4 runs): compare with care"


def test_no_budget_or_no_step_counts_flags_nothing() -> None:
    runs = [_run(0, 0, 305.0), _run(1, 0, 305.0)]
    mark_capped(runs, time_budget=300)
    mark_capped(unbudgeted := [_run(0, 900, 5.0), _run(1, 100, 5.0)], time_budget=0)
    assert not any(r.capped for r in runs + unbudgeted)
    single = Experiment(id="0002", tag="t", parent="p", hypothesis="h", agent="a", runs=[_run(0, 181, 61.0)])
    single.runs[0].capped = 181 / 341
    assert note(single) == "time-capped at 53% of the steps: compare with care"
