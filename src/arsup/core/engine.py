"""The experiment state machine: propose, apply, commit, train, decide, record, repeat.

The engine talks outward only through events sent to subscribers, and takes
controls inward through its methods (`stop` for now), so headless mode, the
TUI and tests drive it the same way. Every step that can be interrupted waits
on the stop event, so stopping never hangs; every experiment that was
committed ends with a journal record, a results.tsv row and a clean work tree.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from arsup.config import CONFIG_NAME, Config
from arsup.core import acceptance, journal, measure, runner
from arsup.core import changes as changes_
from arsup.core import policy
from arsup.core.agents.base import Agent, AgentContext, Proposal
from arsup.core.agents.edits import EditError, plan_changes, read_current, write_changes
from arsup.core.events import (
    AgentText,
    ApprovalRequested,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    Notice,
    Proposing,
    RunOutput,
    RunStarted,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from arsup.core.experiment import Experiment, RunResult, Status
from arsup.core.vcs import GitError, Vcs, branch_name
from arsup.core.watch import FileWatcher

logger = logging.getLogger(__name__)
Subscriber = Callable[[Event], None]
MAX_INVALID_IN_A_ROW = 5
STOPPED_BY_USER = "stopped by user"
KILLED_BY_USER = "killed by user"
STOPPED_AFTER_RUN = "stopped after the run, as asked"
POLL_S = 0.2  # how often waits look at the stop flag


class AgentFailed(Exception):
    """The agent cannot make proposals any more; the loop ends with its reason."""


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
        self.journal = journal.Journal(self.root)
        self.results_path = self.root / journal.RESULTS_NAME
        self.history: list[Experiment] = []  # this tag's finished experiments, oldest first
        self.branch = ""
        self._subscribers: list[Subscriber] = []
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._run_lock = threading.Lock()
        self._current_run: runner.Run | None = None
        self._thread: threading.Thread | None = None
        self._vcs: Vcs | None = None
        self._next_id = 0
        self._lock = journal.RepoLock(self.root)
        self.policy = config.policy.approve
        self.notes: list[str] = []  # a person's notes to the agent, in every prompt from now on
        self._paused = threading.Event()
        self._stop_after_run = threading.Event()

    # -- outward -----------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def _emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken display must not stop the research
                logger.exception("a subscriber failed on %s", type(event).__name__)

    # -- inward --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop now: the running training is killed and recorded; no new experiment starts."""
        self._stop.set()
        with self._run_lock:
            if self._current_run is not None:
                self._current_run.kill(STOPPED_BY_USER)

    def stop_after_run(self) -> None:
        """Let the current experiment finish, then end the loop."""
        self._stop_after_run.set()
        self._emit(Notice("will stop after this experiment"))

    def kill(self) -> None:
        """Kill the running training only; it is recorded as a crash and the loop goes on."""
        with self._run_lock:
            if self._current_run is not None:
                self._current_run.kill(KILLED_BY_USER)

    def pause(self) -> None:
        """Finish the current step, then wait until resumed."""
        self._paused.set()
        self._emit(Notice("pausing after the current step"))

    def resume(self) -> None:
        self._paused.clear()
        self._emit(Notice("resumed"))

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def set_policy(self, name: str) -> None:
        if name not in policy.POLICIES:
            raise ValueError(f"unknown policy {name!r}; one of {', '.join(policy.POLICIES)}")
        self.policy = name
        self.journal.append("policy", tag=self.tag, policy=name)
        self._emit(Notice(f"policy: {name}"))

    def add_note(self, text: str) -> None:
        """A note from the person to the agent; it goes into every prompt from the next one on."""
        text = " ".join(text.split())
        if text:
            self.notes.append(text)
            self.journal.append("note", tag=self.tag, text=text)
            self._emit(Notice(f"note for the agent: {text}"))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _state(self, state: str, detail: str = "") -> None:
        self._emit(StateChanged(state, detail))

    def _wait_while_paused(self) -> None:
        if self._paused.is_set():
            self._state("paused")
            while self._paused.is_set() and not self._stop.is_set():
                self._stop.wait(POLL_S)

    def _ask(self, kind: str, experiment: Experiment, files: dict[str, str] | None = None) -> policy.Answer | None:
        """Approve by policy, or wait for a person; None when the loop stops meanwhile."""
        if not policy.asks(self.policy, kind):
            return policy.Answer(True)
        future: Future[policy.Answer] = Future()
        self._state("awaiting approval", kind)
        self._emit(ApprovalRequested(kind, experiment.copy(), future, dict(files or {})))
        while not self._stop.is_set():
            try:
                return future.result(timeout=POLL_S)
            except FutureTimeout:
                if not policy.asks(self.policy, kind):  # the policy changed while waiting
                    future.cancel()
                    return policy.Answer(True)
        future.cancel()
        return None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def vcs(self) -> Vcs:
        if self._vcs is None:
            raise RuntimeError("Engine.prepare() must run first")
        return self._vcs

    def prepare(self) -> None:
        """Check the repo, recover an interrupted experiment, check out the run branch.

        Raises GitError or RepoBusy with a message for the user; runs in the
        caller's thread so a bad repo is reported before anything starts.
        """
        self._lock.acquire()
        try:
            self._vcs = vcs = Vcs(self.root)
            self._prepare_repo(vcs)
        except BaseException:
            self.close()
            raise
        self._emit(SessionStarted(self.tag, self.branch, vcs.head(), resumed=len(self.history)))

    def load_history(self) -> None:
        """The tag's finished experiments from the journal, without git or the lock: for browsing."""
        self.history = [e for e in self.journal.experiments(self.tag) if e.status in Status.FINAL]
        self.branch = branch_name(self.tag)

    def _prepare_repo(self, vcs: Vcs) -> None:
        vcs.head()
        vcs.exclude([f"/{journal.STATE_DIR}/", f"/{journal.RESULTS_NAME}"])
        watched = self.config.project.editable + self.config.project.protected
        experiments = self.journal.experiments(self.tag)
        if experiments and vcs.branch_exists(branch_name(self.tag)):
            vcs.start_branch(self.tag)
            self._recover(experiments[-1])
            experiments = self.journal.experiments(self.tag)
        dirty = vcs.changed_files(watched)
        if dirty:
            raise GitError(
                "uncommitted changes in files arsup edits or protects: "
                + ", ".join(dirty)
                + "; commit or stash them first (arsup commits and resets these files)"
            )
        self.branch, _ = vcs.start_branch(self.tag)
        self.history = [e for e in experiments if e.status in Status.FINAL]
        self.notes = [e["text"] for e in self.journal.events() if e.get("event") == "note" and e.get("tag") == self.tag]
        self._next_id = self.journal.next_number()
        journal.write_results(self.results_path, self.config.metric.name, self.history)
        self.journal.append("session", tag=self.tag, branch=self.branch, head=vcs.head(), agent=self.agent.name)

    def _recover(self, last: Experiment) -> None:
        """Finish what a killed arsup left half done, so the branch and the journal agree again."""
        recovered = False
        if last.status == Status.PROPOSED:
            self.vcs.restore(last.files, self.vcs.head())
            last.status, last.reason = Status.INVALID, "interrupted before its commit"
            self.journal.record(last)
            recovered = True
        elif last.status == Status.RUNNING:
            last.status, last.reason = Status.CRASH, "interrupted: arsup stopped before the run finished"
            last.finished_at = time.time()
            self.journal.record(last)
            recovered = True
        if last.status in (Status.DISCARD, Status.CRASH) and last.commit != last.parent:
            if self.vcs.head() == last.commit:
                self.vcs.reset_to(last.parent, last.files)
                recovered = True
        if recovered:
            self._emit(Notice(f"recovered experiment {last.id}: {last.status}, {last.reason}", "warning"))

    def close(self) -> None:
        """Let go of the repo: the git object and the lock (run() does this when it ends)."""
        if self._vcs is not None:
            self._vcs.close()
            self._vcs = None
        self._lock.release()

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
        reason, error = "", False
        watched = [self.root / self.config.project.instructions, self.root / CONFIG_NAME]
        watcher = FileWatcher([p for p in watched if p.parent.is_dir()], self._on_file_change)
        try:
            watcher.start()
            reason, error = self._loop()
        except (GitError, AgentFailed) as exc:
            reason, error = str(exc), True
        except Exception as exc:  # unexpected: say so plainly, keep what was recorded
            reason, error = f"internal error: {exc!r} (the journal holds everything up to here)", True
        finally:
            watcher.stop()
            self.journal.append("session_end", tag=self.tag, reason=reason, error=error, spend=self.spend())
            self.close()
            self._emit(SessionEnded(reason, error))
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
        total = {"calls": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0, "cost_usd": 0.0}
        for experiment in self.history:
            if experiment.proposed_at >= since:
                for key, value in experiment.agent_data.get("usage", {}).items():
                    if key in total:
                        total[key] += value
        return total

    def _budget_spent(self, done: int, started_at: float) -> str:
        if self.budget.max_experiments and done >= self.budget.max_experiments:
            return f"reached --max-experiments {self.budget.max_experiments}"
        if self.budget.max_hours and time.time() - started_at >= self.budget.max_hours * 3600:
            return f"reached --max-hours {self.budget.max_hours:g}"
        if self.budget.max_cost_usd and self.spend(started_at)["cost_usd"] >= self.budget.max_cost_usd:
            return f"reached --max-cost {self.budget.max_cost_usd:g} USD"
        return ""

    def _loop(self) -> tuple[str, bool]:
        started_at, done, invalid_in_a_row = time.time(), 0, 0
        while True:
            self._wait_while_paused()
            if self._stop.is_set():
                return STOPPED_BY_USER, False
            if self._stop_after_run.is_set():
                return STOPPED_AFTER_RUN, False
            spent = self._budget_spent(done, started_at)
            if spent:
                return spent, False
            best = self.best()
            experiment = self._run_baseline() if best is None else self._propose_and_run(best)
            if experiment is None:
                if self._stop.is_set():
                    return STOPPED_BY_USER, False
                return "the agent has no more ideas", False
            if experiment.status == Status.CRASH and experiment.is_baseline and not self._stop.is_set():
                log = experiment.runs[-1].log_path if experiment.runs else ""
                return f"the baseline crashed ({experiment.reason}); fix the training script. Log: {log}", True
            if experiment.status == Status.INVALID:
                invalid_in_a_row += 1
                if invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
                    return f"{MAX_INVALID_IN_A_ROW} invalid edits in a row; check the agent", True
                continue
            invalid_in_a_row = 0
            if experiment.status in Status.TRAINED:
                done += 1

    def _peek_id(self) -> str:
        return f"{self._next_id:04d}"

    def _new_experiment(self, hypothesis: str, agent: str) -> Experiment:
        head = self.vcs.head()
        experiment_id = self._peek_id()
        self._next_id += 1
        return Experiment(
            id=experiment_id,
            tag=self.tag,
            parent=head,
            commit=head,
            hypothesis=hypothesis,
            agent=agent,
            proposed_at=time.time(),
        )

    def _run_baseline(self) -> Experiment:
        self._emit(Proposing(self._peek_id()))
        experiment = self._new_experiment("baseline", "arsup")
        experiment.is_baseline = True
        self._train(experiment)
        return experiment

    def _context(self, best: Experiment) -> AgentContext:
        project = self.config.project
        files = {}
        for pattern in project.editable:
            for path in sorted(self.root.glob(pattern)):
                if path.is_file():
                    files[path.relative_to(self.root).as_posix()] = path.read_text(encoding="utf-8", errors="replace")
        instructions = self.root / project.instructions
        crashed = self.history[-1] if self.history and self.history[-1].status == Status.CRASH else None
        return AgentContext(
            instructions=instructions.read_text(encoding="utf-8", errors="replace") if instructions.is_file() else "",
            files=files,
            history=[e.copy() for e in self.history],
            metric=self.config.metric.name,
            goal=self.config.metric.goal,
            time_budget=project.time_budget,
            best=best.copy(),
            last_crash_tail=crashed.crash_tail if crashed else "",
            notes=list(self.notes),
            cancel=self._stop,
            check=self._refusal,
            on_text=lambda text: self._emit(AgentText(self._peek_id(), text)),
            notify=lambda message: self._emit(Notice(message, "warning")),
        )

    def _propose_and_run(self, best: Experiment) -> Experiment | None:
        self._emit(Proposing(self._peek_id()))
        self._state("proposing", self.agent.name)
        asked_at = time.time()
        try:
            proposal = self.agent.propose(self._context(best))
        except Exception as exc:  # the agent cannot go on; nothing was written yet
            raise AgentFailed(f"the {self.agent.name} agent failed: {exc}") from exc
        if proposal is None or self._stop.is_set():
            return None
        experiment = self._new_experiment(proposal.hypothesis, self.agent.name)
        experiment.propose_s = round(time.time() - asked_at, 3)
        experiment.agent_data = dict(proposal.meta)
        if not self._apply(experiment, proposal):
            return experiment
        self._train(experiment)
        return experiment

    def _plan(self, proposal: Proposal) -> dict[str, str]:
        """The files the proposal would write, or EditError saying why the engine refuses it."""
        project = self.config.project
        changes = plan_changes(self.root, proposal, project.editable, project.protected)
        if not changes:
            raise EditError("the edit changes nothing")
        before = {path: read_current(self.root, path) for path in changes}
        candidate = changes_.signature(changes_.diff_texts(before, changes))
        if candidate.only_seeds:
            raise EditError(
                "this edit changes only a seed; the supervisor owns seeds (ARSUP_SEED) and repeats runs "
                "with several of them, so a new seed is not an experiment: change something else"
            )
        repeated = changes_.find_repeat(candidate, self.history)
        if repeated is not None:
            metric = "crashed" if repeated.metric is None else f"{self.config.metric.name} {repeated.metric:.6f}"
            raise EditError(
                f"this repeats experiment {repeated.id} ({repeated.status}, {metric}: {repeated.hypothesis!r}), "
                f"which set {candidate.describe()}; propose something not tried yet"
            )
        return changes

    def _refusal(self, proposal: Proposal) -> str:
        try:
            self._plan(proposal)
        except EditError as exc:
            return str(exc)
        return ""

    def _apply(self, experiment: Experiment, proposal: Proposal) -> bool:
        """Approve (by policy or person), write and commit the edit; a bad one is recorded as invalid."""
        try:
            changes = self._plan(proposal)
        except EditError as exc:
            self._finish(experiment, Status.INVALID, str(exc))
            return False
        if policy.asks(self.policy, policy.EDIT):
            before = {path: read_current(self.root, path) for path in changes}
            experiment.diff = changes_.diff_texts(before, changes, context=3)
            answer = self._ask(policy.EDIT, experiment, changes)
            if answer is None or not answer.approved:
                reason = STOPPED_BY_USER if answer is None else "skipped by user"
                self._finish(experiment, Status.SKIPPED, reason)
                return False
            if answer.files is not None and answer.files != changes:
                try:
                    changes = self._plan(Proposal(experiment.hypothesis, files=answer.files))
                except EditError as exc:
                    self._finish(experiment, Status.INVALID, f"after the person's edit: {exc}")
                    return False
                experiment.agent_data["edited_by_user"] = True
        experiment.files = sorted(changes)
        self.journal.record(experiment)  # PROPOSED: recovery knows which files to restore
        try:
            write_changes(self.root, changes)
            experiment.commit = self.vcs.commit(experiment.files, f"arsup {experiment.id}: {experiment.hypothesis}")
        except Exception as exc:
            self.vcs.restore(experiment.files, experiment.parent)
            self._finish(experiment, Status.INVALID, f"could not write and commit the edit: {exc}")
            raise GitError(f"committing experiment {experiment.id} failed: {exc}") from exc
        experiment.diff = self.vcs.diff(experiment.parent, experiment.commit)
        return True

    def _train(self, experiment: Experiment) -> None:
        answer = self._ask(policy.RUN, experiment)
        if answer is None or not answer.approved:
            self._finish(experiment, Status.SKIPPED, STOPPED_BY_USER if answer is None else "skipped by user")
            return
        self.vcs.set_ref(self.tag, experiment.id, experiment.commit)
        run_dir = self.journal.run_dir(experiment.id)
        if experiment.diff:
            (run_dir / "diff.patch").write_text(experiment.diff, encoding="utf-8")
        experiment.status = Status.RUNNING
        experiment.started_at = time.time()
        self.journal.record(experiment)
        self._emit(ExperimentStarted(experiment.copy()))
        self._state("training", experiment.id)
        name, goal, rule = self.config.metric.name, self.config.metric.goal, self._rule()
        head = self.best()
        first = range(self.config.acceptance.runs_for_baseline) if experiment.is_baseline else range(1)
        if not self._run_seeds(experiment, run_dir, first):
            return
        if head is None:
            decision = acceptance.Decision(True, "the first result on this branch: the reference to beat")
        elif rule.mode == "greedy":
            decision = acceptance.decide_greedy(experiment.metric, head.metric, goal, name)  # type: ignore[arg-type]
        else:
            noise = self.noise()
            sigma = noise.sigma if noise else 0.0
            experiment.sigma = sigma
            screened = acceptance.screen(experiment.metric, head.metric, goal, sigma, rule, name)  # type: ignore[arg-type]
            if screened is None:
                if not self._run_seeds(experiment, run_dir, range(1, rule.confirm_runs)):
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
        self._finish(experiment, status, reason)
        if experiment.is_baseline and experiment.status == Status.KEEP:
            noise = self.noise()
            if noise is not None:
                self._emit(Notice(f"noise floor: {noise.describe()}"))

    def _rule(self) -> acceptance.Rule:
        accept = self.config.acceptance
        return acceptance.Rule(accept.mode, accept.confirm_runs, accept.threshold_sigma, accept.alpha, accept.min_effect)

    def _run_seeds(self, experiment: Experiment, run_dir: Path, indexes: range) -> bool:
        """Run the experiment once per seed index; on a crash, record it and return False."""
        name = self.config.metric.name
        for index in indexes:
            seed = self.config.project.seed + index
            log_name = "run.log" if not experiment.runs else f"run.{len(experiment.runs) + 1}.log"
            self._emit(RunStarted(experiment.id, seed, len(experiment.runs) + 1, time.time()))
            result = self._run_once(experiment, run_dir / log_name, seed)
            experiment.runs.append(result)
            if result.crash_reason:
                experiment.metrics = dict(result.metrics)
                repeat = f"run {len(experiment.runs)} (seed {seed}): " if len(experiment.runs) > 1 else ""
                self._finish(experiment, Status.CRASH, repeat + result.crash_reason)
                return False
            good = [run.metrics for run in experiment.runs]
            experiment.metrics = {k: statistics.fmean(m[k] for m in good if k in m) for k in result.metrics}
            values = [m[name] for m in good]
            experiment.metric = statistics.fmean(values)
            experiment.metric_std = statistics.stdev(values) if len(values) > 1 else None
        return True

    def _run_once(self, experiment: Experiment, log_path: Path, seed: int) -> RunResult:
        labels = {"ARSUP_EXPERIMENT": experiment.id, "ARSUP_TAG": self.tag}
        spec = measure.run_spec(self.config, self.root, self.python, log_path, seed, labels)

        def forward(lines: list[str], partial: str) -> None:
            self._emit(RunOutput(experiment.id, lines, partial))

        run = runner.Run(spec, forward)
        with self._run_lock:
            self._current_run = run
            run.start()
            if self._stop.is_set():
                run.kill(STOPPED_BY_USER)
        outcome = run.wait()
        with self._run_lock:
            self._current_run = None
        record, tail = measure.result(self.config, spec, outcome, seed)
        if tail:
            experiment.crash_tail = tail
        return record

    def _finish(self, experiment: Experiment, status: str, reason: str) -> None:
        """Journal, then results.tsv, then the reset: a kill between steps is recoverable."""
        experiment.status, experiment.reason = status, reason
        experiment.finished_at = time.time()
        self.journal.record(experiment)
        if status in Status.TRAINED:
            journal.append_result(self.results_path, self.config.metric.name, experiment)
        if status != Status.KEEP and experiment.commit and experiment.commit != experiment.parent:
            self.vcs.reset_to(experiment.parent, experiment.files)
        self.history.append(experiment)
        self._emit(ExperimentFinished(experiment.copy(), self.best()))
        try:
            self.agent.observe(experiment.copy())
        except Exception as exc:  # the agent's bookkeeping must not lose the experiment
            self._emit(Notice(f"agent {self.agent.name} failed to learn from {experiment.id}: {exc!r}", "warning"))
