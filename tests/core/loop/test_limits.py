"""The night's ends and pauses, decided from counters and the config alone: no git, no process."""

from __future__ import annotations

from arsup.config import BudgetConfig, WatchdogConfig
from arsup.core.experiment import PERSON, Cause, Experiment, RunResult, Status
from arsup.core.loop.flags import Flags
from arsup.core.loop.limits import MAX_INVALID_IN_A_ROW, STOPPED_AFTER_RUN, Ending, Limits, Pause


def _limits(interactive: bool = False, **watchdog: int) -> Limits:
    limits = Limits(BudgetConfig(), WatchdogConfig(**watchdog), "/runs")
    limits.interactive = interactive
    limits.start_session(1000.0)
    return limits


def _ended(status: Status, number: int = 1, killed: bool = False, diff: str = "", baseline: bool = False,
           reason: str = "exit code 1") -> Experiment:
    runs = [RunResult(seed=0, log_path=f"/runs/{number:04d}/run.log", killed=killed)]
    return Experiment(id=f"{number:04d}", tag="t", parent="p", hypothesis="h", agent="llm", status=status,
                      reason=reason, runs=runs, diff=diff, is_baseline=baseline)


def test_a_stop_wins_then_stop_after_the_run_then_the_budget() -> None:
    limits, flags = Limits(BudgetConfig(max_experiments=2), WatchdogConfig(), "/runs"), Flags()
    limits.start_session(1000.0)
    assert limits.why_end(flags, in_flight=1, spent_usd=0.0) is None
    assert limits.why_end(flags, in_flight=2, spent_usd=0.0) == Ending("reached the budget of 2 experiments")
    flags.after_run.set()
    assert limits.why_end(flags, in_flight=2, spent_usd=0.0) == Ending(STOPPED_AFTER_RUN)
    flags.stop("killed by signal 15")
    flags.stop("stopped by user")  # the first reason is the one recorded
    assert limits.why_end(flags, in_flight=0, spent_usd=0.0) == Ending("killed by signal 15")


def test_the_budgets_in_hours_and_dollars() -> None:
    limits = Limits(BudgetConfig(max_hours=1, max_cost_usd=0.5), WatchdogConfig(), "/runs")
    limits.start_session(1000.0)
    assert limits.budget_spent(0, 0.49, now=1000.0 + 3599) == ""
    assert limits.budget_spent(0, 0.49, now=1000.0 + 3600) == "reached the budget of 1 hour"
    assert limits.budget_spent(0, 0.5, now=1000.0) == "reached the budget of 0.5 USD"
    # one more may be prepared only while the budget lasts after those under way
    spending = Limits(BudgetConfig(max_experiments=3, max_cost_usd=0.5), WatchdogConfig(), "/runs")
    assert spending.more_after_this(Flags(), in_flight=2, spent_usd=0.1)
    assert not spending.more_after_this(Flags(), in_flight=3, spent_usd=0.1)
    assert not spending.more_after_this(Flags(), in_flight=0, spent_usd=0.5)


def test_a_crashed_baseline_ends_the_night_and_names_its_log() -> None:
    ending = _limits().after(_ended(Status.CRASH, baseline=True), [], stopped=False)
    assert isinstance(ending, Ending) and ending.error
    assert ending.reason == "the baseline crashed (exit code 1); fix the training script. Log: /runs/0001/run.log"
    persons = _ended(Status.CRASH, baseline=True)
    persons.agent, persons.commit = PERSON, "abcdef123"
    assert "the person's commit abcdef1 crashed" in _limits().after(persons, [], stopped=False).reason
    lost = _ended(Status.CRASH, baseline=True, reason="node lost: worker died")
    lost.runs[-1].cause = Cause.NODE_LOST
    assert "was lost twice" in _limits().after(lost, [], stopped=False).reason
    said = "no `val_bpb:` line; the log has `val_loss:` (set `[metric] name`)"
    wrong = _ended(Status.CRASH, baseline=True, reason=said)
    assert _limits().after(wrong, [], stopped=False).reason == (
        "the baseline measured nothing: no `val_bpb:` line; the log has `val_loss:` (set `[metric] name`). "
        "Set it in arsup.toml (or make the training print that line), then start again. Log: /runs/0001/run.log"
    )
    assert _limits().after(_ended(Status.CRASH, baseline=True), [], stopped=True) is None  # the person stopped it


def test_a_baseline_the_person_killed_says_so_and_how_to_run_it_again() -> None:
    killed = _ended(Status.CRASH, baseline=True, killed=True, reason="killed by user")
    ending = _limits(interactive=True).after(killed, [killed], stopped=False)
    assert isinstance(ending, Ending) and ending.error  # the night did not happen: non-zero from every front end
    assert "crashed" not in ending.reason and "fix the training script" not in ending.reason
    assert ending.reason == (
        "the baseline (0001) was killed by you, so nothing can be judged against it and the night ends here; "
        "start arsup again to measure it anew. Log: /runs/0001/run.log"
    )


def test_invalid_edits_in_a_row_end_the_night_and_a_valid_one_resets_the_count() -> None:
    limits = _limits()
    for number in range(1, MAX_INVALID_IN_A_ROW):
        assert limits.after(_ended(Status.INVALID, number), [], stopped=False) is None
    assert limits.after(_ended(Status.DISCARD, 10), [], stopped=False) is None
    for number in range(11, 10 + MAX_INVALID_IN_A_ROW):
        assert limits.after(_ended(Status.INVALID, number), [], stopped=False) is None
    ending = limits.after(_ended(Status.INVALID, 20), [], stopped=False)
    assert ending == Ending(f"{MAX_INVALID_IN_A_ROW} invalid edits in a row; check the agent", error=True)


def test_crashes_in_a_row_stop_headless_and_pause_on_screen_and_a_kill_is_no_crash() -> None:
    headless = _limits(crashes_in_a_row=2)
    assert headless.after(_ended(Status.CRASH, 1), [], stopped=False) is None
    assert headless.after(_ended(Status.CRASH, 2, killed=True), [], stopped=False) is None  # the person's kill...
    assert headless.after(_ended(Status.CRASH, 3), [], stopped=False) is None  # ...ended the streak
    ending = headless.after(_ended(Status.CRASH, 4), [], stopped=False)
    assert isinstance(ending, Ending) and ending.error and "the logs in /runs" in ending.reason
    watched = _limits(interactive=True, crashes_in_a_row=2)
    watched.after(_ended(Status.CRASH, 1), [], stopped=False)
    pause = watched.after(_ended(Status.CRASH, 2), [], stopped=False)
    assert isinstance(pause, Pause) and pause.text.startswith("2 crashes in a row (the last: exit code 1): paused")
    assert watched.after(_ended(Status.CRASH, 3), [], stopped=False) is None  # the streak counts anew
    assert headless.trained == 4 and watched.trained == 3


def test_a_fatal_error_ends_the_night_after_the_experiment_and_the_first_is_kept() -> None:
    limits = _limits()
    limits.fail("the run changed .git/config and arsup could not put it back")
    limits.fail("a second reason")
    ending = limits.after(_ended(Status.KEEP), [], stopped=False)
    assert ending == Ending("the run changed .git/config and arsup could not put it back", error=True)


def test_going_in_circles_stops_headless_and_pauses_once_per_streak_on_screen() -> None:
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 0.1\n+LR = {}\n"
    trail = [_ended(Status.DISCARD, n, diff=diff.format(n / 100)) for n in range(1, 4)]
    headless = _limits(same_idea=3)
    ending = headless.after(trail[-1], trail, stopped=False)
    assert isinstance(ending, Ending) and ending.error and "0001, 0002, 0003" in ending.reason
    watched = _limits(interactive=True, same_idea=3)
    assert isinstance(watched.after(trail[-1], trail, stopped=False), Pause)
    assert watched.after(trail[-1], trail, stopped=False) is None  # paused for this streak already
    longer = [*trail, *(_ended(Status.DISCARD, n, diff=diff.format(n / 100)) for n in range(4, 7))]
    assert isinstance(watched.after(longer[-1], longer, stopped=False), Pause)  # a new streak from 0004
    assert _limits(same_idea=0).after(trail[-1], trail, stopped=False) is None  # off
