"""The session as the screen sees it: a pure fold of the loop's events."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from arsup.core import policy
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    ExperimentFinished,
    ExperimentStarted,
    LoopState,
    Paused,
    PolicyChanged,
    Proposing,
    QuestionClosed,
    Resumed,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.view import SessionView


def exp(number: int, status: str, metric: float | None, parent: str, commit: str, **extra: object) -> Experiment:
    return Experiment(f"{number:04d}", "t", parent, "h", "script", commit=commit, status=status, metric=metric, **extra)  # type: ignore[arg-type]


def test_the_start_says_everything_a_view_shows() -> None:
    base = exp(1, Status.KEEP, 3.0, "c0", "c0", is_baseline=True, agent_data={"usage": {"calls": 2, "cost_usd": 0.5}})
    better = exp(2, Status.KEEP, 2.5, "c0", "c2", agent_data={"usage": {"calls": 1, "cost_usd": 0.25}})
    broken = exp(3, Status.RUNNING, None, "c2", "c3")  # not finished: not history
    view = SessionView()
    view.apply(SessionStarted(
        "t", "autoresearch/t", "c2", 2, project="/srv/tinylm", metric="loss", goal="maximize", time_budget=60,
        policy="runs", agent="llm", model="openai/qwen", paused=True, pid=42, history=[base, better, broken],
    ))
    assert (view.metric, view.goal, view.time_budget, view.branch) == ("loss", "maximize", 60, "autoresearch/t")
    assert (view.project_name, view.policy, view.agent, view.model, view.paused, view.pid) == (
        "tinylm", "runs", "llm", "openai/qwen", True, 42,
    )
    assert view.history == [base, better] and view.best is better and view.baseline is base
    spend = view.spend()
    assert (spend["calls"], spend["cost_usd"]) == (3, 0.75)


def test_counts_baseline_best_and_deltas() -> None:
    view = SessionView("val_bpb", "minimize", 30)
    base = exp(1, Status.KEEP, 3.0, "c0", "c0", is_baseline=True)
    worse = exp(2, Status.DISCARD, 3.5, "c0", "c2")
    better = exp(3, Status.KEEP, 2.5, "c0", "c3")
    crashed = exp(4, Status.CRASH, None, "c3", "c4")
    view.apply(SessionStarted("t", "autoresearch/t", "c0", 0))
    for done, best in ((base, base), (worse, base), (better, better), (crashed, better)):
        view.apply(ExperimentFinished(done, best))
    assert view.branch == "autoresearch/t"
    assert view.baseline is base and view.best is better
    # kept changes, the baseline not counted (as the report counts)
    assert view.counts()["keep"] == 1 and view.counts()["discard"] == 1 and view.counts()["crash"] == 1
    assert view.parent_metric(worse) == 3.0 and view.parent_metric(better) == 3.0
    assert view.parent_metric(crashed) == 2.5 and view.parent_metric(base) is None


def test_streaming_text_belongs_to_the_proposal_in_flight() -> None:
    view = SessionView("m", "minimize", 30)
    view.apply(Proposing("0002"))
    view.apply(AgentText("0002", "HYPOTHESIS: "))
    view.apply(AgentText("0001", "stale"))
    view.apply(AgentText("0002", "wider"))
    assert view.agent_text == "HYPOTHESIS: wider"
    view.apply(Proposing("0003"))
    assert view.agent_text == ""


def test_progress_and_state_labels() -> None:
    view = SessionView("m", "minimize", 100)
    running = exp(2, Status.RUNNING, None, "c0", "c2", started_at=1000.0)
    assert view.state_label(0) == "starting"
    view.apply(StateChanged("awaiting approval", policy.RUN))  # from the wire, a state is a str
    assert view.state is LoopState.AWAITING_APPROVAL
    view.apply(Paused())
    assert view.state_label(0) == "awaiting approval (run), pausing after this step"
    view.apply(Resumed())
    view.apply(ExperimentStarted(running))
    view.apply(StateChanged(LoopState.TRAINING, "0002"))
    assert view.state_label(1042.0) == "training 42%"
    view.apply(RunStarted("0002", 1, 2, 1100.0))
    assert view.state_label(1110.0) == "training 10% (run 2)"
    assert view.progress(5000.0) == 1.0
    view.apply(SessionEnded("stopped by user"))
    assert view.state_label(0) == "ended" and view.running is None


def test_pause_policy_and_the_first_end() -> None:
    view = SessionView()
    view.apply(PolicyChanged("keeps"))
    assert view.policy == "keeps"
    view.apply(Paused())  # asked for: the loop finishes its step first
    assert view.paused and view.state_label(0) == "starting, pausing after this step"
    view.apply(StateChanged(LoopState.PAUSED))
    assert view.state_label(0) == "paused"
    view.apply(Resumed())
    assert not view.paused
    view.apply(SessionEnded("reached the budget of 3 experiments"))
    view.apply(SessionEnded("the loop closed the connection"))  # a client says so when the socket closes
    assert view.ended is not None and view.ended.reason == "reached the budget of 3 experiments"


def test_an_approval_is_pending_until_closed_or_finished() -> None:
    view = SessionView("m", "minimize", 30)
    proposed = exp(2, Status.PROPOSED, None, "c0", "c0")
    request = ApprovalRequested(policy.RUN, proposed, Future(), {}, "q1")
    view.apply(request)
    assert view.pending is request
    view.approval_closed(ApprovalRequested(policy.RUN, proposed, Future(), {}))  # another question
    view.apply(QuestionClosed("q7", True))
    assert view.pending is request
    view.approval_closed(request)
    assert view.pending is None
    view.apply(request)
    view.apply(QuestionClosed("q1", None))  # answered by another client, or withdrawn
    assert view.pending is None
    view.apply(request)
    view.apply(ExperimentFinished(exp(2, Status.SKIPPED, None, "c0", "c0"), None))
    assert view.pending is None


def test_a_queued_proposals_question_waits_behind_the_runs_and_comes_next() -> None:
    view = SessionView("m", "minimize", 30)
    queued = ApprovalRequested(policy.EDIT, exp(3, Status.PROPOSED, None, "c1", "c1"), Future(), {}, "q2")
    running = ApprovalRequested(policy.KEEP, exp(2, Status.RUNNING, 0.9, "c0", "c1"), Future(), {}, "q3")
    view.apply(queued)
    view.apply(running)
    assert view.pending is queued  # the oldest first
    view.apply(QuestionClosed("q2", True))
    assert view.pending is running
    view.apply(ExperimentFinished(exp(2, Status.KEEP, 0.9, "c0", "c1"), None))
    assert view.pending is None and view.questions == []


def test_the_duty_cycle_is_training_time_over_the_sessions_wall_time() -> None:
    view = SessionView("m", "minimize", 30)
    assert view.duty_cycles(100.0) == {}  # no session start known (browsing)
    view.started_at = 100.0
    before = exp(1, Status.KEEP, 1.0, "c0", "c0", started_at=50.0, runs=[RunResult(0, "", wall_s=40.0)])
    done = exp(2, Status.DISCARD, 1.2, "c0", "c2", started_at=101.0, runs=[RunResult(0, "", wall_s=30.0)])
    view.history = [before, done]  # the earlier session's run does not count
    view.apply(ExperimentStarted(exp(3, Status.RUNNING, None, "c0", "c3", started_at=135.0)))
    assert view.duty_cycles(140.0) == {"main": pytest.approx((30.0 + 5.0) / 40.0)}
    view.apply(ExperimentStarted(exp(4, Status.RUNNING, None, "c0", "c4", started_at=130.0), "cpu1"))
    assert view.duty_cycles(140.0) == {"cpu1": 0.25}  # with slots, the project folder's own is left out
    assert [e.id for e in view.training] == ["0004", "0003"] and view.running.id == "0004"
    view.apply(ExperimentFinished(exp(4, Status.DISCARD, 1.3, "c0", "c4"), None))
    assert view.running is not None and view.running.id == "0003"  # the live panes follow the other slot


def test_notebook_of_the_latest_llm_experiment() -> None:
    view = SessionView("m", "minimize", 30)
    history = [exp(1, Status.KEEP, 1.0, "c", "c", agent_data={"notebook": "old"}),
               exp(2, Status.DISCARD, 2.0, "c", "d", agent_data={"notebook": "new"}),
               exp(3, Status.INVALID, None, "c", "c")]
    view.apply(SessionStarted("t", "autoresearch/t", "c", 3, history=history))
    assert view.notebook() == "new"
