"""How an experiment ends: the journal, then results.tsv, then the reset, so a kill between steps is recoverable.

Called on the loop thread and on slot threads; everything it changes (the
run branch, the record, results.tsv, the kept line) changes under the kept
line's lock, `line.recording()`, so slots finish experiments, and move the
kept line, one at a time. The agent learns of each experiment afterwards, on
its own thread (`Proposer.observe`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from arsup.config import Config
from arsup.core import journal, slots
from arsup.core.agents.base import Proposal
from arsup.core.events import ExperimentFinished
from arsup.core.experiment import Experiment, Status, Verdict
from arsup.core.loop.bus import EventBus
from arsup.core.loop.integrity import RunGuard
from arsup.core.loop.line import KeptLine
from arsup.core.loop.numbering import MAX_HYPOTHESIS_CHARS, Numbering
from arsup.core.loop.planning import Snapshot
from arsup.core.loop.proposer import Prepared, Proposer
from arsup.core.slots import Slot
from arsup.core.vcs import Vcs


class Recorder:
    def __init__(
        self, config: Config, root: Path, log: journal.Journal, line: KeptLine, guard: RunGuard, bus: EventBus,
        proposer: Proposer, numbering: Numbering, vcs: Callable[[], Vcs],
    ) -> None:
        self.config, self.journal, self.line, self.guard, self.bus = config, log, line, guard, bus
        self.proposer, self.numbering, self._vcs = proposer, numbering, vcs
        self.results_path = root / journal.RESULTS_NAME

    def finish(self, experiment: Experiment, verdict: Verdict, slot: Slot | None = None) -> None:
        """Record how it ended, then put the work tree back on the kept line.

        A keep in a slot's worktree first moves the run branch on (a restart
        finds the commit there and the record still running, and moves it
        back). One that started from a best another slot has replaced since is
        not kept: it was judged against the old best, so its change is carried
        onto the new one and measured again."""
        status, reason = verdict.status, verdict.reason
        vcs = self._vcs()
        with self.line.recording():
            if status == Status.KEEP and slot is not None and slot.worktree:
                if vcs.head() != experiment.parent:
                    status, reason = Status.DISCARD, self._overtaken(experiment, reason)
                else:
                    vcs.fast_forward(experiment.commit)
                    self.guard.branch_moved()
            experiment.status, experiment.reason = status, reason
            experiment.finished_at = time.time()
            self.journal.record(experiment)
            if status in Status.TRAINED:
                journal.append_result(self.results_path, self.config.metric.name, experiment)
            in_place = slot is None or not slot.worktree
            if in_place and status != Status.KEEP and experiment.commit and experiment.commit != experiment.parent:
                vcs.reset_to(experiment.parent, experiment.files)
            self.line.settle(experiment)
            self.bus.emit(ExperimentFinished(experiment.copy(), self.line.best()))
        self.proposer.observe(experiment)

    def unrun(self, prepared: list[Prepared], ended: str) -> None:
        """Proposals made ahead and never run are recorded too: what they cost, and what they were."""
        try:
            for item in prepared:
                self.finish(item.experiment, item.verdict or Verdict(Status.SKIPPED, f"queued, never run: {ended}"))
        except journal.JournalError:
            pass  # the disk that ended the loop; what the journal holds stays consistent

    def _overtaken(self, experiment: Experiment, reason: str) -> str:
        """Queue a candidate that beat a best replaced meanwhile to run again on the new best; say so.

        A candidate carried again keeps its first words (`original`) and counts the rounds (`carried`),
        so its hypothesis says the latest round once instead of growing by one per round."""
        vcs = self._vcs()
        best, parent = self.line.best(), self.line.reference(experiment)
        assert best is not None and parent is not None
        done = Snapshot(vcs, experiment.commit)
        changes = {path: text for path in experiment.files if (text := done.text(path)) is not None}
        times = experiment.agent_data.get("carried", 0) + 1
        original = experiment.agent_data.get("original", experiment.hypothesis)
        again = self.numbering.new(
            slots.carried_hypothesis(original, times, parent.id, best.id, MAX_HYPOTHESIS_CHARS), experiment.agent,
            parent=parent.commit,
        )
        again.made_for = parent.id
        again.agent_data = {"again_of": experiment.id, "carried": times, "original": original}
        self.proposer.journal_queued(again)
        proposal = Proposal(again.hypothesis, files=changes)
        self.proposer.push(Prepared(again, proposal, parent, Snapshot(vcs, parent.commit), changes, again=True))
        return f"{reason}; but {best.id} was kept meanwhile: carried onto it as {again.id}"
