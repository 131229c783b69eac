"""The commands that talk to a running loop: status, approve, skip, kill, pause, resume, note, policy, stop.

Each attaches to the loop's control socket (`core/service.py`), reads the
snapshot, acts, and leaves; the loop never notices a client come or go. Every
screen action is one of these, so a phone over SSH or a script can do what
the screen does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from arsup.core.events import (
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, Status
from arsup.core.service import ControlClient, LoopNotRunning

EXIT_OK, EXIT_REFUSED, EXIT_NO_LOOP = 0, 1, 3
_ASKS = {"edit": "commit the edit of", "run": "train", "keep": "keep"}


def describe_question(question: ApprovalRequested) -> str:
    """One line: what the loop waits for a person to decide."""
    experiment = question.experiment
    what = "the baseline" if experiment.is_baseline else repr(" ".join(experiment.hypothesis.split())[:120])
    return f"{_ASKS.get(question.kind, question.kind)} {experiment.id} ({what})?"


@dataclass
class Snapshot:
    """What the loop's snapshot says, folded for a one-shot command."""

    started: SessionStarted | None = None
    history: list[Experiment] = field(default_factory=list)
    running: Experiment | None = None
    state: StateChanged | None = None
    questions: list[ApprovalRequested] = field(default_factory=list)
    ended: SessionEnded | None = None

    @classmethod
    def fold(cls, events: list[Event]) -> Snapshot:
        snapshot = cls()
        for event in events:
            match event:
                case SessionStarted():
                    snapshot.started, snapshot.history = event, list(event.history)
                case ExperimentStarted():
                    snapshot.running = event.experiment
                case ExperimentFinished():
                    snapshot.history.append(event.experiment)
                    snapshot.running = None
                case StateChanged():
                    snapshot.state = event
                case ApprovalRequested():
                    snapshot.questions.append(event)
                case SessionEnded():
                    snapshot.ended = event
        return snapshot

    def lines(self, loop_pid: int) -> list[str]:
        started = self.started
        if started is None:
            return [f"arsup: a loop (pid {loop_pid}) runs here; it is still starting"]
        out = [
            f"arsup: loop pid {loop_pid} on {started.branch} in {started.project}",
            f"agent {started.agent}, metric {started.metric} ({started.goal})",
        ]
        state = self.state.state if self.state else "starting"
        detail = f" ({self.state.detail})" if self.state and self.state.detail else ""
        out.append(f"state: {state}{detail}")
        if self.running is not None:
            out.append(f"running: {self.running.id} {' '.join(self.running.hypothesis.split())[:100]}")
        for question in self.questions:
            out.append(f"waiting: {describe_question(question)} answer with `arsup approve` or `arsup skip`")
        counts = {status: sum(e.status == status for e in self.history) for status in Status.TRAINED}
        out.append(
            f"experiments: {len(self.history)} ({counts['keep']} keep, {counts['discard']} discard, "
            f"{counts['crash']} crash)"
        )
        kept = [e for e in self.history if e.status == Status.KEEP]
        if kept:
            best = kept[-1]
            out.append(f"best: {best.id} {started.metric} {best.metric:.6f} at {best.commit[:7]}")
        if self.ended is not None:
            out.append(f"ended: {self.ended.reason}")
        return out


def run_command(root: Path, command: str, text: str = "", out: TextIO = sys.stdout) -> int:
    """Carry out one command on the loop in `root`; the exit code (3: no loop runs there)."""
    client = ControlClient(root)
    try:
        snapshot = Snapshot.fold(client.connect())
    except LoopNotRunning as exc:
        print(f"arsup: {exc}", file=out)
        return EXIT_NO_LOOP
    try:
        return _act(client, snapshot, command, text, out)
    finally:
        client.close()


def _act(client: ControlClient, snapshot: Snapshot, command: str, text: str, out: TextIO) -> int:
    if command == "status":
        print("\n".join(snapshot.lines(client.loop_pid)), file=out)
        return EXIT_OK
    if command in ("approve", "skip"):
        if not snapshot.questions:
            print("arsup: the loop waits for no answer now", file=out)
            return EXIT_REFUSED
        question = snapshot.questions[0]
        if not client.answer(question.question_id, command == "approve"):
            print("arsup: that question was answered or withdrawn meanwhile", file=out)
            return EXIT_REFUSED
        verb = "approved" if command == "approve" else "skipped"
        print(f"arsup: {verb}: {describe_question(question)[:-1]}", file=out)
        return EXIT_OK
    controls = {
        "kill": ("kill", {}, "killing the running training (recorded as a crash; the loop goes on)"),
        "pause": ("pause", {}, "pausing after the current step"),
        "resume": ("resume", {}, "resumed"),
        "note": ("note", {"text": text}, f"note for the agent: {text}"),
        "policy": ("policy", {"name": text}, f"policy: {text}"),
        "stop": ("stop", {}, "stopping now: the training is killed and recorded"),
        "stop_after_run": ("stop_after_run", {}, "will stop after this experiment"),
    }
    name, args, said = controls[command]
    reply = client.request(name, **args)
    if not reply["ok"]:
        print(f"arsup: error: {reply['error']}", file=out)
        return EXIT_REFUSED
    print(f"arsup: {said}", file=out)
    return EXIT_OK
