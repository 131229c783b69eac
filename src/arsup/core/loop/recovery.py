"""Opening a session: the repo checked, a killed arsup's half-done work finished, the run branch checked out.

Runs once, on the caller's thread, before any other part of the loop starts
(`Engine.prepare`), with the repo lock held: nothing else reads or writes the
journal or the branch meanwhile, so it needs no lock of its own.

Invariants: uncommitted changes that are not arsup's own half-written edit
end the start untouched (GitError); a run a killed arsup left running is
ended before anything else (it could still write files); each experiment
left unfinished ends with a record, and the branch goes back to the last
measured commit; only a descendant of the best that arsup did not commit is
taken for a person's commit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from arsup.config import Config
from arsup.core import disk, journal, manifest, runner, slots, summary
from arsup.core.acceptance import head_of_line
from arsup.core.events import Notice
from arsup.core.experiment import Experiment, Status
from arsup.core.loop.bus import EventBus
from arsup.core.vcs import GitError, branch_name
from arsup.core.workspace import HeldRepo

QUEUED_WHEN_KILLED = "queued, never run: arsup was killed"  # a queued record a restart finds


@dataclass
class Session:
    """What a start found: the line to go on from and what must be measured before any proposal."""

    branch: str
    history: list[Experiment]
    notes: list[str]
    next_id: int
    manifest: manifest.Manifest
    persons_head: str = ""  # a commit a person added to the run branch, measured before anything else
    measure_again: Experiment | None = None  # its run proved nothing (a full disk, a lost cluster): trained first
    earlier: list[Experiment] = field(default_factory=list)  # the other tags' finished experiments, for the agent


class _Opening:
    """One start's recovery: the repo, the journal and the events it says what it did through."""

    def __init__(self, repo: HeldRepo, log: journal.Journal, config: Config, tag: str, bus: EventBus) -> None:
        self.repo, self.vcs, self.journal, self.config, self.tag, self.bus = repo, repo.vcs, log, config, tag, bus
        self.root = repo.root
        self.measure_again: Experiment | None = None

    def open(self, agent: str, reserve: disk.Reserve) -> Session:
        vcs, project = self.vcs, self.config.project
        vcs.head()
        vcs.exclude(journal.OWN_PATHS)
        set_aside = self.journal.set_aside_torn()  # the repo lock is held: nothing else appends
        experiments = self.journal.experiments(self.tag)
        for warning in [*set_aside, *self.journal.warnings]:
            self.bus.notice(warning, "warning")
        if any(e.agent == summary.IMPORTED for e in experiments):
            raise GitError(
                f"tag {self.tag!r} was imported from a results.tsv: it can be browsed (arsup --browse --tag "
                f"{self.tag}) and reported (arsup report --tag {self.tag}), not continued; run with another --tag"
            )
        # The last experiment that reached the work tree: a queued proposal never wrote anything.
        reached = [e for e in experiments if e.status != Status.QUEUED]
        last = reached[-1] if reached and vcs.branch_exists(branch_name(self.tag)) else None
        # Slots leave several experiments unfinished; one slot, at most the last (and proposals queued).
        unfinished = [e for e in experiments if e.status not in Status.FINAL and e is not last] if last else []
        for experiment in [*unfinished, last]:
            if experiment is not None and experiment.status == Status.RUNNING:
                self._end_recorded_runs(experiment)  # before anything else: it could still be writing files
        # Uncommitted changes first, before anything is touched: only arsup's own writes may be undone.
        dirty = self.repo.uncommitted(project)
        own = self._own_writes(last, dirty)
        foreign = [path for path in dirty if path not in own]
        if foreign:
            raise GitError(
                "uncommitted changes in files arsup edits or protects: "
                + ", ".join(foreign)
                + "; commit or stash them first (arsup commits and resets these files)"
            )
        if slots.worktrees(self.root).is_dir():
            vcs.remove_worktrees(slots.worktrees(self.root))  # a killed arsup's slots: all they held is recorded
        if last is not None:
            vcs.start_branch(self.tag)
            for experiment in unfinished:
                self._recover(experiment, set())
            self._recover(last, own)
            experiments = self.journal.experiments(self.tag)
        branch, _ = vcs.start_branch(self.tag)
        history = [e for e in experiments if e.status in Status.FINAL]
        notes = [e["text"] for e in self.journal.events() if e.get("event") == "note" and e.get("tag") == self.tag]
        best = head_of_line(history)
        persons_head = self._persons_head(branch, best) if best is not None and vcs.head() != best.commit else ""
        every = self.journal.experiments()
        session = Session(
            branch, history, notes, self.journal.next_number(every),
            manifest.Manifest.take(self.root, manifest.expand(self.root, project.protected)),
            persons_head, self.measure_again,
            earlier=[e for e in every if e.tag != self.tag and e.status in Status.FINAL],
        )
        results_path = self.root / journal.RESULTS_NAME
        other = journal.other_results_tag(results_path, every, self.tag)
        if other:
            self.bus.notice(
                f"{journal.RESULTS_NAME} held the rows of tag {other}; it now holds {self.tag}'s (one file per run "
                f"branch, as autoresearch keeps it); `arsup rebuild --tag {other}` writes the old rows again",
                "warning",
            )
        journal.write_results(results_path, self.config.metric.name, history)
        self.journal.guard()
        reserve.take()
        self.journal.append("session", tag=self.tag, branch=branch, head=vcs.head(), agent=agent,
                            gpus=slots.devices(self.config.slots, self.config.executor))  # the report's GPU-hours
        return session

    def _persons_head(self, branch: str, best: Experiment) -> str:
        """The run branch's head when a person moved it on from the best (it is measured first), else "".

        Only a descendant of the best that arsup did not commit is a person's.
        A head behind or beside the best (a run, or a person, moved the ref), or
        one of arsup's own attempts (its message starts `arsup NNNN:` and the
        journal records NNNN: a full disk left the branch there), is never
        adopted: the branch goes back on the best, and a head no ref would hold
        stays reachable under refs/arsup/."""
        vcs = self.vcs
        head = vcs.head()
        own = re.match(r"arsup (\d+):", vcs.commit_message(head))
        recorded = {e.id: e for e in self.journal.experiments()}
        kept = ""
        if own and own.group(1) in recorded:
            attempt = recorded[own.group(1)]
            why = f"arsup's own commit of experiment {attempt.id} ({attempt.status}), not a person's"
        elif vcs.is_ancestor(best.commit, head):
            return head
        else:
            why = f"not a descendant of the best, {best.id} ({best.commit[:7]})"
            if not vcs.is_ancestor(head, best.commit):
                vcs.set_ref(self.tag, f"moved-{head[:7]}", head)
                kept = f"; {head[:7]} stays as refs/arsup/{self.tag}/moved-{head[:7]}"
        vcs.move_branch(best.commit)
        self.bus.notice(
            f"the run branch {branch} was on {head[:7]}, {why}: put it back on the best, {best.id}{kept}", "warning",
        )
        return ""

    def _own_writes(self, last: Experiment | None, dirty: list[str]) -> set[str]:
        """The dirty files that hold exactly the bytes arsup was writing when it was killed."""
        if last is None or last.status != Status.PROPOSED:
            return set()
        return {
            path for path in dirty
            if path in last.written and manifest.digest(self.root / path) == last.written[path]
        }

    def _recover(self, last: Experiment, own: set[str]) -> None:
        """Finish what a killed arsup left half done, so the branch and the journal agree again."""
        vcs = self.vcs
        recovered = False
        if last.status == Status.PROPOSED:
            head = vcs.head()
            if head != last.parent and vcs.commit_message(head).startswith(f"arsup {last.id}:"):
                # Killed after the commit (a post-commit hook, say): that commit was never measured.
                vcs.set_ref(self.tag, last.id, head)
                last.commit = head
                vcs.reset_to(last.parent, last.files)
            else:
                vcs.restore(sorted(own), head)
            last.status, last.reason = Status.INVALID, "interrupted before its run"
            self.journal.record(last)
            recovered = True
        elif last.status == Status.QUEUED:  # made ahead, paid for, never started: kept as skipped
            last.status, last.reason = Status.SKIPPED, QUEUED_WHEN_KILLED
            last.finished_at = time.time()
            self.journal.record(last)
            recovered = True
        elif last.status == Status.RUNNING and (why := self.journal.unmeasured().get(last.id)) is not None:
            self._recover_unmeasured(last, why)
        elif last.status == Status.RUNNING:
            last.status, last.reason = Status.CRASH, "interrupted: arsup stopped before the run finished"
            last.finished_at = time.time()
            self.journal.record(last)
            recovered = True
        if last.status in (Status.DISCARD, Status.CRASH) and last.commit != last.parent:
            if vcs.head() == last.commit:
                vcs.reset_to(last.parent, last.files)
                recovered = True
        if recovered:
            self.bus.notice(f"recovered experiment {last.id}: {last.status}, {last.reason}", "warning")

    def _recover_unmeasured(self, last: Experiment, why: str) -> None:
        """A run on a full disk or a lost cluster (`why`) proved nothing about the code: it is measured again
        first (one; any other is skipped, said so). Its commit leaves the branch until then, as a proposal's
        does before it trains."""
        vcs = self.vcs
        if vcs.head() == last.commit and last.commit != last.parent:
            vcs.reset_to(last.parent, last.files)
        if self.measure_again is None and vcs.head() == last.parent:
            last.runs, last.metrics, last.metric, last.metric_std, last.crash_tail = [], {}, None, None, ""
            self.measure_again = last
            self.bus.notice(f"experiment {last.id} was not measured ({why}): it is measured again first")
            return
        last.status, last.reason = Status.SKIPPED, f"not measured ({why})"
        last.finished_at = time.time()
        self.journal.record(last)
        self.bus.notice(f"recovered experiment {last.id}: {last.status}, {last.reason}", "warning")

    def _end_recorded_runs(self, experiment: Experiment) -> None:
        """A run of a killed arsup normally dies with it; one still alive would share the GPU: end it.

        Also what a reaper killed with arsup left under init (``runner.end_recorded``)."""
        for event in self.journal.events():
            if event.get("event") != "run_started" or event.get("experiment") != experiment.id:
                continue
            try:
                pid = int(event["pid"])
                recorded = runner.RunIdentity(
                    pid, int(event.get("pgid", pid)), float(event["create_time"]), str(event.get("token", ""))
                )
            except (KeyError, TypeError, ValueError):
                continue
            ended = runner.end_recorded(recorded, self.config.project.kill_grace)
            if ended:
                self.bus.emit(Notice(
                    f"ended {ended} process(es) of experiment {experiment.id}'s run (pid {event['pid']}), "
                    "left running by an arsup that was killed", "warning",
                ))


def open_session(
    repo: HeldRepo, log: journal.Journal, config: Config, tag: str, agent: str, bus: EventBus, reserve: disk.Reserve,
) -> Session:
    """Recover and check out the run branch, then take the disk's reserve (room for the last lines, should
    the disk fill); raises GitError or JournalError with a message for the user."""
    return _Opening(repo, log, config, tag, bus).open(agent, reserve)

