"""The kept line: one lock, copies out, and the reference a result is judged against."""

from __future__ import annotations

import threading

from arsup.core import changes
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.loop.line import KeptLine


def _kept(number: int, commit: str, parent: str, value: float, status: Status = Status.KEEP) -> Experiment:
    return Experiment(id=f"{number:04d}", tag="t", parent=parent, commit=commit, hypothesis="h", agent="llm",
                      status=status, metric=value, runs=[RunResult(seed=0, log_path="", metrics={"m": value})])


def test_the_reference_is_the_keep_a_candidate_started_from_not_the_best_now() -> None:
    line = KeptLine("m")
    line.settle(_kept(0, "c0", "c0", 1.0))
    line.settle(_kept(1, "c1", "c0", 0.9))
    line.settle(_kept(2, "c2", "c1", 0.8, Status.DISCARD))
    started_on_c0 = Experiment(id="0003", tag="t", parent="c0", hypothesis="h", agent="llm")
    assert line.best().id == "0001" and line.reference(started_on_c0).id == "0000"
    baseline = Experiment(id="0004", tag="t", parent="c9", hypothesis="baseline", agent="arsup", is_baseline=True)
    assert line.reference(baseline).id == "0001"  # a baseline is judged against the best so far
    assert line.trained() == 3


def test_the_history_is_handed_out_as_a_copy() -> None:
    line = KeptLine("m")
    line.settle(_kept(0, "c0", "c0", 1.0))
    seen = line.history()
    seen.clear()
    assert [e.id for e in line.history()] == ["0000"]


def test_a_settled_experiment_leaves_the_pending_and_the_count_of_those_in_flight_is_kept() -> None:
    line = KeptLine("m")
    queued = _kept(1, "c1", "c0", 0.9, Status.QUEUED)
    queued.holdout = 0.5
    line.hold(queued, changes.signature("-LR = 1\n+LR = 2\n"))
    [(key, seen, _)] = line.pending()
    assert key == "0001" and seen.holdout is None  # as the agent sees it: never the holdout
    line.begin()
    line.begin()
    line.end()
    assert line.in_flight == 1
    line.settle(queued)
    assert line.pending() == [] and [e.id for e in line.history()] == ["0001"]


def test_recording_holds_the_line_whole_against_other_threads() -> None:
    line, seen = KeptLine("m"), []
    with line.recording():
        reader = threading.Thread(target=lambda: seen.append(len(line.history())))
        reader.start()
        line.settle(_kept(0, "c0", "c0", 1.0))
        reader.join(0.2)
        assert reader.is_alive()  # it waits for the change to be whole
        line.settle(_kept(1, "c1", "c0", 0.9))
    reader.join(5)
    assert seen == [2]
