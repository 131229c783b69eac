"""The experiment state machine: propose, apply, commit, train, decide, record, repeat.

The engine talks outward only through events sent to subscribers, and takes
controls inward through its methods (`stop` for now), so headless mode, the
TUI and tests drive it the same way. Every step that can be interrupted waits
on the stop event, so stopping never hangs; every experiment that was
committed ends with a journal record, a results.tsv row and a clean work tree.

What it guarantees the person, whatever the agent or the training does:

* Files it never writes, deletes or restores: anything git ignores or does
  not track (but new files an edit creates), `.git/` (but what a run changed
  there), `.arsup/`, `results.tsv`, `arsup.toml` and the instructions. A
  failed edit puts back exactly the bytes it replaced.
* Protected files are fingerprinted at the start and checked after every
  run; a run that changed one is a crash, said loudly, and the file is
  restored from git. A run cannot change what scores it.
* `.git` (hooks, config, HEAD, the run branch's ref: gitguard) is
  fingerprinted before every run and compared after it, before any git
  command; a run that changed it is a crash and the bytes are put back. A
  tracked editable file is restored whatever the run made of it.
* Only a descendant of the best that arsup did not commit is adopted as a
  person's commit; a branch found anywhere else goes back on the best.
* A restart after a kill finishes what was left half done (the branch back
  on the last measured commit, the record closed) but first refuses to touch
  any uncommitted change it did not make itself.
* A full disk is arsup's problem, never the run's: the loop looks before each
  experiment and after each run, and on a full disk records nothing more but
  which experiments are to be measured again (room kept for that: disk.py),
  then ends with the state folder's error (exit 2).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import statistics
import sys
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from arsup.config import CONFIG_NAME, Config
from arsup.core import acceptance, disk, gitguard, journal, manifest, measure, pruning, runner, sandbox, slots, summary
from arsup.core import changes as changes_
from arsup.core import policy
from arsup.core.agents.base import Agent, AgentContext, Proposal
from arsup.core.agents.edits import EditError
from arsup.core.controls import NOTE_MAX_CHARS
from arsup.core.editing import (
    carry_over,
    decode_text,
    may_edit,
    plan_changes,
    put_back,
    render_changes,
    write_changes,
)
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    LoopState,
    Notice,
    Paused,
    PolicyChanged,
    ProposalQueued,
    Proposing,
    QuestionClosed,
    Resumed,
    RunOutput,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, RunResult, Status, total_usage
from arsup.core.holdout import divergence
from arsup.core.monitor import GpuReader
from arsup.core.pipeline import Pipeline
from arsup.core.slots import Slot
from arsup.core.vcs import GitError, Vcs, branch_name
from arsup.core.watch import FileWatcher
from arsup.core.workspace import HeldRepo

logger = logging.getLogger(__name__)
Subscriber = Callable[[Event], None]
MAX_INVALID_IN_A_ROW = 5
STOPPED_BY_USER = "stopped by user"
KILLED_BY_USER = "killed by user"
STOPPED_AFTER_RUN = "stopped after the run, as asked"
PERSON = "person"  # the agent name of a commit a person made on the run branch
POLL_S = 0.2  # how often waits look at the stop flag
TAMPERED = "protected file modified at run time"  # how a run that changed what scores it ends
GIT_CHANGED = "the run changed"  # how a run that changed `.git` (a hook, config, a ref) ends
NODE_LOST = "node lost"  # how a run on a cluster that lost its host ends: retried once
CLUSTER_GONE = "ray: the Ray cluster at"  # how a run whose whole cluster is gone ends: the loop ends (ray_cluster.GONE)
QUEUED_WHEN_KILLED = "queued, never run: arsup was killed"  # a queued record a restart finds
MAX_HYPOTHESIS_CHARS = 1000  # a runaway reply must not fill the journal, the prompt and the screen


class AgentFailed(Exception):
    """The agent cannot make proposals any more; the loop ends with its reason."""


class Snapshot:
    """A commit's files read through git: a proposal made while a run trains sees the best, not the run's tree."""

    def __init__(self, vcs: Vcs, commit: str) -> None:
        self.vcs, self.commit = vcs, commit
        self._bytes: dict[str, bytes | None] = {}

    def _read(self, path: str) -> bytes | None:
        if path not in self._bytes:
            self._bytes[path] = self.vcs.read_at(self.commit, path)
        return self._bytes[path]

    def text(self, path: str) -> str | None:
        """The text to edit (EditError when it is not UTF-8), None when the commit lacks the file."""
        data = self._read(path)
        return None if data is None else decode_text(path, data)

    def shown(self, path: str) -> str | None:
        """The text as the agent is shown it: undecodable bytes replaced, never refused."""
        data = self._read(path)
        return None if data is None else data.decode("utf-8", errors="replace")


@dataclass
class Prepared:
    """A proposal made ahead: planned (and approved, where the policy asks) against its best, not yet written."""

    experiment: Experiment
    proposal: Proposal
    made_for: Experiment  # the best when it was made: what `changes` were planned against
    base: Snapshot
    changes: dict[str, str] = field(default_factory=dict)
    verdict: tuple[str, str] | None = None  # (status, reason) when it ends before a commit: invalid or skipped
    again: bool = False  # a candidate measured once already, on a best that was replaced meanwhile (slots)


@dataclass
class Budget:
    """When this session stops starting experiments (0 means no limit)."""

    max_experiments: int = 0
    max_hours: float = 0.0
    max_cost_usd: float = 0.0


class Engine:
    def __init__(self, config: Config, root: Path, agent: Agent, tag: str, python: str = sys.executable) -> None:
        self.config = config
        self.root = root.resolve()
        self.agent = agent
        self.tag = tag
        self.python = python
        self.budget = Budget(config.budget.max_experiments, config.budget.max_hours, config.budget.max_cost_usd)
        self.journal = journal.Journal(self.root, log_warnings=False)  # said as notices, once
        self.results_path = self.root / journal.RESULTS_NAME
        self.history: list[Experiment] = []  # this tag's finished experiments, oldest first
        self.branch = ""
        self._subscribers: list[Subscriber] = []
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._run_lock = threading.Lock()
        self._slots: list[Slot] = []  # where experiments train now; the first is the project folder itself
        self._recording = threading.RLock()  # slots finish experiments, and move the kept line, one at a time
        self._winding_down = threading.Event()  # slots take no new experiment (a stop, or an end reached)
        self._ending: tuple[str, bool] | None = None  # why the slots wind down
        self._in_flight = 0  # experiments started by slots and not finished
        self._invalid_in_a_row = 0
        self._crashes_in_a_row = 0
        self._circling_seen = ""  # the last experiment of a streak already paused for
        # Proposed, not finished (queued or training): id -> (the experiment as the agent sees it, what it sets).
        self._pending: dict[str, tuple[Experiment, changes_.Signature]] = {}
        self._thread: threading.Thread | None = None
        self._repo: HeldRepo | None = None
        self._next_id = 0
        self.policy = config.policy.approve
        self.notes: list[str] = []  # a person's notes to the agent, in every prompt from now on
        self._paused = threading.Event()
        self._stop_after_run = threading.Event()
        project = config.project
        # Paths no edit may touch, whatever the editable globs say.
        self.reserved = [
            journal.STATE_DIR, f"{journal.STATE_DIR}/*", journal.RESULTS_NAME, CONFIG_NAME, project.instructions,
        ]
        self._manifest = manifest.Manifest(self.root, {})
        self._unmeasured_head = ""  # a commit a person added to the run branch, measured before anything else
        self._fatal = ""  # why the loop must end after the current experiment
        self._reserve = disk.Reserve(self.journal.dir)  # room for the last lines, should the disk fill
        self._disk_full: disk.DiskFull | None = None  # why the loop ends, once the disk is found full
        self._state_error: journal.JournalError | None = None  # a slot's, raised when the slots are done
        self._measure_again: Experiment | None = None  # its run proved nothing (a full disk, a lost cluster): trained first
        self._stop_reason = STOPPED_BY_USER  # what a stop is recorded as (a person, or a signal)
        self.interactive = False  # a person watches (the screen): pause and ask where headless would stop
        self._questions: dict[str, Future[policy.Answer]] = {}  # open approvals by id, for any client
        self._question_count = 0
        self._emitting = threading.RLock()  # the loop and the proposer both emit; subscribers see one order
        self._ids = threading.Lock()
        self._pipeline: Pipeline[Prepared] | None = None
        self._proposer_vcs: Vcs | None = None  # the proposer thread's own git (GitPython is not thread-safe)
        self._git_prints: dict[str, gitguard.GitPrint] = {}  # slot name -> its `.git` before the run under way
        self._git_seen: dict[str, list[str]] = {}  # slot name -> shared `.git` changes found while its run trained
        self._proposals_cancel = threading.Event()  # set when the loop stops: a proposal under way ends
        self._unobserved: deque[Experiment] = deque()  # finished, not yet shown to the agent (its thread does)
        self._waiting_for_proposal = False  # the loop has nothing to run until the proposer delivers
        self._session_started_at = 0.0
        self._trained_this_session = 0

    # -- outward -----------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def say(self, notice: Notice) -> None:
        """A notice from a helper of the loop (a notification hook) to every subscriber."""
        self._emit(notice)

    def _emit(self, event: Event) -> None:
        with self._emitting:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken display must not stop the research
                    logger.exception("a subscriber failed on %s", type(event).__name__)

    # -- inward --------------------------------------------------------------------

    def stop(self, reason: str = STOPPED_BY_USER) -> None:
        """Stop now: the running training is killed and recorded with `reason`; no new experiment starts."""
        if not self._stop.is_set():
            self._stop_reason = reason
        self._stop.set()
        self._proposals_cancel.set()
        self._winding_down.set()
        self._kill_runs(self._stop_reason)

    def stop_after_run(self) -> None:
        """Let the current experiment finish, then end the loop."""
        self._stop_after_run.set()
        self._emit(Notice("will stop after this experiment"))

    def kill(self) -> None:
        """Kill the running training (every slot's); it is recorded as a crash and the loop goes on."""
        self._kill_runs(KILLED_BY_USER)

    def _kill_runs(self, reason: str) -> None:
        with self._run_lock:
            for slot in self._slots:
                if slot.run is not None:
                    slot.run.kill(reason)

    def pause(self) -> None:
        """Finish the current step, then wait until resumed."""
        self._paused.set()
        self._emit(Paused())

    def resume(self) -> None:
        self._paused.clear()
        self._emit(Resumed())

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def set_policy(self, name: str) -> None:
        if name not in policy.POLICIES:
            raise ValueError(f"unknown policy {name!r}; one of {', '.join(policy.POLICIES)}")
        self.policy = name
        self.journal.append("policy", tag=self.tag, policy=name)
        self._emit(PolicyChanged(name))

    def add_note(self, text: str) -> None:
        """A note from the person to the agent; it goes into every prompt from the next one on.

        Capped at NOTE_MAX_CHARS as the agent reads it (spaces collapsed): a longer one is a
        ValueError, before anything is recorded, so the screen and the socket refuse it alike."""
        text = " ".join(text.split())
        if len(text) > NOTE_MAX_CHARS:
            raise ValueError(f"a note is at most {NOTE_MAX_CHARS:,} characters (this one has {len(text):,}); "
                             "shorten it")
        if text:
            self.notes.append(text)
            self.journal.append("note", tag=self.tag, text=text)
            self._emit(Notice(f"note for the agent: {text}"))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _state(self, state: LoopState, detail: str = "") -> None:
        self._emit(StateChanged(state, detail))

    def _wait_while_paused(self) -> None:
        if self._paused.is_set():
            self._state(LoopState.PAUSED)
            while self._paused.is_set() and not self._stop.is_set():
                self._stop.wait(POLL_S)

    def _ask(
        self, kind: str, experiment: Experiment, files: dict[str, str] | None = None,
        cancel: threading.Event | None = None, announce: bool = True,
    ) -> policy.Answer | None:
        """Approve by policy, or wait for a person; None when the loop stops meanwhile.

        A question about a queued proposal is asked while a run trains: it
        does not `announce` a state change (the loop is still training)."""
        if not policy.asks(self.policy, kind):
            return policy.Answer(True)
        cancel = cancel or self._stop
        future: Future[policy.Answer] = Future()
        with self._ids:
            self._question_count += 1
            question = f"q{self._question_count}"
        self._questions[question] = future
        if announce:
            self._state(LoopState.AWAITING_APPROVAL, kind)
        self._emit(ApprovalRequested(kind, experiment.copy(), future, dict(files or {}), question))
        answer: policy.Answer | None = None
        try:
            while not cancel.is_set():
                try:
                    answer = future.result(timeout=POLL_S)
                    return answer
                except FutureTimeout:
                    if not policy.asks(self.policy, kind):  # the policy changed while waiting
                        answer = policy.Answer(True)
                        return answer
                except CancelledError:  # withdrawn by a client
                    return None
            return None
        finally:
            future.cancel()
            self._questions.pop(question, None)
            self._emit(QuestionClosed(question, None if answer is None else answer.approved))

    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        """Answer an open question (from any client); False when it is no longer open."""
        future = self._questions.get(question_id)
        return future is not None and policy.settle(future, policy.Answer(approved, files))

    # -- lifecycle -------------------------------------------------------------------

    @property
    def vcs(self) -> Vcs:
        if self._repo is None:
            raise RuntimeError("Engine.prepare() must run first")
        return self._repo.vcs

    def prepare(self) -> None:
        """Check the repo, recover an interrupted experiment, check out the run branch.

        Raises GitError, RepoBusy or JournalError (DiskFull: nothing is
        touched on a full disk, a recovery least of all) with a message for the
        user; runs in the caller's thread so a bad repo is reported before
        anything starts.
        """
        if disk.is_full(self.journal.dir):
            raise self._full_disk_at_start()
        self._repo = HeldRepo(self.root)
        vcs = self._repo.vcs
        try:
            self._prepare_repo(vcs)
        except Exception as exc:
            self.close()
            if isinstance(exc, disk.DiskFull) or not disk.is_full(self.journal.dir, exc):
                raise
            raise self._full_disk_at_start() from exc
        except BaseException:
            self.close()
            raise
        self._emit(SessionStarted(
            self.tag, self.branch, vcs.head(), resumed=len(self.history), project=str(self.root),
            metric=self.config.metric.name, goal=self.config.metric.goal,
            time_budget=self.config.project.time_budget, policy=self.policy, agent=self.agent.name,
            model=self.config.agent.model if self.config.agent.kind == "llm" else "", paused=self.paused,
            pid=os.getpid(), started_at=time.time(), history=[e.copy() for e in self.history],
            holdout_keeps=self.config.holdout.warn_keeps,
        ))
        unsandboxed = sandbox.warning(self.config.sandbox) if self.config.executor.kind == "local" else ""
        if unsandboxed:  # once per session: every run of it goes the same way (the probe is cached)
            self._emit(Notice(unsandboxed, "warning"))

    def _full_disk_at_start(self) -> disk.DiskFull:
        """A start on a full disk: said like the loop's stop, with what is still to be measured again."""
        marked = sorted(self._unmeasured())
        return disk.DiskFull(disk.full_message(self.root, self.journal.dir, disk.free_bytes(self.journal.dir), marked))

    def load_history(self) -> None:
        """The tag's finished experiments from the journal, without git or the lock: for browsing."""
        self.history = [e for e in self.journal.experiments(self.tag) if e.status in Status.FINAL]
        self.branch = branch_name(self.tag)

    def _prepare_repo(self, vcs: Vcs) -> None:
        vcs.head()
        vcs.exclude(journal.OWN_PATHS)
        project = self.config.project
        set_aside = self.journal.set_aside_torn()  # the repo lock is held: nothing else appends
        experiments = self.journal.experiments(self.tag)
        for warning in [*set_aside, *self.journal.warnings]:
            self._emit(Notice(warning, "warning"))
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
        assert self._repo is not None
        dirty = self._repo.uncommitted(project)
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
        self.branch, _ = vcs.start_branch(self.tag)
        self.history = [e for e in experiments if e.status in Status.FINAL]
        self.notes = [e["text"] for e in self.journal.events() if e.get("event") == "note" and e.get("tag") == self.tag]
        self._next_id = self.journal.next_number()
        best = self.best()
        if best is not None and vcs.head() != best.commit:
            self._unmeasured_head = self._persons_head(vcs, best)
        self._manifest = manifest.Manifest.take(self.root, manifest.expand(self.root, project.protected))
        other = journal.other_results_tag(self.results_path, self.journal.experiments(), self.tag)
        if other:
            self._emit(Notice(
                f"{journal.RESULTS_NAME} held the rows of tag {other}; it now holds {self.tag}'s (one file per run "
                f"branch, as autoresearch keeps it); `arsup rebuild --tag {other}` writes the old rows again",
                "warning",
            ))
        journal.write_results(self.results_path, self.config.metric.name, self.history)
        self.journal.guard()
        self._reserve.take()
        self.journal.append("session", tag=self.tag, branch=self.branch, head=vcs.head(), agent=self.agent.name)

    def _persons_head(self, vcs: Vcs, best: Experiment) -> str:
        """The run branch's head when a person moved it on from the best (it is measured first), else "".

        Only a descendant of the best that arsup did not commit is a person's.
        A head behind or beside the best (a run, or a person, moved the ref), or
        one of arsup's own attempts (its message starts `arsup NNNN:` and the
        journal records NNNN: a full disk left the branch there), is never
        adopted: the branch goes back on the best, and a head no ref would hold
        stays reachable under refs/arsup/."""
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
        self._emit(Notice(
            f"the run branch {self.branch} was on {head[:7]}, {why}: put it back on the best, {best.id}{kept}",
            "warning",
        ))
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
        elif last.status == Status.RUNNING and (why := self._unmeasured().get(last.id)) is not None:
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
            self._emit(Notice(f"recovered experiment {last.id}: {last.status}, {last.reason}", "warning"))

    def _unmeasured(self) -> dict[str, str]:
        """Experiments the loop left running when it stopped on a full disk or a lost cluster (and not
        recorded since), with what stopped it."""
        marked: dict[str, str] = {}
        for event in self.journal.events():
            if event.get("event") == "unmeasured":
                marked[str(event.get("experiment"))] = str(event.get("reason") or "")
            elif event.get("event") == "experiment" and isinstance(event.get("experiment"), dict):
                marked.pop(str(event["experiment"].get("id")), None)
        return marked

    def _recover_unmeasured(self, last: Experiment, why: str) -> None:
        """A run on a full disk or a lost cluster (`why`) proved nothing about the code: it is measured again
        first (one; any other is skipped, said so). Its commit leaves the branch until then, as a proposal's
        does before it trains."""
        vcs = self.vcs
        if vcs.head() == last.commit and last.commit != last.parent:
            vcs.reset_to(last.parent, last.files)
        if self._measure_again is None and vcs.head() == last.parent:
            last.runs, last.metrics, last.metric, last.metric_std, last.crash_tail = [], {}, None, None, ""
            self._measure_again = last
            self._emit(Notice(f"experiment {last.id} was not measured ({why}): it is measured again first"))
            return
        last.status, last.reason = Status.SKIPPED, f"not measured ({why})"
        last.finished_at = time.time()
        self.journal.record(last)
        self._emit(Notice(f"recovered experiment {last.id}: {last.status}, {last.reason}", "warning"))

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
                self._emit(Notice(
                    f"ended {ended} process(es) of experiment {experiment.id}'s run (pid {event['pid']}), "
                    "left running by an arsup that was killed", "warning",
                ))

    def close(self) -> None:
        """Let go of the repo: the git object and the lock (run() does this when it ends)."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def start(self) -> threading.Thread:
        """Run the loop in its own thread (the caller keeps its thread for the UI or signals)."""
        self._thread = threading.Thread(target=self.run, name="arsup-engine", daemon=True)
        self._thread.start()
        return self._thread

    def _on_file_change(self, path: Path) -> None:
        if path.name == self.config.project.instructions.rsplit("/", 1)[-1]:
            self._emit(Notice(f"instructions reloaded: the next proposal reads the new {path.name}"))
        else:
            self._emit(Notice(f"{path.name} changed; restart arsup to apply it", "warning"))

    def run(self) -> None:
        """The loop; always ends with one SessionEnded event and the repo object closed."""
        reason, error, state_folder = "", False, False
        watched = [self.root / self.config.project.instructions, self.root / CONFIG_NAME]
        watcher = FileWatcher([p for p in watched if p.parent.is_dir()], self._on_file_change)
        try:
            watcher.start()
            reason, error = self._loop()
        except (GitError, AgentFailed, journal.JournalError) as exc:
            reason, error, state_folder = str(exc), True, isinstance(exc, journal.JournalError)
        except Exception as exc:  # unexpected: say so plainly, keep what was recorded
            reason, error = f"internal error: {exc!r} (the journal holds everything up to here)", True
        finally:
            watcher.stop()
            try:
                self.journal.append("session_end", tag=self.tag, reason=reason, error=error, spend=self.spend())
            except journal.JournalError as exc:  # the disk that failed the loop may fail this too
                reason, error = (reason or str(exc)), True
            self.close()
            self._emit(SessionEnded(reason, error, state_folder))
            self._ended.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the loop has ended. Safe to interrupt with Ctrl-C, unlike Thread.join
        (an interrupted join can leave the thread marked as finished while it runs)."""
        return self._ended.wait(timeout)

    # -- the loop ----------------------------------------------------------------------

    def best(self) -> Experiment | None:
        """The head of the kept line: what the next candidate is built on and must beat."""
        return acceptance.head_of_line(self.history)

    def noise(self) -> acceptance.Noise | None:
        return acceptance.noise(self.history, self.config.metric.name)

    def spend(self, since: float = 0.0) -> dict[str, float]:
        """The agent's token and dollar spend over experiments proposed after `since` (all by default)."""
        return total_usage(e for e in self.history if e.proposed_at >= since)

    def _budget_spent(self, done: int, started_at: float, in_flight: Experiment | None = None) -> str:
        if self.budget.max_experiments and done >= self.budget.max_experiments:
            return f"reached --max-experiments {self.budget.max_experiments}"
        if self.budget.max_hours and time.time() - started_at >= self.budget.max_hours * 3600:
            return f"reached --max-hours {self.budget.max_hours:g}"
        spent = self.spend(started_at)["cost_usd"] + total_usage([in_flight] if in_flight else [])["cost_usd"]
        if self.budget.max_cost_usd and spent >= self.budget.max_cost_usd:
            return f"reached --max-cost {self.budget.max_cost_usd:g} USD"
        return ""

    def _loop(self) -> tuple[str, bool]:
        """The experiments: one at a time, or one per slot at once, while the proposer prepares the next ones."""
        self._session_started_at, self._trained_this_session = time.time(), 0
        reader = GpuReader()
        try:
            ray = self.config.executor.kind == "ray"
            plan = slots.plan(self.config.slots, os.environ, reader.uuids, self.config.executor.runs if ray else 0)
        finally:
            reader.close()
        home_name, home_env = plan[0] if len(plan) == 1 else (slots.HOME, {})
        self._slots = [Slot(home_name, self.root, self.vcs, self._manifest, home_env)]
        self._pipeline = Pipeline(self._prepare_next, self.config.slots.queue * len(plan))
        ended = "the loop ended on an error"
        try:
            ended, error = self._experiments(plan)
            return ended, error
        except Exception as exc:
            if isinstance(exc, disk.DiskFull) or not disk.is_full(self.journal.dir, exc):
                raise
            raise self._stop_on_a_full_disk() from exc  # before the queued proposals are recorded: room first
        finally:
            self._proposals_cancel.set()
            unrun = self._pipeline.close()
            if self._proposer_vcs is not None:
                self._proposer_vcs.close()
            self._close_slots()
            self._record_unrun(unrun, ended)

    def _stop_on_a_full_disk(self, why: str = "") -> disk.DiskFull:
        """The loop ends: the disk has no room for what it records (`why`: the write that failed, if one
        did). Said once, with what fills the disk.

        The reserve is given back first, so the lines that follow have room:
        each experiment recorded as running is marked to be measured again at
        the next start (its run proved nothing about the code), and nothing
        else is touched (no git call on a full disk: the restart does the rest)."""
        if self._disk_full is None:
            free = disk.free_bytes(self.journal.dir)
            self._reserve.release()
            running = [e.id for e in self.journal.experiments(self.tag) if e.status == Status.RUNNING]
            marked = []
            try:
                for experiment_id in running:
                    self.journal.append("unmeasured", tag=self.tag, experiment=experiment_id, reason="a full disk")
                    marked.append(experiment_id)
            except journal.JournalError:
                pass  # not even the reserve's room: the restart finds it interrupted, a crash
            self._disk_full = disk.DiskFull(disk.full_message(self.root, self.journal.dir, free, marked, why))
        return self._disk_full

    def _record_unrun(self, unrun: list[Prepared], ended: str) -> None:
        """Proposals made ahead and never run are recorded too: what they cost, and what they were."""
        try:
            for prepared in unrun:
                status, reason = prepared.verdict or (Status.SKIPPED, f"queued, never run: {ended}")
                self._finish(prepared.experiment, status, reason)
        except journal.JournalError:
            pass  # the disk that ended the loop; what the journal holds stays consistent

    def _more_after_this(self, starting: Experiment) -> bool:
        """Whether another experiment may start after those now under way (so one is prepared)."""
        return not self._stop_after_run.is_set() and not self._budget_spent(
            self._trained_this_session + max(1, self._in_flight), self._session_started_at, starting
        )

    def _why_end(self) -> tuple[str, bool] | None:
        """Why no new experiment may start now, if one of the loop's limits says so."""
        if self._stop.is_set():
            return self._stop_reason, False
        if self._stop_after_run.is_set():
            return STOPPED_AFTER_RUN, False
        spent = self._budget_spent(self._trained_this_session + self._in_flight, self._session_started_at)
        return (spent, False) if spent else None

    def _experiments(self, plan: list[tuple[str, dict[str, str]]]) -> tuple[str, bool]:
        home = self._slots[0]
        while True:
            self._wait_while_paused()
            ended = self._why_end()
            if ended:
                return ended
            if disk.is_full(self.journal.dir):
                raise self._stop_on_a_full_disk()
            best = self.best()
            if self._measure_again is not None:
                experiment = self._run_again(home)
            elif best is None:
                experiment = self._run_baseline(home)
            elif self._unmeasured_head:
                experiment = self._run_persons_commit(best, home)
            elif len(plan) > 1:
                return self._run_slots(plan)
            else:
                experiment = self._take_and_run(home, self._stop)
            if experiment is None:
                return (self._stop_reason if self._stop.is_set() else "the agent has no more ideas"), False
            ended = self._judge(experiment)
            if ended:
                return ended

    def _judge(self, experiment: Experiment) -> tuple[str, bool] | None:
        """After each experiment: an end the loop must take (a fatal error, streaks), else None."""
        if self._fatal:
            return self._fatal, True
        if experiment.status == Status.CRASH and experiment.is_baseline and not self._stop.is_set():
            log = experiment.runs[-1].log_path if experiment.runs else ""
            what = "the baseline" if experiment.agent != PERSON else f"the person's commit {experiment.commit[:7]}"
            if experiment.reason.startswith(NODE_LOST):  # lost twice: the cluster failed, not the training
                said = f"{what}'s run was lost twice ({experiment.reason})"
                return f"{said}; check the cluster's nodes (ray status) and restart arsup. Log: {log}", True
            return f"{what} crashed ({experiment.reason}); fix the training script. Log: {log}", True
        if experiment.status == Status.INVALID:
            self._invalid_in_a_row += 1
            if self._invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
                return f"{MAX_INVALID_IN_A_ROW} invalid edits in a row; check the agent", True
            return None
        self._invalid_in_a_row = 0
        if experiment.status in Status.TRAINED:
            self._trained_this_session += 1
        crashed = experiment.status == Status.CRASH and not (experiment.runs and experiment.runs[-1].killed)
        self._crashes_in_a_row = self._crashes_in_a_row + 1 if crashed else 0
        limit = self.config.watchdog.crashes_in_a_row
        if limit and self._crashes_in_a_row >= limit and not self._stop.is_set():
            self._crashes_in_a_row = 0
            said = f"{limit} crashes in a row (the last: {experiment.reason})"
            if not self.interactive:
                return f"{said}; check the training script and the logs in {self.journal.dir / 'runs'}", True
            self.pause()
            self._emit(Notice(f"{said}: paused; look at the log, then resume or leave a note", "error"))
        return self._going_in_circles()

    def _going_in_circles(self) -> tuple[str, bool] | None:
        """`[watchdog] same_idea`: the agent's last experiments all act on one place; stop, or pause once per
        streak (after a resume, a new streak counts from there)."""
        limit = self.config.watchdog.same_idea
        trail = [e for e in changes_.circling(self.history) if e.id > self._circling_seen]
        if not limit or len(trail) < limit or self._stop.is_set():
            return None
        self._circling_seen = trail[-1].id
        where = changes_.describe_place(changes_.place(trail[-1].diff))
        said = f"{len(trail)} experiments in a row changed the same place ({where}): {', '.join(e.id for e in trail)}"
        if not self.interactive:
            return f"{said}; the agent is going in circles: leave a note (arsup note) and start again", True
        self.pause()
        self._emit(Notice(f"{said}: paused; the agent is going in circles: leave a note, then resume", "error"))
        return None

    # -- slots: several experiments at once, one per GPU -----------------------------------

    def _run_slots(self, plan: list[tuple[str, dict[str, str]]]) -> tuple[str, bool]:
        """One thread per slot, each taking the next proposal when its run is over, until an end is reached."""
        head = self.vcs.head()
        opened = [slots.open_worktree(self.vcs, self.root, name, env, head, self._manifest.digests) for name, env in plan]
        with self._run_lock:
            self._slots += opened
        names = ", ".join(f"{slot.name} ({slot.env.get('CUDA_VISIBLE_DEVICES') or 'no GPU'})" for slot in opened)
        self._emit(Notice(f"{len(opened)} slots: {names}; each trains in its own worktree"))
        workers = [threading.Thread(target=self._slot_loop, args=(slot,), name=f"arsup-slot-{slot.name}") for slot in opened]
        for worker in workers:
            worker.start()  # its runs die with it (PR_SET_PDEATHSIG follows the starting thread)
        for worker in workers:
            worker.join()
        if self._state_error is not None:  # arsup's own files or their disk: the loop ends as with one slot
            raise self._state_error
        return self._ending or ((self._stop_reason, False) if self._stop.is_set() else ("the loop ended", False))

    def _slot_loop(self, slot: Slot) -> None:
        try:
            while True:
                self._wait_while_paused()
                with self._recording:
                    self._ending = self._ending or self._why_end()
                    if self._ending:
                        self._winding_down.set()
                        return
                    self._in_flight += 1
                try:
                    experiment = self._take_and_run(slot, self._winding_down)
                finally:
                    with self._recording:
                        self._in_flight -= 1
                with self._recording:
                    if experiment is not None:
                        self._ending = self._ending or self._judge(experiment)
                    elif self._stop.is_set():
                        self._ending = self._ending or (self._stop_reason, False)
                    elif self._in_flight == 0:  # no other slot can hand a candidate back to run again
                        self._ending = self._ending or ("the agent has no more ideas", False)
                    if self._ending:
                        self._winding_down.set()
                        return
                if experiment is None:
                    self._winding_down.wait(POLL_S)
        except Exception as exc:  # one slot's failure ends the loop as the single slot's would
            with self._recording:
                reason = str(exc) if isinstance(exc, (GitError, AgentFailed, journal.JournalError)) else (
                    f"internal error in slot {slot.name}: {exc!r} (the journal holds everything up to here)"
                )
                self._ending = self._ending or (reason, True)
                if isinstance(exc, journal.JournalError):
                    self._state_error = self._state_error or exc
            self._winding_down.set()
            self._proposals_cancel.set()
            self._kill_runs(reason)

    def _close_slots(self) -> None:
        """Give back the slots' worktrees (what they held is committed and journalled)."""
        with self._run_lock:
            opened, self._slots = [slot for slot in self._slots if slot.worktree], self._slots[:1]
        for slot in opened:
            slot.vcs.close()
        if opened and self._repo is not None:
            try:
                self.vcs.remove_worktrees(slots.worktrees(self.root))
            except Exception as exc:  # the next start removes them; nothing is lost
                self._emit(Notice(f"could not remove the slots' worktrees: {exc}", "warning"))

    def _peek_id(self) -> str:
        return f"{self._next_id:04d}"

    def _new_experiment(self, hypothesis: str, agent: str, parent: str = "") -> Experiment:
        head = parent or self.vcs.head()
        with self._ids:
            experiment_id = self._peek_id()
            self._next_id += 1
        hypothesis = " ".join(hypothesis.split())
        if len(hypothesis) > MAX_HYPOTHESIS_CHARS:
            hypothesis = hypothesis[: MAX_HYPOTHESIS_CHARS - 1] + "…"
        return Experiment(
            id=experiment_id,
            tag=self.tag,
            parent=head,
            commit=head,
            hypothesis=hypothesis,
            agent=agent,
            proposed_at=time.time(),
        )

    def _run_baseline(self, home: Slot) -> Experiment:
        self._emit(Proposing(self._peek_id()))
        experiment = self._new_experiment("baseline", "arsup")
        experiment.is_baseline = True
        self._train(experiment, home)
        return experiment

    def _run_again(self, home: Slot) -> Experiment:
        """The experiment whose run proved nothing (`_recover_unmeasured`): its commit back on the branch,
        trained from the start."""
        experiment, self._measure_again = self._measure_again, None
        assert experiment is not None
        self._emit(Proposing(experiment.id))
        if experiment.commit != self.vcs.head():
            self.vcs.fast_forward(experiment.commit)
        self._train(experiment, home)
        return experiment

    def _run_persons_commit(self, best: Experiment, home: Slot) -> Experiment:
        """A person committed on the run branch: measure it like a baseline before it may count as the best."""
        head, self._unmeasured_head = self._unmeasured_head, ""
        self._emit(Proposing(self._peek_id()))
        message = self.vcs.commit_message(head)
        self._emit(Notice(f"the run branch moved to {head[:7]} ({message}) outside arsup; measuring it first"))
        experiment = self._new_experiment(f"a person's commit: {message}", PERSON)
        experiment.parent, experiment.commit, experiment.is_baseline = best.commit, head, True
        experiment.files = self.vcs.files_differing(best.commit, head, self.config.project.editable)
        experiment.diff = self.vcs.diff(best.commit, head)
        self._train(experiment, home)
        return experiment

    def _editable_files(self, vcs: Vcs) -> list[str]:
        """What the agent is shown: files it may edit that git tracks (never an ignored .env)."""
        project = self.config.project
        candidates = [
            path for path in manifest.expand(self.root, project.editable)
            if may_edit(self.root, path, project.editable, project.protected, self.reserved)
        ]
        tracked = vcs.tracked(candidates)
        return [path for path in candidates if path in tracked]

    def instructions(self) -> str:
        """The research instructions as the next proposal reads them (a person may edit them live)."""
        path = self.root / self.config.project.instructions
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def _context(self, best: Experiment, base: Snapshot) -> AgentContext:
        project = self.config.project
        files = {path: text for path in self._editable_files(base.vcs) if (text := base.shown(path)) is not None}
        history = list(self.history)
        crashed = history[-1] if history and history[-1].status == Status.CRASH else None
        with self._recording:
            in_flight = [queued for queued, _ in self._pending.values()]
        return AgentContext(
            instructions=self.instructions(),
            files=files,
            history=[e.for_agent() for e in history],
            metric=self.config.metric.name,
            goal=self.config.metric.goal,
            time_budget=project.time_budget,
            best=best.for_agent(),
            noise=self.noise(),
            rule=self._rule(),
            circling=[e.for_agent() for e in changes_.circling(history)],
            in_flight=in_flight,
            last_crash_tail=crashed.crash_tail if crashed else "",
            notes=list(self.notes),
            cancel=self._proposals_cancel,
            check=lambda proposal: self._refusal(proposal, base),
            on_text=lambda text: self._emit(AgentText(self._peek_id(), text)),
            notify=lambda message: self._emit(Notice(message, "warning")),
        )

    # -- proposals: made ahead on the proposer thread, run on the loop's ---------------

    def _take_and_run(self, slot: Slot, cancel: threading.Event) -> Experiment | None:
        """Run the next prepared proposal in `slot`; None when the agent has no more ideas or `cancel` is set."""
        assert self._pipeline is not None
        if not slot.worktree:  # with slots, the others are training meanwhile
            self._state(LoopState.PROPOSING, self.agent.name)
            self._waiting_for_proposal = True
        try:
            prepared = self._pipeline.take(cancel)
        finally:
            self._waiting_for_proposal = False
        if prepared is None:
            return None
        experiment = prepared.experiment
        if prepared.verdict is not None:
            self._finish(experiment, *prepared.verdict)
            return experiment
        with self._recording:  # the best it starts from: the head of the kept line now
            best = self.best()
            head = best.commit if slot.worktree and best is not None else self.vcs.head()
        if slot.worktree:
            slot.vcs.checkout_detached(head)
        experiment.parent = experiment.commit = head
        changes = prepared.changes
        if head != prepared.made_for.commit:  # a keep moved the line on since it was made
            on = best.id if best is not None and best.commit == head else head[:7]
            try:
                changes = self._reapply(prepared, Snapshot(slot.vcs, head))
            except EditError as exc:
                reason = f"proposed for {prepared.made_for.id}; no longer applies on {on}: {exc}"
                self._finish(experiment, Status.SKIPPED, reason)
                return experiment
            if not prepared.again:  # its hypothesis says so already
                experiment.hypothesis += f" (proposed for {prepared.made_for.id}, re-applied on {on})"
        if self._commit_edit(experiment, changes, slot):
            self._train(experiment, slot)
        return experiment

    def _prepare_next(self) -> Prepared | None:
        """On the proposer thread: ask the agent, plan the edit against the best, get it approved; write nothing.

        The agent is called from here only (observations too), so it never
        sees two calls at once."""
        cancel = self._proposals_cancel
        while self._paused.is_set() and not cancel.is_set():  # a pause spends no tokens
            cancel.wait(POLL_S)
        if cancel.is_set():
            return None
        self._deliver_observations()
        best = self.best()
        if best is None:
            raise AgentFailed("internal: a proposal was asked for before the branch had a best")
        if self._proposer_vcs is None:
            self._proposer_vcs = Vcs(self.root)
        base = Snapshot(self._proposer_vcs, best.commit)
        self._emit(Proposing(self._peek_id()))
        asked_at = time.time()
        try:
            proposal = self.agent.propose(self._context(best, base))
        except Exception as exc:  # the agent cannot go on; nothing was written yet
            raise AgentFailed(f"the {self.agent.name} agent failed: {exc}") from exc
        if proposal is None:
            return None
        experiment = self._new_experiment(proposal.hypothesis, self.agent.name, parent=best.commit)
        experiment.propose_s = round(time.time() - asked_at, 3)
        experiment.agent_data = dict(proposal.meta)
        experiment.made_for = best.id
        self._journal_queued(experiment)
        prepared = Prepared(experiment, proposal, best, base)
        try:
            prepared.changes = self._plan(proposal, base)
        except EditError as exc:
            prepared.verdict = (Status.INVALID, str(exc))
            return prepared
        if policy.asks(self.policy, policy.EDIT):
            self._approve_edit(prepared)
        if prepared.verdict is None:
            with self._recording:  # until it is measured, a proposal that repeats it is refused
                self._pending[experiment.id] = (experiment.for_agent(), self._signature(prepared.changes, base))
            self._emit(ProposalQueued(experiment.copy()))
        return prepared

    def _journal_queued(self, experiment: Experiment) -> None:
        """Record a proposal as soon as it exists, before its turn: a kill -9 meanwhile must not lose its
        hypothesis and what it cost (a restart records it as skipped, as a stop's `_record_unrun` does)."""
        experiment.status = Status.QUEUED
        self.journal.record(experiment)

    def _approve_edit(self, prepared: Prepared) -> None:
        """Show the person the diff against the best it was made for; take their answer or their version."""
        experiment, changes, base = prepared.experiment, prepared.changes, prepared.base
        experiment.diff = changes_.diff_texts({path: base.text(path) for path in changes}, changes, context=3)
        answer = self._ask(
            policy.EDIT, experiment, changes, cancel=self._proposals_cancel, announce=self._waiting_for_proposal
        )
        if answer is None:  # the loop stopped (then it records the proposal as never run) or it was withdrawn
            if not self._proposals_cancel.is_set():
                prepared.verdict = (Status.SKIPPED, "the question was withdrawn")
        elif not answer.approved:
            prepared.verdict = (Status.SKIPPED, "skipped by user")
        elif answer.files is not None and answer.files != changes:
            prepared.proposal = Proposal(experiment.hypothesis, files=answer.files)
            try:
                prepared.changes = self._plan(prepared.proposal, base)
            except EditError as exc:
                prepared.verdict = (Status.INVALID, f"after the person's edit: {exc}")
            experiment.agent_data["edited_by_user"] = True

    def _deliver_observations(self) -> None:
        while self._unobserved:
            experiment = self._unobserved.popleft()
            try:
                self.agent.observe(experiment)
            except Exception as exc:  # the agent's bookkeeping must not lose the experiment
                self._emit(Notice(f"agent {self.agent.name} failed to learn from {experiment.id}: {exc!r}", "warning"))

    def _reapply(self, prepared: Prepared, here: Snapshot) -> dict[str, str]:
        """The proposal's change carried onto the new best hunk by hunk (see `carry_over`), checked again."""
        merged = {
            path: carry_over(path, prepared.base.text(path), text, here.text(path))
            for path, text in prepared.changes.items()
        }
        return self._plan(
            Proposal(prepared.experiment.hypothesis, files=merged), here, repeat=prepared.again, own=prepared.experiment.id,
        )

    def _plan(self, proposal: Proposal, base: Snapshot, repeat: bool = False, own: str = "") -> dict[str, str]:
        """The files the proposal would write on `base`, or EditError saying why the engine refuses it
        (`repeat`: it may set what an earlier experiment set, as a candidate measured again does; `own`: the
        experiment it is, when it is planned again on a new best)."""
        project = self.config.project
        changes = plan_changes(self.root, proposal, project.editable, project.protected, self.reserved, base.text)
        if not changes:
            raise EditError("the edit changes nothing")
        self._check_writable(sorted(changes), base.vcs)
        candidate = self._signature(changes, base)
        if candidate.only_seeds:
            raise EditError(
                "this edit changes only a seed; the supervisor owns seeds (ARSUP_SEED) and repeats runs "
                "with several of them, so a new seed is not an experiment: change something else"
            )
        repeated = None if repeat else changes_.find_repeat(candidate, list(self.history))
        if repeated is not None:
            metric = "crashed" if repeated.metric is None else f"{self.config.metric.name} {repeated.metric:.6f}"
            raise EditError(
                f"this repeats experiment {repeated.id} ({repeated.status}, {metric}: {repeated.hypothesis!r}), "
                f"which set {candidate.describe()}; propose something not tried yet"
            )
        with self._recording:
            pending = list(self._pending.items())
        for other, (queued, signature) in pending:
            if not repeat and other != own and changes_.same_idea(candidate, signature):
                raise EditError(
                    f"this repeats experiment {other} ({queued.hypothesis!r}, not measured yet: it is queued or training), "
                    f"which set {candidate.describe()}; propose something else"
                )
        return changes

    @staticmethod
    def _signature(changes: dict[str, str], base: Snapshot) -> changes_.Signature:
        return changes_.signature(changes_.diff_texts({path: base.text(path) for path in changes}, changes))

    def _check_writable(self, paths: list[str], vcs: Vcs) -> None:
        """Refuse paths a reset could not give back: ignored by git, or there but never committed."""
        ignored = sorted(vcs.ignored(paths))
        if ignored:
            raise EditError(
                f"{', '.join(ignored)}: ignored by git (.gitignore or .git/info/exclude); "
                "arsup never writes a file git ignores. Edit a tracked file instead."
            )
        existing = [path for path in paths if (self.root / path).exists()]
        untracked = sorted(set(existing) - vcs.tracked(existing))
        if untracked:
            raise EditError(
                f"{', '.join(untracked)}: exists but is not tracked by git; arsup edits committed files "
                "and creates new ones, never a file it could not restore."
            )

    def _refusal(self, proposal: Proposal, base: Snapshot) -> str:
        try:
            self._plan(proposal, base)
        except EditError as exc:
            return str(exc)
        return ""

    def _commit_edit(self, experiment: Experiment, changes: dict[str, str], slot: Slot) -> bool:
        """Write and commit an approved edit in the slot, all or nothing; one that cannot be written is invalid."""
        experiment.files = sorted(changes)
        experiment.slot = slot.name
        experiment.written = {
            path: hashlib.sha256(data).hexdigest() for path, data in render_changes(slot.root, changes).items()
        }
        experiment.status = Status.PROPOSED
        self.journal.record(experiment)  # PROPOSED: recovery knows which files, and which bytes, are its own
        try:
            saved = write_changes(slot.root, changes)
        except EditError as exc:  # nothing stays written
            self._finish(experiment, Status.INVALID, str(exc), slot)
            return False
        try:
            experiment.commit = slot.vcs.commit(experiment.files, f"arsup {experiment.id}: {experiment.hypothesis}")
        except Exception as exc:
            put_back(slot.root, saved)
            try:
                slot.vcs.unstage(experiment.files)
            except GitError:
                pass  # nothing was staged (git add itself failed)
            detail = " ".join(str(exc).split())
            self._finish(experiment, Status.INVALID, f"could not commit the edit: {detail}", slot)
            raise GitError(f"committing experiment {experiment.id} failed: {detail}") from exc
        experiment.diff = slot.vcs.diff(experiment.parent, experiment.commit)
        return True

    def _reference(self, experiment: Experiment) -> Experiment | None:
        """What a result is judged against: the kept experiment it started from (with slots, the line may
        have moved on meanwhile), or for a baseline the best so far."""
        if experiment.is_baseline:
            return self.best()
        return next((e for e in reversed(self.history) if e.status == Status.KEEP and e.commit == experiment.parent), None)

    def _train(self, experiment: Experiment, slot: Slot) -> None:
        answer = self._ask(policy.RUN, experiment)
        if answer is None or not answer.approved:
            reason = self._stop_reason if answer is None else "skipped by user"
            self._finish(experiment, Status.SKIPPED, reason, slot)
            return
        experiment.slot = slot.name
        slot.vcs.set_ref(self.tag, experiment.id, experiment.commit)
        run_dir = self.journal.run_dir(experiment.id)
        if experiment.diff:
            (run_dir / "diff.patch").write_text(experiment.diff, encoding="utf-8")
        experiment.status = Status.RUNNING
        experiment.started_at = time.time()
        self.journal.record(experiment)
        self._emit(ExperimentStarted(experiment.copy(), slot.name))
        self._state(LoopState.TRAINING, experiment.id)
        if self._pipeline is not None and self.best() is not None and self._more_after_this(experiment):
            self._pipeline.ahead()  # the agent prepares the next experiment while this one trains
        name, goal, rule = self.config.metric.name, self.config.metric.goal, self._rule()
        head = self._reference(experiment)
        first = range(self.config.acceptance.runs_for_baseline) if experiment.is_baseline else range(1)
        if not self._run_seeds(experiment, run_dir, first, slot):
            return
        if head is None:
            decision = acceptance.Decision(True, "the first result on this branch: the reference to beat")
        elif experiment.agent == PERSON:
            decision = acceptance.Decision(True, "a person's commit on the run branch, measured: the new reference")
        elif rule.mode == "greedy":
            decision = acceptance.decide_greedy(experiment.metric, head.metric, goal, name)  # type: ignore[arg-type]
        else:
            noise = self.noise()
            sigma = noise.sigma if noise else 0.0
            experiment.sigma = sigma
            screened = acceptance.screen(experiment.metric, head.metric, goal, sigma, rule, name)  # type: ignore[arg-type]
            if screened is None:
                if not self._run_seeds(experiment, run_dir, range(1, rule.confirm_runs), slot):
                    return
                screened = acceptance.confirm(
                    acceptance.values_by_seed(experiment, name),
                    acceptance.values_by_seed(head, name),
                    goal,
                    sigma,
                    rule,
                    name,
                )
            decision = screened
        experiment.p_value, experiment.gain_sigma = decision.p_value, decision.gain_sigma
        status, reason = (Status.KEEP if decision.keep else Status.DISCARD), decision.reason
        if decision.keep and not experiment.is_baseline:
            answer = self._ask(policy.KEEP, experiment)
            if answer is None or not answer.approved:
                status = Status.DISCARD
                reason = f"{'not confirmed before the stop' if answer is None else 'keep rejected by user'}: {reason}"
        if status == Status.KEEP and self.config.holdout.enabled and not self._stop.is_set():
            tampered = self._measure_holdout(experiment, run_dir, slot)
            if tampered:
                status, reason = Status.CRASH, f"holdout run: {tampered}"
        self._finish(experiment, status, reason, slot)
        if status == Status.KEEP and self.config.holdout.enabled:
            warning = divergence(self.history, goal, self.config.holdout.diverge_keeps)
            if warning:
                self._emit(Notice(f"holdout: {warning}", "warning"))
        if experiment.is_baseline and experiment.status == Status.KEEP:
            noise = self.noise()
            if noise is not None:
                self._emit(Notice(f"noise floor: {noise.describe()}"))

    def _rule(self) -> acceptance.Rule:
        accept = self.config.acceptance
        return acceptance.Rule(accept.mode, accept.confirm_runs, accept.threshold_sigma, accept.alpha, accept.min_effect)

    def _measure_holdout(self, experiment: Experiment, run_dir: Path, slot: Slot) -> str:
        """Score the kept commit on the holdout (its log stays beside the runs'); the tampering, if it did.

        A holdout run that fails leaves the keep a keep: the decision was the
        validation set's, and the note says why there is no holdout value."""
        record = self._run_once(experiment, run_dir / "holdout.log", self.config.project.seed, slot, holdout=True)
        if record.crash_reason.startswith((TAMPERED, GIT_CHANGED)):
            return record.crash_reason
        name = self.config.holdout.name or self.config.metric.name
        if record.crash_reason or name not in record.metrics:
            experiment.holdout_note = f"holdout run failed: {record.crash_reason or 'no ' + name}"
            self._emit(Notice(f"experiment {experiment.id}: {experiment.holdout_note}", "warning"))
        else:
            experiment.holdout = record.metrics[name]
        return ""

    def _run_seeds(self, experiment: Experiment, run_dir: Path, indexes: range, slot: Slot) -> bool:
        """Run the experiment once per seed index; on a crash, record it and return False."""
        name = self.config.metric.name
        for index in indexes:
            seed = self.config.project.seed + index
            log_name = "run.log" if not experiment.runs else f"run.{len(experiment.runs) + 1}.log"
            self._emit(RunStarted(experiment.id, seed, len(experiment.runs) + 1, time.time()))
            result = self._run_once(experiment, run_dir / log_name, seed, slot)
            if result.crash_reason.startswith(NODE_LOST) and not self._stop.is_set():  # the host, not the code
                lost = (run_dir / log_name).rename(run_dir / f"{log_name}.lost")  # its log stays
                self.journal.append(  # an attempt, not a run of the mean: the journal says it happened
                    "run_lost", tag=self.tag, experiment=experiment.id, seed=seed,
                    reason=result.crash_reason, log=str(lost),
                )
                self._emit(Notice(
                    f"experiment {experiment.id}: {result.crash_reason}; running it again (the lost run's log: {lost})",
                    "warning",
                ))
                self._emit(RunStarted(experiment.id, seed, len(experiment.runs) + 1, time.time()))
                result = self._run_once(experiment, run_dir / log_name, seed, slot)
            if result.crash_reason.startswith(CLUSTER_GONE) and not self._stop.is_set():  # not the code's crash
                self._fatal = result.crash_reason.removeprefix("ray: ")  # the loop ends; the restart measures it
                self.journal.append("unmeasured", tag=self.tag, experiment=experiment.id, reason="a lost Ray cluster")
                return False
            experiment.runs.append(result)
            if result.pruned:  # hopeless, not broken: a discard, and the loop learns from it as such
                self._finish(experiment, Status.DISCARD, result.pruned, slot)
                return False
            if result.crash_reason:
                experiment.metrics = dict(result.metrics)
                repeat = f"run {len(experiment.runs)} (seed {seed}): " if len(experiment.runs) > 1 else ""
                self._finish(experiment, Status.CRASH, repeat + result.crash_reason, slot)
                return False
            good = [run.metrics for run in experiment.runs]
            experiment.metrics = {k: statistics.fmean(m[k] for m in good if k in m) for k in result.metrics}
            values = [m[name] for m in good]
            experiment.metric = statistics.fmean(values)
            experiment.metric_std = statistics.stdev(values) if len(values) > 1 else None
        return True

    def _run_once(
        self, experiment: Experiment, log_path: Path, seed: int, slot: Slot, holdout: bool = False,
    ) -> RunResult:
        """One run of the experiment's commit; `holdout`: the holdout's, which streams to nobody and whose
        crash tail is not kept (the agent reads crash tails)."""
        labels = {"ARSUP_EXPERIMENT": experiment.id, "ARSUP_TAG": self.tag}
        spec = measure.run_spec(self.config, slot.root, self.python, log_path, seed, labels, holdout)
        spec.env.update(slot.env)  # its GPU

        pruner = None if holdout else self._pruner(experiment, seed)

        def forward(lines: list[str], partial: str) -> None:
            if not holdout:
                self._emit(RunOutput(experiment.id, lines, partial))
            if pruner is not None and pruner.feed(lines, partial):
                run.kill(pruner.verdict)

        run = self._new_run(spec, forward, experiment, slot)
        with self._recording:  # after arsup's last git call for this run, so what differs later is the run's
            git_dir, common_dir, leads = slot.vcs.git_dirs()
            self._git_prints[slot.name] = gitguard.GitPrint.take(git_dir, common_dir, self.branch, leads)
        with self._run_lock:
            slot.run = run
            run.start()  # from this thread, which outlives the run (the reaper's death signal follows it)
            if self._stop.is_set():
                run.kill(self._stop_reason)
        if run.identity is not None:  # so a restart after a kill -9 can end it if it still runs
            who = run.identity
            try:
                self.journal.append(
                    "run_started", tag=self.tag, experiment=experiment.id, seed=seed,
                    pid=who.pid, pgid=who.pgid, create_time=who.create_time, token=who.token,
                )
            except journal.JournalError as exc:  # a run arsup cannot record must not outlive the loop it ends
                run.kill(f"arsup cannot record its run: {exc}")
                run.wait()
                with self._run_lock:
                    slot.run = None
                raise
        outcome = run.wait()
        with self._run_lock:
            slot.run = None
        if outcome.log_capped:
            self._emit(Notice(f"experiment {experiment.id}: {outcome.log_capped}", "warning"))
        # A full disk during the run (the log refused output) or after it: the disk's problem, not the code's.
        full = bool(outcome.log_error) or disk.is_full(self.journal.dir)
        stop = self._stop_on_a_full_disk(outcome.log_error) if full else None
        record, tail = measure.result(self.config, spec, outcome, seed, holdout)
        if pruner is not None:
            record.curve = pruner.curve
            if outcome.killed and pruner.verdict and outcome.kill_reason == pruner.verdict:
                record.pruned, record.crash_reason, tail = pruner.verdict, "", ""
        tampered = self._check_after_run(experiment, slot)
        if stop is not None:
            raise stop  # after the check: what the run changed is put back either way
        if tampered:
            record.crash_reason = tampered
        if tail and not holdout:
            experiment.crash_tail = tail
        return record

    def _new_run(
        self, spec: runner.RunSpec, forward: runner.OutputCallback, experiment: Experiment, slot: Slot
    ) -> runner.RunHandle:
        """A local process, or a task on a Ray cluster working in a snapshot of the experiment's commit."""
        executor = self.config.executor
        if executor.kind == "ray":
            from arsup.core.executors.ray_cluster import RayRun

            snapshot = slot.vcs.archive(experiment.commit)
            return RayRun(spec, forward, address=executor.address, snapshot=snapshot, num_gpus=executor.gpus)
        return runner.Run(spec, forward)

    def _pruner(self, experiment: Experiment, seed: int) -> pruning.Pruner | None:
        """A pruner for this run when `[prune]` is on: it records the curve, and judges the first run of a
        candidate against the best's run with the same seed once the branch has enough history."""
        rule = self.config.prune
        if not rule.enabled:
            return None
        best = self._reference(experiment)
        reference: pruning.Curve = []
        trained = sum(e.status in Status.TRAINED for e in self.history)
        if best is not None and not experiment.is_baseline and not experiment.runs and trained >= rule.warmup:
            reference = next((run.curve for run in best.runs if run.seed == seed and run.curve), [])
        return pruning.Pruner(re.compile(rule.pattern), reference, rule.margin, rule.earliest)

    def _check_after_run(self, experiment: Experiment, slot: Slot) -> str:
        """Undo what a run changed that it must not; the crash reason when it touched what scores it or `.git`.

        `.git` first, before any git command (a planted fsmonitor or config acts
        on the first one); then the editable files, whatever the run made of them,
        before the checks that read files."""
        planted = self._undo_git_changes(experiment, slot)
        project, vcs = self.config.project, slot.vcs
        rewritten = [
            path for path in vcs.modified(project.editable)
            if path not in slot.manifest.digests
            and may_edit(slot.root, path, project.editable, project.protected, self.reserved, follow=False)
        ]
        if rewritten:
            made = ", ".join(_what_the_run_made(slot.root, path) for path in rewritten)
            kept = self._keep_evidence(experiment, rewritten, slot.root)
            vcs.restore(rewritten, vcs.head())
            self._emit(Notice(f"experiment {experiment.id}: the run {made}; restored (its version: {kept})", "warning"))
        with self._recording:
            changed = slot.manifest.changed() + self._repair_own_files()
        if not changed:
            return planted
        self._keep_evidence(experiment, [path for path in changed if path in slot.manifest.digests], slot.root)
        tracked = vcs.tracked(changed)
        vcs.restore([path for path in changed if path in tracked], vcs.head())
        lost = [path for path in changed if path not in tracked and path in slot.manifest.digests]
        what = ", ".join(changed)
        if lost:
            self._fatal = (
                f"the run of experiment {experiment.id} changed protected files git does not hold "
                f"({', '.join(lost)}); arsup cannot restore them: put them back and restart"
            )
        self._emit(Notice(
            f"TAMPERING: the run of experiment {experiment.id} modified {what}; "
            + ("restored; " if not lost else "")
            + "the experiment counts as a crash",
            "error",
        ))
        return "; ".join(reason for reason in (f"{TAMPERED}: {what}", planted) if reason)

    def _undo_git_changes(self, experiment: Experiment, slot: Slot) -> str:
        """Put back what the run changed in `.git` (a hook, config, attributes, a ref, HEAD) from the
        fingerprint taken before it, its version kept; the crash reason, or "" when it changed nothing there."""
        with self._recording:  # a keep in another slot moves the run branch, and says so to this fingerprint
            before = self._git_prints.pop(slot.name)
            changed = before.changed()
            shared = before.shared(changed)  # slots share them: a run that trained beside this one may be the cause
            beside = [name for name, other in self._git_prints.items() if any(not other.holds(n) for n in shared)]
            for name in beside:  # (a fingerprint that holds the change already was taken after it was made)
                self._git_seen.setdefault(name, []).extend(shared)
            seen = self._git_seen.pop(slot.name, [])
            if not changed and not seen:
                return ""
            what = ", ".join(sorted({*changed, *seen}))
            kept = self._keep_evidence(experiment, changed, before.top)
            try:
                before.restore(changed)
                undone = f"restored (its version: {kept})" if changed else "restored"
            except OSError as exc:
                undone = f"arsup could not put it back ({exc.strerror or exc})"
                self._fatal = f"the run of experiment {experiment.id} changed {what} and {undone}: restore it and restart"
            for other in self._git_prints.values():
                other.accept(shared)
            who = " (or a run training beside it: slots share .git)" if seen or beside else ""
        self._emit(Notice(
            f"TAMPERING: the run of experiment {experiment.id} changed {what}{who}; {undone}; "
            "the experiment counts as a crash",
            "error",
        ))
        return f"{GIT_CHANGED} {what}{who}"

    def _repair_own_files(self) -> list[str]:
        """Put back arsup's ledger, lock and results.tsv if something changed them; the ledger if it was.

        Only the ledger counts as tampering: results.tsv is an export a person may
        open and save, so it is rewritten from the journal with a warning."""
        if self._repo is not None:
            self._repo.lock.reassert()
        expected = journal.results_text(self.config.metric.name, self.history)
        try:
            current = self.results_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != expected:
            journal.write_results(self.results_path, self.config.metric.name, self.history)
            self._emit(Notice(f"{journal.RESULTS_NAME} was changed outside arsup; rewritten from the journal", "warning"))
        return [f"{journal.STATE_DIR}/{journal.JOURNAL_NAME}"] if self.journal.repair() else []

    def _keep_evidence(self, experiment: Experiment, paths: list[str], root: Path) -> Path:
        """Keep what a run left where it must not change anything, before it is restored: nothing is lost.

        A file is copied; a symlink is kept as its target's text (`<name>.symlink`),
        never followed; a folder is moved aside whole (it must go anyway). The
        evidence of an earlier run of the same experiment is replaced."""
        folder = self.journal.run_dir(experiment.id) / "changed-at-run-time"
        for path in paths:
            source = root / path
            target = folder / (f"{path}.symlink" if source.is_symlink() else path)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.write_text(os.readlink(source), encoding="utf-8", errors="surrogateescape")
            elif source.is_dir():
                shutil.move(source, target)
            elif source.is_file():
                target.write_bytes(source.read_bytes())
        return folder

    def _finish(self, experiment: Experiment, status: str, reason: str, slot: Slot | None = None) -> None:
        """Journal, then results.tsv, then the reset: a kill between steps is recoverable.

        A keep in a slot's worktree first moves the run branch on (a restart
        finds the commit there and the record still running, and moves it
        back). One that started from a best another slot has replaced since is
        not kept: it was judged against the old best, so its change is carried
        onto the new one and measured again.
        """
        with self._recording:
            if status == Status.KEEP and slot is not None and slot.worktree:
                if self.vcs.head() != experiment.parent:
                    status, reason = Status.DISCARD, self._overtaken(experiment, reason)
                else:
                    self.vcs.fast_forward(experiment.commit)
                    for guard in self._git_prints.values():  # arsup moved it, not the runs under way
                        guard.accept([guard.branch_ref])
            experiment.status, experiment.reason = status, reason
            experiment.finished_at = time.time()
            self._pending.pop(experiment.id, None)
            self.journal.record(experiment)
            if status in Status.TRAINED:
                journal.append_result(self.results_path, self.config.metric.name, experiment)
            in_place = slot is None or not slot.worktree
            if in_place and status != Status.KEEP and experiment.commit and experiment.commit != experiment.parent:
                self.vcs.reset_to(experiment.parent, experiment.files)
            self.history.append(experiment)
            self._emit(ExperimentFinished(experiment.copy(), self.best()))
        self._unobserved.append(experiment.for_agent())  # the agent learns of it on its own thread, before it proposes

    def _overtaken(self, experiment: Experiment, reason: str) -> str:
        """Queue a candidate that beat a best replaced meanwhile to run again on the new best; say so.

        A candidate carried again keeps its first words (`original`) and counts the rounds (`carried`),
        so its hypothesis says the latest round once instead of growing by one per round."""
        best, parent = self.best(), self._reference(experiment)
        assert best is not None and parent is not None and self._pipeline is not None
        done = Snapshot(self.vcs, experiment.commit)
        changes = {path: text for path in experiment.files if (text := done.text(path)) is not None}
        times = experiment.agent_data.get("carried", 0) + 1
        original = experiment.agent_data.get("original", experiment.hypothesis)
        again = self._new_experiment(
            slots.carried_hypothesis(original, times, parent.id, best.id, MAX_HYPOTHESIS_CHARS), experiment.agent,
            parent=parent.commit,
        )
        again.made_for = parent.id
        again.agent_data = {"again_of": experiment.id, "carried": times, "original": original}
        self._journal_queued(again)
        proposal = Proposal(again.hypothesis, files=changes)
        self._pipeline.push(Prepared(again, proposal, parent, Snapshot(self.vcs, parent.commit), changes, again=True))
        return f"{reason}; but {best.id} was kept meanwhile: carried onto it as {again.id}"


def _what_the_run_made(root: Path, path: str) -> str:
    """What a run made of a tracked editable file, in words: `rewrote train.py`, `deleted train.py`, ..."""
    target = root / path
    if target.is_symlink():
        return f"replaced {path} with a symlink to {os.readlink(target)}"
    if target.is_dir():
        return f"replaced {path} with a folder"
    return f"rewrote {path}" if target.exists() else f"deleted {path}"
