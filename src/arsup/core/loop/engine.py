"""The experiment loop's façade: it builds the parts, opens the session, runs the night, and takes the controls.

Propose, apply, commit, train, decide, record, repeat. The engine talks
outward only through events sent to subscribers, and takes controls inward
through its methods (the `Controls` protocol), so headless mode, the TUI, the
socket and tests drive it the same way. Every step that can be interrupted
waits on the stop flag, so stopping never hangs; every experiment that was
committed ends with a journal record, a results.tsv row and a clean work tree.

What it guarantees the person, whatever the agent or the training does:

* Files it never writes, deletes or restores: anything git ignores or does
  not track (but new files an edit creates), `.git/` (but what a run changed
  there), `.arsup/`, `results.tsv`, `arsup.toml` and the instructions. A
  failed edit puts back exactly the bytes it replaced.
* Protected files are fingerprinted at the start and checked after every
  run; a run that changed one is a crash, said loudly, and the file is
  restored from git. A run cannot change what scores it (integrity.py).
* `.git` (hooks, config, HEAD, the run branch's ref: gitguard) is
  fingerprinted before every run and compared after it, before any git
  command; a run that changed it is a crash and the bytes are put back. A
  tracked editable file is restored whatever the run made of it.
* Only a descendant of the best that arsup did not commit is adopted as a
  person's commit; a branch found anywhere else goes back on the best.
* A restart after a kill finishes what was left half done (the branch back
  on the last measured commit, the record closed) but first refuses to touch
  any uncommitted change it did not make itself (recovery.py).
* A full disk is arsup's problem, never the run's: the loop looks before each
  experiment and after each run, and on a full disk records nothing more but
  which experiments are to be measured again (room kept for that: disk.py),
  then ends with the state folder's error (exit 2).

The parts, and who calls whom: the scheduler runs the first items and the
slots; each slot takes a proposal from the proposer (which plans it with the
planner and asks the questions), has the trainer commit and train it (the
run guard checks each run) and the recorder record it (which may hand a
candidate back to the proposer); the limits say when the night ends. The
kept line, the bus and the flags are shared by all, each with its own lock.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from arsup.config import CONFIG_NAME, Config
from arsup.core import acceptance, disk, journal, policy, sandbox
from arsup.core.agents.base import Agent
from arsup.core.controls import NOTE_MAX_CHARS
from arsup.core.events import (
    NoteAdded,
    Notice,
    Paused,
    PolicyChanged,
    Resumed,
    SessionEnded,
    SessionStarted,
    StopAfterRunAsked,
)
from arsup.core.experiment import Experiment
from arsup.core.loop.bus import EventBus, Subscriber
from arsup.core.loop.disk_stop import DiskWatch
from arsup.core.loop.flags import STOPPED_BY_USER, Flags
from arsup.core.loop.integrity import RunGuard
from arsup.core.loop.limits import Ending, Limits
from arsup.core.loop.line import KeptLine
from arsup.core.loop.numbering import Numbering
from arsup.core.loop.planning import EditPlanner
from arsup.core.loop.proposer import AgentFailed, Proposer
from arsup.core.loop.questions import Questions
from arsup.core.loop.recorder import Recorder
from arsup.core.loop.recovery import Session, open_session
from arsup.core.loop.running import Running
from arsup.core.loop.scheduler import Scheduler
from arsup.core.loop.trial import Trainer
from arsup.core.vcs import GitError, Vcs
from arsup.core.watch import FileWatcher
from arsup.core.workspace import HeldRepo

KILLED_BY_USER = "killed by user"


class Engine:
    def __init__(self, config: Config, root: Path, agent: Agent, tag: str, python: str = sys.executable) -> None:
        self.config, self.root, self.tag, self.python = config, root.resolve(), tag, python
        self.journal = journal.Journal(self.root, log_warnings=False)  # said as notices, once
        self.branch = ""
        self.policy = config.policy.approve
        self.notes: list[str] = []  # a person's notes to the agent, in every prompt from now on
        project = config.project
        # Paths no edit may touch, whatever the editable globs say.
        self.reserved = [
            journal.STATE_DIR, f"{journal.STATE_DIR}/*", journal.RESULTS_NAME, CONFIG_NAME, project.instructions,
        ]
        self._repo: HeldRepo | None = None
        self._session: Session | None = None
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()
        self._bus = bus = EventBus()
        self._flags = flags = Flags()
        self._line = line = KeptLine(config.metric.name)
        self._limits = limits = Limits(config.budget, config.watchdog, str(self.journal.dir / "runs"))
        self._disk = DiskWatch(self.root, self.journal, tag)
        self._running = Running(flags)
        self._questions = Questions(bus, lambda: self.policy, flags.stopped)
        numbering = Numbering(tag)
        self._numbering = numbering
        planner = EditPlanner(config, self.root, self.reserved, line)
        self._proposer = proposer = Proposer(
            config, self.root, agent, self.journal, bus, flags, self._questions, line, planner, numbering,
            lambda: self.policy, lambda: self.notes,
        )
        guard = RunGuard(config, self.journal, line, limits, bus, self.reserved, self._reassert_lock)
        recorder = Recorder(config, self.root, self.journal, line, guard, bus, proposer, numbering, lambda: self.vcs)
        self._trainer = Trainer(
            config, tag, python, self.journal, bus, flags, self._questions, line, limits, proposer, recorder,
            guard, self._running, self._disk,
        )
        self._scheduler = Scheduler(
            config, bus, flags, line, limits, numbering, proposer, planner, self._trainer, recorder, self._running,
            self._disk,
        )

    # -- what the loop knows ---------------------------------------------------------------

    @property
    def history(self) -> list[Experiment]:
        """This tag's finished experiments, oldest first (a copy: the kept line owns the list)."""
        return self._line.history()

    def best(self) -> Experiment | None:
        """The head of the kept line: what the next candidate is built on and must beat."""
        return self._line.best()

    def noise(self) -> acceptance.Noise | None:
        return self._line.noise()

    def spend(self, since: float = 0.0) -> dict[str, float]:
        """The agent's token and dollar spend over experiments proposed after `since` (all by default)."""
        return self._line.spend(since)

    def instructions(self) -> str:
        """The research instructions as the next proposal reads them (a person may edit them live)."""
        return self._proposer.instructions()

    @property
    def agent(self) -> Agent:
        """Who proposes (the proposer calls it, on its own thread only)."""
        return self._proposer.agent

    @agent.setter
    def agent(self, agent: Agent) -> None:
        self._proposer.agent = agent

    @property
    def interactive(self) -> bool:
        """A person watches (the screen): a watchdog pauses and asks where headless would stop."""
        return self._limits.interactive

    @interactive.setter
    def interactive(self, value: bool) -> None:
        self._limits.interactive = value

    @property
    def vcs(self) -> Vcs:
        if self._repo is None:
            raise RuntimeError("Engine.prepare() must run first")
        return self._repo.vcs

    # -- outward -------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._bus.subscribe(subscriber)

    def say(self, notice: Notice) -> None:
        """A notice from a helper of the loop (a notification hook) to every subscriber."""
        self._bus.emit(notice)

    # -- inward: the Controls ------------------------------------------------------------------

    def stop(self, reason: str = STOPPED_BY_USER) -> None:
        """Stop now: the running training is killed and recorded with `reason`; no new experiment starts."""
        self._flags.stop(reason)
        self._running.kill(self._flags.stop_reason)

    def stop_after_run(self) -> None:
        """Let the current experiment finish, then end the loop."""
        self._flags.after_run.set()
        self._bus.emit(StopAfterRunAsked())
        self._bus.notice("will stop after this experiment")

    def kill(self) -> None:
        """Kill the running training (every slot's); it is recorded as a crash and the loop goes on."""
        self._running.kill(KILLED_BY_USER)

    def pause(self) -> None:
        """Finish the current step, then wait until resumed."""
        self._flags.paused.set()
        self._bus.emit(Paused())

    def resume(self) -> None:
        self._flags.paused.clear()
        self._bus.emit(Resumed())

    @property
    def paused(self) -> bool:
        return self._flags.paused.is_set()

    def set_policy(self, name: str) -> None:
        if name not in policy.POLICIES:
            raise ValueError(f"unknown policy {name!r}; one of {', '.join(policy.POLICIES)}")
        self.policy = name
        self.journal.append("policy", tag=self.tag, policy=name)
        self._bus.emit(PolicyChanged(name))

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
            self._bus.emit(NoteAdded(text))
            self._bus.notice(f"note for the agent: {text}")

    def answer(self, question_id: str, approved: bool, files: dict[str, str] | None = None) -> bool:
        """Answer an open question (from any client); False when it is no longer open."""
        return self._questions.answer(question_id, approved, files)

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check the repo, recover an interrupted experiment, check out the run branch.

        Raises GitError, RepoBusy or JournalError (DiskFull: nothing is
        touched on a full disk, a recovery least of all) with a message for the
        user; runs in the caller's thread so a bad repo is reported before
        anything starts.
        """
        if self._disk.is_full():
            raise self._disk.at_start()
        self._repo = HeldRepo(self.root)
        try:
            session = open_session(self._repo, self.journal, self.config, self.tag, self.agent.name, self._bus,
                                   self._disk.reserve)
        except Exception as exc:
            self.close()
            if isinstance(exc, disk.DiskFull) or not self._disk.is_full(exc):
                raise
            raise self._disk.at_start() from exc
        except BaseException:
            self.close()
            raise
        self._session, self.branch, self.notes = session, session.branch, session.notes
        self._line.load(session.history)
        self._numbering.start_at(session.next_id)
        self._trainer.branch = session.branch
        self._proposer.earlier = [e.for_agent() for e in session.earlier]
        vcs = self.vcs
        self._bus.emit(SessionStarted(
            self.tag, self.branch, vcs.head(), resumed=len(session.history), project=str(self.root),
            metric=self.config.metric.name, goal=self.config.metric.goal,
            time_budget=self.config.project.time_budget, policy=self.policy, agent=self.agent.name,
            model=self.config.agent.shown_model, paused=self.paused,
            pid=os.getpid(), started_at=time.time(), history=[e.copy() for e in session.history],
            holdout_keeps=self.config.holdout.warn_keeps,
        ))
        for text in session.notes:  # the night's earlier notes: every prompt has had them
            self._bus.emit(NoteAdded(text, read=True))
        unsandboxed = sandbox.warning(self.config.sandbox) if self.config.executor.kind == "local" else ""
        if unsandboxed:  # once per session: every run of it goes the same way (the probe is cached)
            self._bus.notice(unsandboxed, "warning")

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

    def run(self) -> None:
        """The loop; always ends with one SessionEnded event and the repo object closed."""
        ending, state_folder = Ending(""), False
        watched = [self.root / self.config.project.instructions, self.root / CONFIG_NAME]
        watcher = FileWatcher([p for p in watched if p.parent.is_dir()], self._on_file_change)
        try:
            watcher.start()
            assert self._session is not None, "Engine.prepare() must run first"
            ending = self._scheduler.run(self._session, self.vcs)
        except (GitError, AgentFailed, journal.JournalError) as exc:
            ending, state_folder = Ending(str(exc), error=True), isinstance(exc, journal.JournalError)
        except Exception as exc:  # unexpected: say so plainly, keep what was recorded
            ending = Ending(f"internal error: {exc!r} (the journal holds everything up to here)", error=True)
        finally:
            watcher.stop()
            reason, error = ending.reason, ending.error
            try:
                self.journal.append("session_end", tag=self.tag, reason=reason, error=error, spend=self.spend())
            except journal.JournalError as exc:  # the disk that failed the loop may fail this too
                reason, error = (reason or str(exc)), True
            self.close()
            self._bus.emit(SessionEnded(reason, error, state_folder))
            self._ended.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the loop has ended. Safe to interrupt with Ctrl-C, unlike Thread.join
        (an interrupted join can leave the thread marked as finished while it runs)."""
        return self._ended.wait(timeout)

    def _on_file_change(self, path: Path) -> None:
        if path.name == self.config.project.instructions.rsplit("/", 1)[-1]:
            self._bus.notice(f"instructions reloaded: the next proposal reads the new {path.name}")
        else:
            self._bus.notice(f"{path.name} changed; restart arsup to apply it", "warning")

    def _reassert_lock(self) -> None:
        if self._repo is not None:
            self._repo.lock.reassert()
