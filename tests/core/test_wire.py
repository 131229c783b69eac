"""Every event survives the trip through JSON, and nothing unknown is taken for an event."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from arsup.core import events, wire
from arsup.core.experiment import Experiment, RunResult, Status


def _experiment(**fields: object) -> Experiment:
    base = dict(id="0002", tag="t", parent="p" * 40, hypothesis="raise LR", agent="tuner", commit="c" * 40)
    return Experiment(**{**base, **fields})


KEPT = _experiment(status=Status.KEEP, metric=0.98, runs=[RunResult(seed=0, log_path="x", metrics={"val_bpb": 0.98})])

ALL = [
    events.SessionStarted("t", "autoresearch/t", "c" * 40, 1, project="/p", metric="val_bpb", goal="minimize",
                          time_budget=300, policy="runs", agent="tuner", pid=42, history=[KEPT]),
    events.Proposing("0003"),
    events.AgentText("0003", "HYPOTHESIS: ünïcode [markup] \x1b[31m"),
    events.StateChanged(events.LoopState.TRAINING, "0003"),
    events.PolicyChanged("runs"),
    events.Paused(),
    events.Resumed(),
    events.QuestionClosed("q4", True),
    events.QuestionClosed("q5", None),
    events.ExperimentStarted(_experiment(status=Status.RUNNING)),
    events.RunStarted("0003", 1, 2, 1234.5),
    events.RunOutput("0003", ["step 1", "step 2"], "50%"),
    events.ExperimentFinished(KEPT, KEPT),
    events.ExperimentFinished(_experiment(status=Status.CRASH), None),
    events.Notice("TAMPERING", "error"),
    events.SessionEnded("stopped by user", False),
]


@pytest.mark.parametrize("event", ALL, ids=lambda e: type(e).__name__)
def test_events_round_trip(event: events.Event) -> None:
    line = wire.dumps({"event": wire.encode(event)})
    assert wire.decode(wire.loads(line)["event"]) == event


def test_a_question_travels_with_its_id_and_arrives_with_a_fresh_future() -> None:
    asked = events.ApprovalRequested("run", _experiment(), Future(), {"train.py": "x"}, "q7")
    asked.future.set_result(True)
    arrived = wire.decode(wire.loads(wire.dumps(wire.encode(asked))))
    assert isinstance(arrived, events.ApprovalRequested)
    assert (arrived.kind, arrived.question_id, arrived.files) == ("run", "q7", {"train.py": "x"})
    assert not arrived.future.done()


@pytest.mark.parametrize(
    "data", [None, [], {"type": "Exploit"}, {"type": "Proposing"}, {"type": "ExperimentStarted", "experiment": 3}]
)
def test_what_is_not_an_event_is_refused(data: object) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_fields_of_a_newer_arsup_are_ignored() -> None:
    assert wire.decode({"type": "Proposing", "experiment_id": "0001", "eta": 3}) == events.Proposing("0001")


def test_a_state_from_the_wire_is_the_enum() -> None:
    event = wire.decode({"type": "StateChanged", "state": "awaiting approval", "detail": "run"})
    assert event.state is events.LoopState.AWAITING_APPROVAL
    with pytest.raises(wire.WireError):
        wire.decode({"type": "StateChanged", "state": "dancing"})


def test_a_line_nested_too_deep_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(wire.WireError, match="nested too deep"):
        wire.loads(b"[" * 100_000 + b"]" * 100_000 + b"\n")
