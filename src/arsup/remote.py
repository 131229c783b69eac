"""The commands that talk to a running loop: status, approve, skip, kill, pause, resume, note, policy, stop.

Each attaches to the loop's control socket (`core/service.py`), reads the
snapshot, acts, and leaves; the loop never notices a client come or go. Every
screen action is one of these, so a phone over SSH or a script can do what
the screen does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from arsup.core.events import LoopState
from arsup.core.experiment import Status
from arsup.core.service import ControlClient, LoopNotRunning
from arsup.output import describe_question, waiting_line
from arsup.view import SessionView

EXIT_OK, EXIT_REFUSED, EXIT_NO_LOOP = 0, 1, 3


def status_lines(view: SessionView, loop_pid: int) -> list[str]:
    """`arsup status`: the loop, the state, the question waiting, the counts and the best."""
    if not view.branch:
        return [f"arsup: a loop (pid {loop_pid}) runs here; it is still starting"]
    out = [
        f"arsup: loop pid {loop_pid} on {view.branch} in {view.project}",
        f"agent {view.agent}, metric {view.metric} ({view.goal})",
    ]
    detail = f" ({view.detail})" if view.detail else ""
    out.append(f"state: {view.state}{detail}")
    if view.paused and view.state != LoopState.PAUSED:
        out.append("pause asked: the loop pauses after the current step")
    if view.stopping_after_run and view.ended is None:
        out.append("stop asked: the loop ends after the experiments under way")
    for number, note in enumerate(view.notes):
        waiting = " (waiting: the agent reads it from its next proposal)" if number >= view.notes_read else ""
        out.append(f"note: {note}{waiting}")
    for slot, experiment in sorted(view.slots.items()):  # one line per busy slot
        where = f" [{slot}]" if len(view.slots) > 1 else ""
        out.append(f"running{where}: {experiment.id} {' '.join(experiment.hypothesis.split())[:100]}")
    if view.pending is not None:
        out.append(waiting_line(view.pending))
    counts = view.counts()
    out.append(
        f"experiments: {len(view.history)} ({'the baseline, ' if view.baseline else ''}{counts[Status.KEEP]} kept, "
        f"{counts[Status.DISCARD]} discarded, {counts[Status.CRASH]} crashed)"
    )
    best = view.best
    if best is not None and best.metric is not None:
        out.append(f"best: {best.id} {view.metric} {best.metric:.6f} at {best.commit[:7]}")
    if view.ended is not None:
        out.append(f"ended: {view.ended.reason}")
    return out


def run_command(root: Path, command: str, text: str = "", out: TextIO = sys.stdout) -> int:
    """Carry out one command on the loop in `root`; the exit code (3: no loop runs there)."""
    client = ControlClient(root)
    view = SessionView()
    try:
        for event in client.connect():
            view.apply(event)
    except LoopNotRunning as exc:
        print(f"arsup: {exc}", file=out)
        return EXIT_NO_LOOP
    try:
        return _act(client, view, command, text, out)
    finally:
        client.close()


def _act(client: ControlClient, view: SessionView, command: str, text: str, out: TextIO) -> int:
    if command == "status":
        print("\n".join(status_lines(view, client.loop_pid)), file=out)
        return EXIT_OK
    if command in ("approve", "skip"):
        question = view.pending
        if question is None:
            print("arsup: the loop waits for no answer now", file=out)
            return EXIT_REFUSED
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
