"""The night's one loop, for one slot or many: the first items, then each slot takes the next proposal when
its run is over, until one place (`Limits`, a stop, the agent running dry) says why the night ends.

The first items run in the project folder before any proposal: an
experiment to measure again (its run proved nothing), the baseline, a
person's commit on the run branch. Then with one slot the loop thread itself
works the project folder; with several, one thread per slot works its own
worktree (and the project folder holds the kept line only).

`_lock` guards `_ending` and `_failure`, and makes "no end yet, so take one
more" one step across the slots. The first failure of any slot (GitError, a
journal or disk error, an agent that failed, anything unexpected) winds every
slot down and is raised again on the loop thread once they are done, so one
slot's failure ends the night as the single slot's does.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from arsup.config import Config
from arsup.core import disk, slots
from arsup.core.agents.edits import EditError
from arsup.core.events import LoopState, Notice, Paused, Proposing
from arsup.core.experiment import PERSON, Experiment, Status, Verdict
from arsup.core.loop.bus import EventBus
from arsup.core.loop.disk_stop import DiskWatch
from arsup.core.loop.flags import POLL_S, Flags
from arsup.core.loop.limits import NO_MORE_IDEAS, Ending, Limits, Pause
from arsup.core.loop.line import KeptLine
from arsup.core.loop.numbering import Numbering
from arsup.core.loop.planning import EditPlanner, Snapshot
from arsup.core.loop.proposer import Proposer
from arsup.core.loop.recorder import Recorder
from arsup.core.loop.recovery import Session
from arsup.core.loop.running import Running
from arsup.core.loop.trial import Trainer
from arsup.core.monitor import GpuReader
from arsup.core.slots import Slot
from arsup.core.vcs import Vcs

FirstItem = Callable[[Slot], Experiment]


class Scheduler:
    def __init__(
        self, config: Config, bus: EventBus, flags: Flags, line: KeptLine, limits: Limits, numbering: Numbering,
        proposer: Proposer, planner: EditPlanner, trainer: Trainer, recorder: Recorder, running: Running,
        disk: DiskWatch,
    ) -> None:
        self.config, self.bus, self.flags, self.line, self.limits = config, bus, flags, line, limits
        self.numbering, self.proposer, self.planner, self.trainer = numbering, proposer, planner, trainer
        self.recorder, self.running, self.disk = recorder, running, disk
        self._lock = threading.Lock()
        self._ending: Ending | None = None
        self._failure: BaseException | None = None
        self._session: Session | None = None
        self._vcs: Vcs | None = None

    def run(self, session: Session, vcs: Vcs) -> Ending:
        """The night, on the loop thread; what ends it, or the first failure raised."""
        self._session, self._vcs = session, vcs
        self.limits.start_session(time.time())
        reader = GpuReader()
        try:
            ray = self.config.executor.kind == "ray"
            plan = slots.plan(self.config.slots, os.environ, reader.uuids, self.config.executor.runs if ray else 0)
        finally:
            reader.close()
        home_name, home_env = plan[0] if len(plan) == 1 else (slots.HOME, {})
        home = Slot(home_name, vcs.root, vcs, session.manifest, home_env)
        self.running.open([home])
        self.proposer.open(self.config.slots.queue * len(plan), slots=len(plan))
        ended = "the loop ended on an error"
        try:
            ending = self._first_items(home) or self._work([home] if len(plan) == 1 else self._open_slots(plan))
            ended = ending.reason
            return ending
        except Exception as exc:
            if isinstance(exc, disk.DiskFull) or not self.disk.is_full(exc):
                raise
            raise self.disk.stop() from exc  # before the queued proposals are recorded: room first
        finally:
            self.flags.proposals_cancel.set()
            unrun = self.proposer.close()
            self._close_slots(vcs)
            self.recorder.unrun(unrun, ended)

    # -- the first items: in the project folder, before any proposal ------------------------

    def _first_items(self, home: Slot) -> Ending | None:
        while True:
            self._wait_while_paused()
            ending = self._why_end()
            if ending is not None:
                return ending
            if self.disk.is_full():
                raise self.disk.stop()
            item = self._first_item()
            if item is None:
                return None
            ending = self._judged(item(home))
            if ending is not None:
                return ending

    def _first_item(self) -> FirstItem | None:
        session = self._session
        assert session is not None
        if session.measure_again is not None:
            return self._run_again
        if self.line.best() is None:
            return self._run_baseline
        if session.persons_head:
            return self._run_persons_commit
        return None

    def _run_again(self, home: Slot) -> Experiment:
        """The experiment whose run proved nothing (see recovery): its commit back on the branch, trained
        from the start."""
        assert self._session is not None and self._vcs is not None
        experiment, self._session.measure_again = self._session.measure_again, None
        assert experiment is not None
        self.bus.emit(Proposing(experiment.id))
        if experiment.commit != self._vcs.head():
            self._vcs.fast_forward(experiment.commit)
        self.trainer.train(experiment, home)
        return experiment

    def _run_baseline(self, home: Slot) -> Experiment:
        assert self._vcs is not None
        self.bus.emit(Proposing(self.numbering.peek()))
        experiment = self.numbering.new("baseline", "arsup", parent=self._vcs.head())
        experiment.is_baseline = True
        self.trainer.train(experiment, home)
        return experiment

    def _run_persons_commit(self, home: Slot) -> Experiment:
        """A person committed on the run branch: measure it like a baseline before it may count as the best."""
        assert self._session is not None and self._vcs is not None
        vcs, best = self._vcs, self.line.best()
        assert best is not None
        head, self._session.persons_head = self._session.persons_head, ""
        self.bus.emit(Proposing(self.numbering.peek()))
        message = vcs.commit_message(head)
        self.bus.notice(f"the run branch moved to {head[:7]} ({message}) outside arsup; measuring it first")
        experiment = self.numbering.new(f"a person's commit: {message}", PERSON, parent=best.commit)
        experiment.commit, experiment.is_baseline = head, True
        experiment.files = vcs.files_differing(best.commit, head, self.config.project.editable)
        experiment.diff = vcs.diff(best.commit, head)
        self.trainer.train(experiment, home)
        return experiment

    # -- the slots: each takes the next proposal when its run is over --------------------------

    def _open_slots(self, plan: list[tuple[str, dict[str, str]]]) -> list[Slot]:
        assert self._vcs is not None and self._session is not None
        head, digests = self._vcs.head(), self._session.manifest.digests
        opened = [slots.open_worktree(self._vcs, self._vcs.root, name, env, head, digests) for name, env in plan]
        self.running.open(opened)
        names = ", ".join(f"{slot.name} ({slot.env.get('CUDA_VISIBLE_DEVICES') or 'no GPU'})" for slot in opened)
        self.bus.notice(f"{len(opened)} slots: {names}; each trains in its own worktree")
        return opened

    def _work(self, working: list[Slot]) -> Ending:
        """Every slot works until an end is reached; one slot works on this thread, several on their own."""
        if len(working) == 1:
            self._slot_loop(working[0])
        else:
            workers = [
                threading.Thread(target=self._slot_loop, args=(slot,), name=f"arsup-slot-{slot.name}")
                for slot in working
            ]
            for worker in workers:
                worker.start()  # its runs die with it (PR_SET_PDEATHSIG follows the starting thread)
            for worker in workers:
                worker.join()
        if self._failure is not None:
            raise self._failure
        return self._ending or Ending(self.flags.stop_reason if self.flags.stopped.is_set() else "the loop ended")

    def _slot_loop(self, slot: Slot) -> None:
        flags = self.flags
        try:
            while True:
                self._wait_while_paused()
                if self.disk.is_full():
                    raise self.disk.stop()
                with self._lock:
                    ending = self._ending or self._why_end()
                    if ending and not self._ending and self._left_to_others():
                        return  # the budget's last experiments are under way in other slots: they finish them
                    self._ending = ending
                    if self._ending:
                        flags.winding_down.set()
                        return
                    self.line.begin()
                try:
                    experiment = self._run_next(slot, flags.winding_down)
                finally:
                    self.line.end()
                with self._lock:
                    if experiment is not None:
                        self._ending = self._ending or self._judged(experiment)
                    elif flags.stopped.is_set():
                        self._ending = self._ending or Ending(flags.stop_reason)
                    elif self.line.in_flight == 0:  # no other slot can hand a candidate back to run again
                        self._ending = self._ending or Ending(NO_MORE_IDEAS)
                    if self._ending:
                        flags.winding_down.set()
                        return
                if experiment is None:
                    flags.winding_down.wait(POLL_S)
        except Exception as exc:  # the first failure ends the night; the loop thread raises it
            with self._lock:
                self._failure = self._failure or exc
            flags.winding_down.set()
            flags.proposals_cancel.set()
            self.running.kill(f"slot {slot.name} failed: {exc}")

    def _run_next(self, slot: Slot, cancel: threading.Event) -> Experiment | None:
        """Run the next prepared proposal in `slot`; None when the agent has no more ideas or `cancel` is set."""
        assert self._vcs is not None
        prepared = self.proposer.take(not slot.worktree, cancel)
        if prepared is None:
            return None
        experiment = prepared.experiment
        if prepared.verdict is not None:
            self.recorder.finish(experiment, prepared.verdict)
            return experiment
        with self.line.recording():  # the best it starts from: the head of the kept line now
            best = self.line.best()
            head = best.commit if slot.worktree and best is not None else self._vcs.head()
        if slot.worktree:
            slot.vcs.checkout_detached(head)
        experiment.parent = experiment.commit = head
        changes = prepared.changes
        if head != prepared.made_for.commit:  # a keep moved the line on since it was made
            on = best.id if best is not None and best.commit == head else head[:7]
            try:
                changes = self.planner.carry(
                    experiment.id, experiment.hypothesis, prepared.changes, prepared.base, Snapshot(slot.vcs, head),
                    prepared.again,
                )
            except EditError as exc:
                reason = f"proposed for {prepared.made_for.id}; no longer applies on {on}: {exc}"
                self.recorder.finish(experiment, Verdict(Status.SKIPPED, reason))
                return experiment
            if not prepared.again:  # its hypothesis says so already
                experiment.hypothesis += f" (proposed for {prepared.made_for.id}, re-applied on {on})"
        if self.trainer.commit(experiment, changes, slot):
            self.trainer.train(experiment, slot)
        return experiment

    # -- ends and pauses ---------------------------------------------------------------------------

    def _why_end(self) -> Ending | None:
        return self.limits.why_end(self.flags, self.line.in_flight, self.line.spend(self.limits.started_at)["cost_usd"])

    def _left_to_others(self) -> bool:
        spent = self.line.spend(self.limits.started_at)["cost_usd"]
        return self.limits.left_to_those_under_way(self.flags, self.line.in_flight, spent)

    def _judged(self, experiment: Experiment) -> Ending | None:
        """The limits' word on the experiment just finished: an end, or a pause (said, and taken)."""
        said = self.limits.after(experiment, self.line.history(), self.flags.stopped.is_set())
        if isinstance(said, Pause):
            self.flags.paused.set()
            self.bus.emit(Paused())
            self.bus.emit(Notice(said.text, "error"))
            return None
        return said

    def _wait_while_paused(self) -> None:
        if self.flags.paused.is_set():
            self.bus.state(LoopState.PAUSED)
            self.flags.wait_while_paused()

    def _close_slots(self, vcs: Vcs) -> None:
        """Give back the slots' worktrees (what they held is committed and journalled)."""
        opened = self.running.close_worktrees()
        for slot in opened:
            slot.vcs.close()
        if opened:
            try:
                vcs.remove_worktrees(slots.worktrees(vcs.root))
            except Exception as exc:  # the next start removes them; nothing is lost
                self.bus.notice(f"could not remove the slots' worktrees: {exc}", "warning")
