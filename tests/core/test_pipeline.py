"""Pipelined proposals: the agent prepares the next experiment while the current one trains."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from arsup.core import policy
from arsup.core.events import ApprovalRequested, Event, ExperimentFinished, ExperimentStarted
from arsup.core.experiment import Status
from arsup.core.pipeline import Pipeline
from tests.conftest import TOY_TRAIN, edit, git, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

# Each run takes a second after printing its metric: long enough for a proposal to be made meanwhile.
SLOW = TOY_TRAIN + "import time\ntime.sleep(1.0)\n"
GREEDY = {"acceptance": {"mode": "greedy"}}
THREE_WIDTHS = [  # three discards, each thought over for 0.3 s: made during the run before it
    {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65"), "think_s": 0.3},
    {"hypothesis": "narrower", "edits": edit("WIDTH = 64", "WIDTH = 63"), "think_s": 0.3},
    {"hypothesis": "much wider", "edits": edit("WIDTH = 64", "WIDTH = 80"), "think_s": 0.3},
]


def _project(tmp_path: Path, train: str = SLOW) -> Path:
    return make_project(tmp_path / "repo", train, **GREEDY)


def _run(engine: Any) -> None:
    engine.start()
    assert engine.wait(60), "the loop did not end"


@pytest.mark.slow
def test_the_next_proposal_is_ready_before_the_run_ends(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = write_script(root, *THREE_WIDTHS)
    engine, _ = make_engine(root, script, **GREEDY)
    _run(engine)
    baseline, *tried = engine.history
    assert [e.status for e in tried] == [Status.DISCARD] * 3
    # The first proposal waits for the baseline's result; every later one was made during the run before it.
    assert tried[0].proposed_at > baseline.finished_at
    for before, after in zip(tried, tried[1:]):
        assert after.proposed_at < before.finished_at, f"{after.id} was proposed after {before.id} ended"
        assert after.parent == baseline.commit and after.made_for == baseline.id


@pytest.mark.slow
def test_a_proposal_made_ahead_is_told_what_is_in_flight(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = write_script(root, *THREE_WIDTHS)
    engine, _ = make_engine(root, script, **GREEDY)
    script_agent, told = engine.agent, []

    class Watching:
        name = script_agent.name

        def propose(self, context: Any) -> Any:
            told.append([(e.id, e.hypothesis) for e in context.in_flight])
            return script_agent.propose(context)

        def observe(self, experiment: Any) -> None:
            script_agent.observe(experiment)

    engine.agent = Watching()
    _run(engine)
    assert [e.status for e in engine.history[1:]] == [Status.DISCARD] * 3
    # The first proposal waits for the baseline's result; each later one is made while the one before trains.
    assert told[:3] == [[], [("0002", "wider")], [("0003", "narrower")]]


@pytest.mark.slow
def test_a_proposal_that_repeats_one_still_training_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path)
    protected = fingerprint(root, ["prepare.py"])
    same = {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")}
    script = write_script(root, same, {**same, "hypothesis": "wider, again"}, {**same, "hypothesis": "once more"})
    engine, _ = make_engine(root, script, **GREEDY)
    _run(engine)
    baseline, first, *again = engine.history
    assert first.status == Status.DISCARD and first.runs
    for refused in again:  # made while the first trained (or was queued), before any result was recorded
        assert refused.status == Status.INVALID and not refused.runs
        assert refused.reason.startswith("this repeats experiment 0002"), refused.reason
    assert_invariants(root, protected)


@pytest.mark.slow
def test_queue_zero_proposes_only_once_the_run_is_over(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = write_script(
        root,
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
        {"hypothesis": "narrower", "edits": edit("WIDTH = 64", "WIDTH = 63")},
    )
    engine, _ = make_engine(root, script, slots={"queue": 0}, **GREEDY)
    _run(engine)
    first, second = engine.history[1:]
    assert second.proposed_at > first.finished_at


@pytest.mark.slow
def test_a_proposal_made_for_an_older_best_is_reapplied_on_the_new_one(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = write_script(
        root,
        {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")},  # kept
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},  # made while the keep trained
    )
    engine, _ = make_engine(root, script, **GREEDY)
    _run(engine)
    baseline, faster, wider = engine.history
    assert faster.status == Status.KEEP
    assert wider.made_for == baseline.id and wider.parent == faster.commit
    assert wider.hypothesis == f"wider (proposed for {baseline.id}, re-applied on {faster.id})"
    committed = git(root, "show", f"{wider.commit}:train.py")
    assert "LR = 0.003" in committed and "WIDTH = 65" in committed  # both changes: the keep is not undone
    removed = [line for line in wider.diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-WIDTH = 64"]
    assert git(root, "rev-parse", "HEAD") == faster.commit and git(root, "status", "--porcelain") == ""


@pytest.mark.slow
def test_a_whole_file_proposal_is_merged_onto_the_new_best(tmp_path: Path) -> None:
    root = _project(tmp_path)
    whole = SLOW.replace('print("training_seconds: 0.1")', 'print("training_seconds: 0.2")')
    script = write_script(
        root,
        {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")},  # kept
        {"hypothesis": "report more time", "files": {"train.py": whole}},  # made for the baseline's text
    )
    engine, _ = make_engine(root, script, **GREEDY)
    _run(engine)
    reported = engine.history[2]
    assert reported.status == Status.DISCARD and "re-applied on" in reported.hypothesis
    committed = git(root, "show", f"{reported.commit}:train.py")
    assert "LR = 0.003" in committed and "training_seconds: 0.2" in committed


@pytest.mark.slow
def test_a_proposal_that_no_longer_applies_is_skipped_and_the_agent_asked_again(tmp_path: Path) -> None:
    root = _project(tmp_path)
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")},  # kept
        {"hypothesis": "other LR", "edits": edit("LR = 0.0001", "LR = 0.002")},  # same line: conflicts
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
    )
    engine, _ = make_engine(root, script, **GREEDY)
    _run(engine)
    statuses = [(e.hypothesis.split(" (")[0], e.status) for e in engine.history]
    assert statuses == [
        ("baseline", Status.KEEP), ("higher LR", Status.KEEP), ("other LR", Status.SKIPPED), ("wider", Status.DISCARD),
    ]
    stale = engine.history[2]
    assert stale.reason.startswith(f"proposed for {engine.history[0].id}; no longer applies on {engine.history[1].id}")
    assert stale.commit == stale.parent  # never committed
    assert_invariants(root, protected)


@pytest.mark.slow
def test_an_edit_is_approved_while_the_run_before_it_trains(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = write_script(
        root,
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
        {"hypothesis": "narrower", "edits": edit("WIDTH = 64", "WIDTH = 63")},
    )
    engine, _ = make_engine(root, script, policy={"approve": "edits"}, **GREEDY)
    running: set[str] = set()
    asked_during: list[tuple[str, frozenset[str]]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, ExperimentStarted):
            running.add(event.experiment.id)
        elif isinstance(event, ExperimentFinished):
            running.discard(event.experiment.id)
        elif isinstance(event, ApprovalRequested) and event.kind == policy.EDIT:
            asked_during.append((event.experiment.id, frozenset(running)))
            threading.Timer(0.05, engine.answer, (event.question_id, True)).start()

    engine.subscribe(on_event)
    _run(engine)
    wider, narrower = engine.history[1:]
    assert [e.status for e in (wider, narrower)] == [Status.DISCARD, Status.DISCARD]
    assert asked_during == [(wider.id, frozenset()), (narrower.id, frozenset({wider.id}))]


@pytest.mark.slow
def test_a_queued_proposal_is_recorded_when_the_loop_stops(tmp_path: Path) -> None:
    root = _project(tmp_path, TOY_TRAIN + "import time\nif WIDTH != 64:\n    time.sleep(30)\n")  # the baseline is quick
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(
        root,
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
        {"hypothesis": "narrower", "edits": edit("WIDTH = 64", "WIDTH = 63")},
    )
    engine, events = make_engine(root, script, acceptance={"mode": "greedy"}, project={"timeout": 60})
    engine.start()
    deadline = time.monotonic() + 60
    while not any(isinstance(e, ExperimentStarted) and e.experiment.id == "0002" for e in events):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the next proposal is made meanwhile
    engine.stop()
    assert engine.wait(30)
    wider, narrower = engine.history[-2:]
    assert wider.hypothesis == "wider" and wider.status == Status.CRASH
    assert (narrower.hypothesis, narrower.status) == ("narrower", Status.SKIPPED)
    assert narrower.reason == "queued, never run: stopped by user"
    assert_invariants(root, protected)


# -- the pipeline on its own ---------------------------------------------------------------


def test_the_pipeline_makes_ahead_only_when_asked_and_keeps_order() -> None:
    made: list[int] = []
    lock = threading.Lock()

    def make() -> int | None:
        with lock:
            made.append(len(made) + 1)
            return made[-1] if made[-1] <= 4 else None

    pipeline = Pipeline(make, depth=2)
    cancel = threading.Event()
    time.sleep(0.1)
    assert made == []  # nothing is made before it is wanted
    assert pipeline.take(cancel) == 1
    time.sleep(0.1)
    assert made == [1]
    pipeline.ahead()
    deadline = time.monotonic() + 5
    while len(made) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert made == [1, 2, 3]  # filled to the depth, no further
    assert [pipeline.take(cancel), pipeline.take(cancel)] == [2, 3]
    assert pipeline.take(cancel) == 4 and pipeline.take(cancel) is None  # then the maker ran dry
    assert pipeline.close() == []


def test_the_pipeline_hands_back_what_was_never_taken_and_raises_the_makers_error() -> None:
    pipeline = Pipeline(lambda: "ready", depth=1)
    pipeline.ahead()
    time.sleep(0.2)
    assert pipeline.close() == ["ready"]

    def broken() -> str:
        raise RuntimeError("agent down")

    failing = Pipeline(broken, depth=0)
    with pytest.raises(RuntimeError, match="agent down"):
        failing.take(threading.Event())
    failing.close()
    stopped = threading.Event()
    stopped.set()
    idle = Pipeline(lambda: None, depth=0)
    assert idle.take(stopped) is None
    assert idle.close() == []


def _two_waiting_takes(pipeline: Pipeline[str]) -> list[str | None]:
    """Two slots asking at once, as two slot threads do."""
    cancel, got = threading.Event(), []
    takers = [threading.Thread(target=lambda: got.append(pipeline.take(cancel))) for _ in range(2)]
    for taker in takers:
        taker.start()
    for taker in takers:
        taker.join(10)
    return got


def test_two_workers_make_two_proposals_at_once_for_two_waiting_slots() -> None:
    both_in = threading.Barrier(2, timeout=5)  # passed only when two makes are under way together

    def make() -> str:
        both_in.wait()
        return threading.current_thread().name

    pipeline = Pipeline(make, depth=0, workers=2)
    got = _two_waiting_takes(pipeline)
    assert sorted(got) == ["arsup-proposer-0", "arsup-proposer-1"]  # one from each thread, neither broke
    pipeline.close()


def test_one_worker_never_makes_two_at_once_and_workers_stay_within_the_depth() -> None:
    lock, under_way, most = threading.Lock(), [0], [0]

    def make() -> str:
        with lock:
            under_way[0] += 1
            most[0] = max(most[0], under_way[0])
        time.sleep(0.2)
        with lock:
            under_way[0] -= 1
        return "made"

    single = Pipeline(make, depth=0)
    assert _two_waiting_takes(single) == ["made", "made"] and most[0] == 1
    single.close()
    most[0] = 0
    three = Pipeline(make, depth=0, workers=3)  # three threads, but only two proposals wanted
    assert _two_waiting_takes(three) == ["made", "made"]
    time.sleep(0.3)
    assert most[0] == 2 and three.close() == []
