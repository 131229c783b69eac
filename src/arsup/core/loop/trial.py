"""One experiment's trial: its edit written and committed, its runs (one per seed), the keep decision.

Called on the loop thread, or on a slot's thread for the slot's own
experiment; the parts it shares (the kept line, the journal, the running
slots) have their own locks. Invariants: every experiment that reaches
`commit` ends with a record (the recorder's), but one whose run proved
nothing about the code (a lost cluster) is left running in the journal,
marked to be measured again; a run's `.git` and files are checked after it
and before anything reads them; the decision is `acceptance.judge`'s.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from pathlib import Path

from arsup.config import Config
from arsup.core import acceptance, journal, load, measure, policy, pruning, runner
from arsup.core.agents.edits import EditError
from arsup.core.editing import put_back, render_changes, write_changes
from arsup.core.events import ExperimentStarted, LoopState, RunOutput, RunStarted
from arsup.core.executors import ray_cluster
from arsup.core.experiment import Cause, Experiment, RunResult, Status, Verdict, total_usage
from arsup.core.holdout import divergence
from arsup.core.loop.bus import EventBus
from arsup.core.loop.disk_stop import DiskWatch
from arsup.core.loop.flags import Flags
from arsup.core.loop.integrity import RunGuard
from arsup.core.loop.limits import Limits
from arsup.core.loop.line import KeptLine
from arsup.core.loop.proposer import Proposer
from arsup.core.loop.questions import Questions
from arsup.core.loop.recorder import Recorder
from arsup.core.loop.running import Running
from arsup.core.slots import Slot
from arsup.core.vcs import GitError


class _NotMeasured(Exception):
    """The run proved nothing about the code (its cluster is gone): no verdict, it is measured again later."""


class Trainer:
    def __init__(
        self, config: Config, tag: str, python: str, log: journal.Journal, bus: EventBus, flags: Flags,
        questions: Questions, line: KeptLine, limits: Limits, proposer: Proposer, recorder: Recorder,
        guard: RunGuard, running: Running, disk: DiskWatch,
    ) -> None:
        self.config, self.tag, self.python, self.journal, self.bus, self.flags = config, tag, python, log, bus, flags
        self.questions, self.line, self.limits, self.proposer = questions, line, limits, proposer
        self.recorder, self.guard, self.running, self.disk = recorder, guard, running, disk
        self.branch = ""  # the run branch (set once the session is open)

    def commit(self, experiment: Experiment, changes: dict[str, str], slot: Slot) -> bool:
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
            self.recorder.finish(experiment, Verdict(Status.INVALID, str(exc)), slot)
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
            self.recorder.finish(experiment, Verdict(Status.INVALID, f"could not commit the edit: {detail}"), slot)
            raise GitError(f"committing experiment {experiment.id} failed: {detail}") from exc
        experiment.diff = slot.vcs.diff(experiment.parent, experiment.commit)
        return True

    def train(self, experiment: Experiment, slot: Slot) -> None:
        """Run it, judge it and record it (or, when its runs proved nothing, leave it to be measured again)."""
        try:
            verdict = self._trial(experiment, slot)
        except _NotMeasured:
            return
        self.recorder.finish(experiment, verdict, slot)
        holdout = self.config.holdout
        if experiment.status == Status.KEEP and holdout.enabled:
            warning = divergence(self.line.history(), self.config.metric.goal, holdout.diverge_keeps)
            if warning:
                self.bus.notice(f"holdout: {warning}", "warning")
        if experiment.is_baseline and experiment.status == Status.KEEP:
            noise = self.line.noise()
            if noise is not None:
                self.bus.notice(f"noise floor: {noise.describe()}")

    def _trial(self, experiment: Experiment, slot: Slot) -> Verdict:
        answer = self.questions.ask(policy.RUN, experiment)
        if answer is None or not answer.approved:
            return Verdict(Status.SKIPPED, self.flags.stop_reason if answer is None else "skipped by user")
        experiment.slot = slot.name
        slot.vcs.set_ref(self.tag, experiment.id, experiment.commit)
        run_dir = self.journal.run_dir(experiment.id)
        if experiment.diff:
            (run_dir / "diff.patch").write_text(experiment.diff, encoding="utf-8")
        experiment.status = Status.RUNNING
        experiment.started_at = time.time()
        self.journal.record(experiment)
        self.bus.emit(ExperimentStarted(experiment.copy(), slot.name))
        self.bus.state(LoopState.TRAINING, experiment.id)
        spent = self.line.spend(self.limits.started_at)["cost_usd"] + total_usage([experiment])["cost_usd"]
        if self.line.best() is not None and self.limits.more_after_this(self.flags, self.line.in_flight, spent):
            self.proposer.ahead()  # the agent prepares the next experiment while this one trains
        metric, goal = self.config.metric.name, self.config.metric.goal
        rule = acceptance.Rule.from_config(self.config.acceptance)
        reference = self.line.reference(experiment)
        first = self.config.acceptance.runs_for_baseline if experiment.is_baseline else 1
        ended = self._run_seeds(experiment, run_dir, range(first), slot)
        if ended is not None:
            return ended
        noise = self.line.noise()
        sigma = noise.sigma if noise else 0.0
        if reference is not None and not experiment.by_person and rule.mode != "greedy":
            experiment.sigma = sigma
        decision = acceptance.judge(experiment, reference, rule, sigma, metric, goal)
        while isinstance(decision, acceptance.MoreRuns):  # past the screen; again after a borderline first look
            ended = self._run_seeds(experiment, run_dir, range(len(experiment.runs), decision.runs), slot)
            if ended is not None:
                return ended
            decision = acceptance.judge(experiment, reference, rule, sigma, metric, goal)
        experiment.p_value, experiment.gain_sigma = decision.p_value, decision.gain_sigma
        status, reason = (Status.KEEP if decision.keep else Status.DISCARD), decision.reason
        if decision.keep and not experiment.is_baseline:
            answer = self.questions.ask(policy.KEEP, experiment)
            if answer is None or not answer.approved:
                status = Status.DISCARD
                reason = f"{'not confirmed before the stop' if answer is None else 'keep rejected by user'}: {reason}"
        if status == Status.KEEP and self.config.holdout.enabled and not self.flags.stopped.is_set():
            tampered = self._measure_holdout(experiment, run_dir, slot)
            if tampered:
                status, reason = Status.CRASH, f"holdout run: {tampered}"
        return Verdict(status, reason)

    def _measure_holdout(self, experiment: Experiment, run_dir: Path, slot: Slot) -> str:
        """Score the kept commit on the holdout (its log stays beside the runs'); the tampering, if it did.

        A holdout run that fails leaves the keep a keep: the decision was the
        validation set's, and the note says why there is no holdout value."""
        target = measure.Target.holdout(self.config)
        record = self._run_once(experiment, run_dir / "holdout.log", self.config.project.seed, slot, target)
        if record.cause in (Cause.TAMPERED, Cause.GIT_CHANGED):
            return record.crash_reason
        if record.crash_reason or target.metric not in record.metrics:
            experiment.holdout_note = f"holdout run failed: {record.crash_reason or 'no ' + target.metric}"
            self.bus.notice(f"experiment {experiment.id}: {experiment.holdout_note}", "warning")
        else:
            experiment.holdout = record.metrics[target.metric]
        return ""

    def _run_seeds(self, experiment: Experiment, run_dir: Path, indexes: range, slot: Slot) -> Verdict | None:
        """Run the experiment once per seed index; the verdict when a run ends it (a crash, a prune), else None."""
        name, target = self.config.metric.name, measure.Target.validation(self.config)
        for index in indexes:
            seed = self.config.project.seed + index
            log_name = "run.log" if not experiment.runs else f"run.{len(experiment.runs) + 1}.log"
            self.bus.emit(RunStarted(experiment.id, seed, len(experiment.runs) + 1, time.time()))
            result = self._run_once(experiment, run_dir / log_name, seed, slot, target)
            if result.cause == Cause.NODE_LOST and not self.flags.stopped.is_set():  # the host, not the code
                lost = (run_dir / log_name).rename(run_dir / f"{log_name}.lost")  # its log stays
                self.journal.append(  # an attempt, not a run of the mean: the journal says it happened
                    "run_lost", tag=self.tag, experiment=experiment.id, seed=seed,
                    reason=result.crash_reason, log=str(lost),
                )
                self.bus.notice(
                    f"experiment {experiment.id}: {result.crash_reason}; running it again (the lost run's log: {lost})",
                    "warning",
                )
                self.bus.emit(RunStarted(experiment.id, seed, len(experiment.runs) + 1, time.time()))
                result = self._run_once(experiment, run_dir / log_name, seed, slot, target)
            if result.cause == Cause.CLUSTER_GONE and not self.flags.stopped.is_set():  # not the code's crash
                self.limits.fail(result.crash_reason.removeprefix("ray: "))  # the loop ends; the restart measures it
                self.journal.append("unmeasured", tag=self.tag, experiment=experiment.id, reason="a lost Ray cluster")
                raise _NotMeasured
            experiment.runs.append(result)
            load.mark_capped(experiment.runs, self.config.project.time_budget)
            if result.pruned:  # hopeless, not broken: a discard, and the loop learns from it as such
                return Verdict(Status.DISCARD, result.pruned)
            if result.crash_reason:
                experiment.metrics = dict(result.metrics)
                repeat = f"run {len(experiment.runs)} (seed {seed}): " if len(experiment.runs) > 1 else ""
                return Verdict(Status.CRASH, repeat + result.crash_reason)
            good = [run.metrics for run in experiment.runs]
            experiment.metrics = {k: statistics.fmean(m[k] for m in good if k in m) for k in result.metrics}
            values = [m[name] for m in good]
            experiment.metric = statistics.fmean(values)
            experiment.metric_std = statistics.stdev(values) if len(values) > 1 else None
        return None

    def _run_once(
        self, experiment: Experiment, log_path: Path, seed: int, slot: Slot, target: measure.Target,
    ) -> RunResult:
        """One run of the experiment's commit for `target`; what it changed that it must not is put back
        before this returns (and makes it a crash)."""
        labels = {"ARSUP_EXPERIMENT": experiment.id, "ARSUP_TAG": self.tag}
        spec = measure.run_spec(self.config, slot.root, self.python, log_path, seed, labels, target)
        spec.env.update(slot.env)  # the slot's GPU
        pruner = self._pruner(experiment, seed) if target.streams else None

        def forward(lines: list[str], partial: str) -> None:
            if target.streams:
                self.bus.emit(RunOutput(experiment.id, lines, partial))
            if pruner is not None and pruner.feed(lines, partial):
                run.kill(pruner.verdict)

        run = self._new_run(spec, forward, experiment, slot)
        self.guard.before_run(slot, self.branch)
        self.running.start(slot, run)
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
                self.running.done(slot)
                raise
        outcome = run.wait()
        self.running.done(slot)
        if outcome.log_capped:
            self.bus.notice(f"experiment {experiment.id}: {outcome.log_capped}", "warning")
        # A full disk during the run (the log refused output) or after it: the disk's problem, not the code's.
        full = bool(outcome.log_error) or self.disk.is_full()
        stop = self.disk.stop(outcome.log_error) if full else None
        record, tail = measure.result(self.config, spec, outcome, seed, target)
        record.cause = _cause(outcome)
        if pruner is not None:
            record.curve = pruner.curve
            if outcome.killed and pruner.verdict and outcome.kill_reason == pruner.verdict:
                record.pruned, record.crash_reason, tail = pruner.verdict, "", ""
        tampered = self.guard.after_run(experiment, slot)
        if stop is not None:
            raise stop  # after the check: what the run changed is put back either way
        if tampered:
            record.cause, record.crash_reason = tampered
        if tail and target.streams:
            experiment.crash_tail = tail
        return record

    def _new_run(
        self, spec: runner.RunSpec, forward: runner.OutputCallback, experiment: Experiment, slot: Slot,
    ) -> runner.RunHandle:
        """A local process, or a task on a Ray cluster working in a snapshot of the experiment's commit."""
        executor = self.config.executor
        if executor.kind == "ray":
            snapshot = slot.vcs.archive(experiment.commit)
            return ray_cluster.RayRun(
                spec, forward, address=executor.address, snapshot=snapshot, num_gpus=executor.gpus,
            )
        return runner.Run(spec, forward)

    def _pruner(self, experiment: Experiment, seed: int) -> pruning.Pruner | None:
        """A pruner for this run when `[prune]` is on: it records the curve, and judges the first run of a
        candidate against the best's run with the same seed once the branch has enough history."""
        rule = self.config.prune
        if not rule.enabled:
            return None
        best = self.line.reference(experiment)
        reference: pruning.Curve = []
        first_of_a_candidate = not experiment.is_baseline and not experiment.runs
        if best is not None and first_of_a_candidate and self.line.trained() >= rule.warmup:
            reference = next((run.curve for run in best.runs if run.seed == seed and run.curve), [])
        return pruning.Pruner(re.compile(rule.pattern), reference, rule.margin, rule.earliest)


def _cause(outcome: runner.RunOutcome) -> Cause | None:
    """What the loop must do about how the executor ended the run (a Ray node lost, the cluster gone)."""
    failure = outcome.start_error or outcome.kill_reason  # what the record's crash reason says
    if failure.startswith(ray_cluster.NODE_LOST):
        return Cause.NODE_LOST
    if failure.startswith(ray_cluster.GONE):
        return Cause.CLUSTER_GONE
    return None
