"""The control socket: a snapshot then the live stream, controls from any client, nothing a client does hurts the loop."""

from __future__ import annotations

import queue
import socket
import stat
import time
from pathlib import Path

import pytest

from arsup import config
from arsup.core.agents.external import ExternalAgent
from arsup.core.agents.script import ScriptAgent
from arsup.core.loop import Engine
from arsup.core.events import ApprovalRequested, Event, ExperimentFinished, QuestionClosed, SessionEnded, SessionStarted
from arsup.core.experiment import Status
from arsup.core.policy import Answer
from arsup.core.service import ControlClient, ControlRefused, ControlServer, LoopNotRunning, Replay, socket_path
from tests.conftest import TOY_TRAIN, make_project, write_script

SLOW = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"


class Loop:
    """A served engine in this process, asking before each run."""

    def __init__(self, root: Path, *proposals: dict, approve: str = "runs") -> None:
        cfg = config.load(root, {"policy": {"approve": approve}, "acceptance": {"mode": "greedy"}})
        self.engine = Engine(cfg, root, ScriptAgent(write_script(root, *proposals)), tag="svc")
        self.server = ControlServer(self.engine, root)
        self.engine.subscribe(self.server)
        self.engine.prepare()
        self.server.start()
        self.engine.start()

    def close(self) -> None:
        self.engine.stop()
        assert self.engine.wait(30)
        self.server.stop()


class Attached:
    """A client whose live events land in a queue."""

    def __init__(self, root: Path) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.client = ControlClient(root, self.events.put)
        self.snapshot = self.client.connect()
        self.client.start()

    def next(self, kind: type, timeout: float = 20) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(event, kind):
                return event


@pytest.fixture
def loop(project: Path):
    served = Loop(project, {"hypothesis": "slow", "files": {"train.py": SLOW}})
    yield served
    served.close()


@pytest.mark.slow
def test_the_socket_is_for_its_owner_only(project: Path, loop: Loop) -> None:
    mode = socket_path(project).stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest.mark.slow
def test_a_client_gets_the_snapshot_then_the_live_stream(project: Path, loop: Loop) -> None:
    first = Attached(project)
    question = first.next(ApprovalRequested)
    assert question.experiment.is_baseline
    late = Attached(project)  # attaches while the question waits: it is in the snapshot
    assert isinstance(late.snapshot[0], SessionStarted) and late.snapshot[0].policy == "runs"
    waiting = [e for e in late.snapshot if isinstance(e, ApprovalRequested)]
    assert [q.question_id for q in waiting] == [question.question_id]
    assert late.client.loop_pid > 0
    for attached in (first, late):
        attached.client.close()


@pytest.mark.slow
def test_the_first_answer_wins_and_every_client_sees_the_question_close(project: Path, loop: Loop) -> None:
    one, two = Attached(project), Attached(project)
    asked_one, asked_two = one.next(ApprovalRequested), two.next(ApprovalRequested)
    asked_two.future.set_result(Answer(True))  # as a screen does: the answer goes to the loop
    closed = one.next(QuestionClosed)
    assert (closed.question_id, closed.approved) == (asked_one.question_id, True)
    deadline = time.monotonic() + 5
    while not asked_one.future.cancelled():  # the other screen's modal closes
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not one.client.answer(asked_one.question_id, False)  # too late: already answered
    finished = one.next(ExperimentFinished)
    assert finished.experiment.is_baseline and finished.experiment.status == Status.KEEP
    for attached in (one, two):
        attached.client.close()


@pytest.mark.slow
def test_controls_from_a_client_reach_the_loop(project: Path, loop: Loop) -> None:
    watcher = Attached(project)
    watcher.client.answer(watcher.next(ApprovalRequested).question_id, True)
    watcher.next(ExperimentFinished)
    watcher.client.add_note("try smaller models")
    watcher.client.set_policy("auto")
    with pytest.raises(ValueError, match="unknown policy"):
        watcher.client.set_policy("sometimes")
    log = project / ".arsup" / "runs" / "0002" / "run.log"
    deadline = time.monotonic() + 20
    while not (log.exists() and "training" in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, "experiment 0002 never trained"
        time.sleep(0.05)
    watcher.client.kill()
    killed = watcher.next(ExperimentFinished).experiment
    assert (killed.status, killed.reason) == (Status.CRASH, "killed by user")
    assert loop.engine.notes == ["try smaller models"] and loop.engine.policy == "auto"
    watcher.client.close()


@pytest.mark.slow
def test_clients_that_vanish_or_stall_never_touch_the_loop(project: Path, loop: Loop) -> None:
    watcher = Attached(project)
    question = watcher.next(ApprovalRequested)
    for _ in range(5):  # rude clients: connect and drop, or never read
        rude = socket.socket(socket.AF_UNIX)
        rude.connect(str(socket_path(project)))
        rude.close()
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(str(socket_path(project)))
    assert watcher.client.answer(question.question_id, True)
    assert watcher.next(ExperimentFinished).experiment.status == Status.KEEP
    stalled.close()
    watcher.client.close()


@pytest.mark.slow
def test_no_loop_is_a_clear_answer(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    with pytest.raises(LoopNotRunning, match="no arsup loop runs in"):
        ControlClient(root).connect()


@pytest.mark.slow
def test_a_deep_project_path_still_serves(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["folder-with-a-long-name"] * 6, "repo")
    root = make_project(deep)
    assert len(str(socket_path(root))) > 108
    served = Loop(root, approve="runs")
    try:
        attached = Attached(root)
        assert attached.next(ApprovalRequested).experiment.is_baseline
        attached.client.close()
    finally:
        served.close()


@pytest.mark.slow
def test_the_session_end_reaches_attached_clients(project: Path) -> None:
    served = Loop(project, approve="auto")
    attached = Attached(project)
    assert served.engine.wait(30)
    served.server.stop()
    ended = [e for e in attached.snapshot if isinstance(e, SessionEnded)]  # it may have ended before we attached
    end = ended[0] if ended else attached.next(SessionEnded)
    assert end.reason == "the agent has no more ideas"


def test_replay_keeps_what_a_view_needs_and_no_more() -> None:
    from arsup.core.events import AgentText, ExperimentStarted, ProposalQueued, Proposing, RunOutput
    from arsup.core.experiment import Experiment

    def experiment(number: int) -> Experiment:
        return Experiment(f"{number:04d}", "t", "c0", f"idea {number}", "script", started_at=float(number))

    replay = Replay()
    replay.add(SessionStarted("t", "b", "h", 0))
    replay.add(ExperimentStarted(experiment(1), "cpu0"))
    replay.add(ExperimentStarted(experiment(2), "cpu1"))  # another slot, at the same time
    for start in range(0, 2000, 100):
        replay.add(RunOutput("0001", [f"line {i}" for i in range(start, start + 100)], "50%"))
    replay.add(RunOutput("0002", ["other slot"], ""))
    replay.add(Proposing("0003"))  # made while both train
    replay.add(AgentText("0003", "think"))
    replay.add(ProposalQueued(experiment(3)))
    events = replay.events()
    log = [e for e in events if isinstance(e, RunOutput)]
    assert [(e.experiment_id, len(e.lines)) for e in log] == [("0001", 500), ("0002", 1)]
    assert log[0].lines[-1] == "line 1999" and log[0].partial == "50%"
    started = [(e.experiment.id, e.slot) for e in events if isinstance(e, ExperimentStarted)]
    assert started == [("0001", "cpu0"), ("0002", "cpu1")]
    assert [type(e).__name__ for e in events[-3:]] == ["ProposalQueued", "Proposing", "AgentText"]
    replay.add(ExperimentFinished(experiment(1), None))
    assert [e.experiment_id for e in replay.events() if isinstance(e, RunOutput)] == ["0002"]


@pytest.mark.slow
def test_a_control_the_loop_cannot_take_is_an_error(project: Path) -> None:
    served = Loop(project, approve="runs")
    attached = Attached(project)
    attached.client.timeout = 1.0
    served.close()  # the loop is gone; the client does not know yet
    with pytest.raises((ControlRefused, OSError)):
        attached.client.kill()
    attached.client.close()


@pytest.mark.slow
def test_an_external_loop_takes_proposals_from_a_client_and_checks_them(project: Path) -> None:
    cfg = config.load(project, {"acceptance": {"mode": "greedy"}})
    agent = ExternalAgent()
    engine = Engine(cfg, project, agent, tag="ext")
    server = ControlServer(engine, project, agent)
    engine.subscribe(server)
    engine.subscribe(agent)
    engine.prepare()
    server.start()
    engine.start()
    attached = Attached(project)
    try:
        assert attached.next(ExperimentFinished).experiment.is_baseline
        refused = attached.client.propose("cheat", {"prepare.py": "DATA = 'mine'\n"}, timeout=70)
        assert not refused["experiment"] and "prepare.py" in refused["refused"]
        better = TOY_TRAIN.replace("LR = 0.0001", "LR = 0.003")
        taken = attached.client.propose("raise LR", {"train.py": better}, timeout=70)
        assert taken["experiment"] == "0002" and taken["status"] == "queued" and not taken["refused"]
        finished = attached.next(ExperimentFinished).experiment
        assert (finished.id, finished.status) == ("0002", Status.KEEP)
    finally:
        attached.client.close()
        engine.stop()
        assert engine.wait(30)
        server.stop()


@pytest.mark.slow
def test_a_loop_with_its_own_agent_refuses_a_client_proposal(project: Path, loop: Loop) -> None:
    attached = Attached(project)
    with pytest.raises(ControlRefused, match='only a loop with \\[agent\\] kind = "external"'):
        attached.client.propose("mine", {"train.py": "x\n"}, timeout=10)
    attached.client.close()
