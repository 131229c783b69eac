"""The session as the screen sees it: a pure fold of engine events."""

from __future__ import annotations

from concurrent.futures import Future

from arsup.core import policy
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    ExperimentFinished,
    ExperimentStarted,
    Proposing,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, Status
from arsup.tui.session import SessionView


def exp(number: int, status: str, metric: float | None, parent: str, commit: str, **extra: object) -> Experiment:
    return Experiment(f"{number:04d}", "t", parent, "h", "script", commit=commit, status=status, metric=metric, **extra)  # type: ignore[arg-type]


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
    assert view.counts()["keep"] == 2 and view.counts()["discard"] == 1 and view.counts()["crash"] == 1
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
    assert view.state_label(0, pausing=False) == "starting"
    view.apply(StateChanged("awaiting approval", policy.RUN))
    assert view.state_label(0, pausing=True) == "awaiting approval (run), pausing after this step"
    view.apply(ExperimentStarted(running))
    view.apply(StateChanged("training", "0002"))
    assert view.state_label(1042.0, pausing=False) == "training 42%"
    view.apply(RunStarted("0002", 1, 2, 1100.0))
    assert view.state_label(1110.0, pausing=False) == "training 10% (run 2)"
    assert view.progress(5000.0) == 1.0
    view.apply(SessionEnded("stopped by user"))
    assert view.state_label(0, pausing=False) == "ended" and view.running is None


def test_an_approval_is_pending_until_closed_or_finished() -> None:
    view = SessionView("m", "minimize", 30)
    proposed = exp(2, Status.PROPOSED, None, "c0", "c0")
    request = ApprovalRequested(policy.RUN, proposed, Future(), {})
    view.apply(request)
    assert view.pending is request
    view.approval_closed(ApprovalRequested(policy.RUN, proposed, Future(), {}))  # another question
    assert view.pending is request
    view.approval_closed(request)
    assert view.pending is None
    view.apply(request)
    view.apply(ExperimentFinished(exp(2, Status.SKIPPED, None, "c0", "c0"), None))
    assert view.pending is None


def test_notebook_of_the_latest_llm_experiment() -> None:
    view = SessionView("m", "minimize", 30)
    view.load([exp(1, Status.KEEP, 1.0, "c", "c", agent_data={"notebook": "old"}),
               exp(2, Status.DISCARD, 2.0, "c", "d", agent_data={"notebook": "new"}),
               exp(3, Status.INVALID, None, "c", "c")], None)
    assert view.notebook() == "new"
