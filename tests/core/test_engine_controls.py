"""A person's controls on a live loop: approvals by policy, skip, kill, pause, notes, stop."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from arsup import config
from arsup.core import policy
from arsup.core.agents.script import ScriptAgent
from arsup.core.loop import Engine
from arsup.core.events import (
    ApprovalRequested, Event, NoteAdded, RunOutput, SessionEnded, StateChanged, StopAfterRunAsked,
)
from arsup.core.experiment import Status
from arsup.core.journal import Journal
from tests.conftest import TOY_TRAIN, edit, git, write_script

pytestmark = pytest.mark.slow  # each test makes a git repository, most run a real loop on it

SLOW = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"


class Driver:
    """Runs the engine in its thread and hands its approval requests to the test."""

    def __init__(
        self, root: Path, script: Path, approve: str = "auto", max_experiments: int = 0, interactive: bool = False
    ) -> None:
        cfg = config.load(root, {"budget": {"max_experiments": max_experiments}, "policy": {"approve": approve}})
        self.engine = Engine(cfg, root, ScriptAgent(script), tag="ctl")
        self.engine.interactive = interactive
        self.events: list[Event] = []
        self.approvals: queue.Queue[ApprovalRequested] = queue.Queue()
        self.training = threading.Event()
        self.engine.subscribe(self._on_event)
        self.engine.prepare()
        self.thread = self.engine.start()

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, ApprovalRequested):
            self.approvals.put(event)
        if isinstance(event, RunOutput) and "training" in event.lines:
            self.training.set()

    def next_approval(self, kind: str) -> ApprovalRequested:
        request = self.approvals.get(timeout=20)
        assert request.kind == kind
        return request

    def finish(self) -> SessionEnded:
        assert self.engine.wait(30), "the loop did not end"
        end = self.events[-1]
        assert isinstance(end, SessionEnded)
        return end


def test_runs_policy_asks_before_each_run_and_skip_resets(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
    )
    driver = Driver(project, script, approve="runs")
    baseline = driver.next_approval(policy.RUN)
    assert baseline.experiment.is_baseline
    assert not (project / ".arsup" / "runs" / "0001").exists()  # nothing ran before the approval
    baseline.future.set_result(policy.Answer(True))
    driver.next_approval(policy.RUN).future.set_result(policy.Answer(False))
    driver.next_approval(policy.RUN).future.set_result(policy.Answer(True))
    end = driver.finish()
    assert end.reason == "the agent has no more ideas"
    statuses = [(e.hypothesis, e.status) for e in driver.engine.history]
    assert statuses == [("baseline", Status.KEEP), ("higher LR", Status.SKIPPED), ("wider", Status.DISCARD)]
    assert driver.engine.history[1].reason == "skipped by user"
    assert git(project, "rev-parse", "HEAD") == driver.engine.history[0].commit
    assert len((project / "results.tsv").read_text().splitlines()) == 3  # header + 2 trained
    assert git(project, "status", "--porcelain") == ""


def test_edits_policy_shows_the_diff_and_commits_the_persons_version(project: Path) -> None:
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.03")})
    driver = Driver(project, script, approve="edits")
    request = driver.next_approval(policy.EDIT)
    assert "+LR = 0.03" in request.experiment.diff and "LR = 0.03" in request.files["train.py"]
    request.future.set_result(policy.Answer(True, files={"train.py": request.files["train.py"].replace("0.03", "0.003")}))
    driver.finish()
    tried = driver.engine.history[1]
    assert tried.status == Status.KEEP and tried.agent_data["edited_by_user"]
    assert "LR = 0.003" in (project / "train.py").read_text()
    assert "+LR = 0.003" in tried.diff


def test_keeps_policy_can_reject_a_keep(project: Path) -> None:
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    driver = Driver(project, script, approve="keeps")
    request = driver.next_approval(policy.KEEP)
    assert request.experiment.metric is not None
    request.future.set_result(policy.Answer(False))
    driver.finish()
    rejected = driver.engine.history[1]
    assert rejected.status == Status.DISCARD and rejected.reason.startswith("keep rejected by user")
    assert "LR = 0.0001" in (project / "train.py").read_text()


def test_changing_the_policy_releases_a_waiting_approval(project: Path) -> None:
    driver = Driver(project, write_script(project), approve="runs")
    driver.next_approval(policy.RUN)
    driver.engine.set_policy("auto")
    driver.finish()
    assert [e.status for e in driver.engine.history] == [Status.KEEP]


def test_stop_during_an_approval_never_hangs(project: Path) -> None:
    script = write_script(project, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    driver = Driver(project, script, approve="runs")
    driver.next_approval(policy.RUN).future.set_result(policy.Answer(True))
    request = driver.next_approval(policy.RUN)
    started = time.monotonic()
    driver.engine.stop()
    end = driver.finish()
    assert time.monotonic() - started < 2 and end.reason == "stopped by user"
    assert request.future.cancelled()
    assert driver.engine.history[-1].status == Status.SKIPPED
    assert git(project, "status", "--porcelain") == "" and "LR = 0.0001" in (project / "train.py").read_text()


def test_kill_crashes_the_run_and_the_loop_goes_on(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "slow", "files": {"train.py": SLOW}},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
    )
    driver = Driver(project, script)
    assert driver.training.wait(20)
    driver.engine.kill()
    end = driver.finish()
    assert end.reason == "the agent has no more ideas"
    killed = driver.engine.history[1]
    assert (killed.status, killed.reason) == (Status.CRASH, "killed by user")
    assert driver.engine.history[2].status == Status.DISCARD


def test_pause_waits_after_the_step_and_resume_goes_on(project: Path) -> None:
    script = write_script(project, {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")})
    driver = Driver(project, script, approve="runs")
    baseline = driver.next_approval(policy.RUN)
    driver.engine.pause()
    baseline.future.set_result(policy.Answer(True))
    deadline = time.monotonic() + 20
    while not any(isinstance(e, StateChanged) and e.state == "paused" for e in driver.events):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [e.status for e in driver.engine.history] == [Status.KEEP]
    assert driver.approvals.empty()
    driver.engine.resume()
    driver.next_approval(policy.RUN).future.set_result(policy.Answer(True))
    driver.finish()
    assert [e.status for e in driver.engine.history] == [Status.KEEP, Status.DISCARD]


def test_stop_after_run_finishes_the_experiment(project: Path) -> None:
    script = write_script(
        project,
        {"hypothesis": "slow-ish", "files": {"train.py": TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(0.5)\n"}},
        {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")},
    )
    driver = Driver(project, script)
    assert driver.training.wait(20)
    driver.engine.stop_after_run()
    end = driver.finish()
    assert end.reason == "stopped after the run, as asked"
    assert any(isinstance(e, StopAfterRunAsked) for e in driver.events)  # said to every screen until it ends
    assert [e.hypothesis for e in driver.engine.history] == ["baseline", "slow-ish", "wider"]
    assert driver.engine.history[1].status in (Status.KEEP, Status.DISCARD)
    queued = driver.engine.history[2]  # proposed while slow-ish trained: recorded, never run
    assert (queued.status, queued.reason) == (Status.SKIPPED, "queued, never run: stopped after the run, as asked")


def test_notes_reach_the_agent_and_survive_a_restart(project: Path) -> None:
    script = write_script(project, {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")})
    driver = Driver(project, script, approve="runs")
    driver.next_approval(policy.RUN)
    driver.engine.add_note("try   a smaller model")
    driver.engine.stop()
    driver.finish()
    notes = [e["text"] for e in Journal(project).events() if e["event"] == "note"]
    assert notes == ["try a smaller model"]
    assert NoteAdded("try a smaller model") in driver.events  # waiting on screens until a prompt has it
    again = Driver(project, script)
    again.finish()
    assert again.engine.notes == ["try a smaller model"]
    assert NoteAdded("try a smaller model", read=True) in again.events  # the restart says it was read
    assert [e.status for e in again.engine.history] == [Status.SKIPPED, Status.KEEP, Status.DISCARD]


def test_editing_program_md_during_the_loop_is_noticed_and_used(project: Path) -> None:
    script = write_script(project, {"hypothesis": "wider", "edits": edit("WIDTH = 64", "WIDTH = 65")})
    driver = Driver(project, script, approve="runs")
    driver.next_approval(policy.RUN).future.set_result(policy.Answer(True))
    request = driver.next_approval(policy.RUN)
    tmp = project / "program.md.tmp"
    tmp.write_text("New direction: try smaller models.\n")
    tmp.replace(project / "program.md")  # how editors save
    deadline = time.monotonic() + 10
    while not any("instructions reloaded" in getattr(e, "text", "") for e in driver.events):
        assert time.monotonic() < deadline, "no reload notice"
        time.sleep(0.05)
    request.future.set_result(policy.Answer(True))
    driver.finish()
    assert "New direction" in driver.engine.instructions()


def _three_crashes(project: Path) -> Path:
    broken = [edit("WIDTH = 64", f"WIDTH = {64 + n}\nraise SystemExit({n})") for n in (1, 2, 3)]
    return write_script(
        project,
        *({"hypothesis": f"break {n}", "edits": block} for n, block in enumerate(broken, 1)),
        {"hypothesis": "fine", "edits": edit("WIDTH = 64", "WIDTH = 70")},
    )


def test_crashes_in_a_row_stop_a_headless_loop(project: Path) -> None:
    engine = Engine(config.load(project), project, ScriptAgent(_three_crashes(project)), tag="ctl")
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.prepare()
    engine.run()
    assert [e.status for e in engine.history] == ["keep", "crash", "crash", "crash", "skipped"]
    assert engine.history[-1].reason.startswith("queued, never run: 3 crashes in a row")  # made meanwhile
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert end.reason.startswith("3 crashes in a row (the last: exit code 3); check the training script")


def test_crashes_in_a_row_pause_a_watched_loop_until_resumed(project: Path) -> None:
    driver = Driver(project, _three_crashes(project), interactive=True)
    deadline = time.monotonic() + 30
    while not any(isinstance(e, StateChanged) and e.state == "paused" for e in driver.events):
        assert time.monotonic() < deadline, "never paused"
        time.sleep(0.05)
    assert len(driver.engine.history) == 4
    assert any("3 crashes in a row" in getattr(e, "text", "") and "paused" in e.text for e in driver.events)
    driver.engine.resume()
    driver.finish()
    assert [e.status for e in driver.engine.history] == ["keep", "crash", "crash", "crash", "discard"]
