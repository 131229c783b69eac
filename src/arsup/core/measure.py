"""One measured training run as the supervisor defines it: environment, seed, budget, metrics.

The loop, `arsup verify` and `arsup ablate` all measure through here, so a
number from the morning-after checks means exactly what it meant at night.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from arsup.config import Config
from arsup.core import load, metrics, runner, sandbox
from arsup.core.experiment import RunResult


@dataclass(frozen=True)
class Target:
    """What a run measures and how: the validation run's command and metric, or the holdout's.

    `streams`: its output goes to the screen, it may be pruned, and its crash
    tail is kept for the agent; a holdout run does none of these (a score the
    agent could see is a score it could fit)."""

    command: str
    env: dict[str, str]
    metric: str
    pattern: str
    record: tuple[str, ...]
    streams: bool

    @classmethod
    def validation(cls, config: Config) -> Target:
        metric = config.metric
        return cls(config.project.run, {}, metric.name, metric.pattern, tuple(metric.record), True)

    @classmethod
    def holdout(cls, config: Config) -> Target:
        """The `[holdout]` command and environment; its own metric line when it names one (the metric's
        pattern is for the metric's), its own pattern when it has one."""
        holdout, metric = config.holdout, config.metric
        name, pattern = metric.name, metric.pattern
        if holdout.name and holdout.name != name:
            name, pattern = holdout.name, ""
        return cls(holdout.run or config.project.run, dict(holdout.env), name, holdout.pattern or pattern, (), False)


def run_spec(
    config: Config, root: Path, python: str, log_path: Path, seed: int, labels: dict[str, str],
    target: Target | None = None,
) -> runner.RunSpec:
    """The run command with the supervisor's environment (allow-listed, seeded, budgeted), watchdogs and
    sandbox (in `root`, which is the project or a slot's worktree), for `target` (the validation run's
    by default)."""
    project = config.project
    target = target or Target.validation(config)
    extra = {**project.env, **target.env, "ARSUP_SEED": str(seed), "ARSUP_TIME_BUDGET": f"{project.time_budget:g}", **labels}
    watchdog = config.watchdog
    return runner.RunSpec(
        command=target.command.replace("{python}", shlex.quote(python)),
        cwd=root,
        log_path=log_path,
        env=runner.build_env(os.environ, project.pass_env, extra),
        timeout=project.timeout,
        kill_grace=project.kill_grace,
        stall_s=watchdog.stall_s,
        max_rss_mb=watchdog.memory_gb * 1024,
        abort_pattern=re.compile(watchdog.abort_on) if watchdog.abort_on else None,
        max_log_bytes=int(watchdog.max_log_mb * 1024 * 1024),
        # A Ray task runs in a snapshot on its worker (no .git, no .arsup there), not under this machine's bwrap.
        sandbox=sandbox.prefix(config.sandbox, root) if config.executor.kind == "local" else (),
    )


def result(
    config: Config, spec: runner.RunSpec, outcome: runner.RunOutcome, seed: int, target: Target | None = None,
) -> tuple[RunResult, str]:
    """The run's record and, when it crashed, its log tail for the agent (a holdout run's: for nobody).

    The metric is read from the output, not only from the file: what a full
    disk refused to the log (``unlogged``, its end) is read after the file's
    bytes, so a run that printed its metric is never a crash for want of disk."""
    target = target or Target.validation(config)
    text = metrics.read_log(spec.log_path) + outcome.unlogged
    parsed = metrics.parse_log(
        text,
        target.metric,
        target.pattern,
        target.record,
        outcome.exit_code,
        outcome.start_error or outcome.kill_reason,
    )
    steps, capped = load.steps(text.replace("\r", "\n"))
    record = RunResult(
        seed=seed,
        log_path=str(spec.log_path),
        exit_code=outcome.exit_code,
        wall_s=round(outcome.wall_s, 3),
        peak_rss_mb=round(outcome.peak_rss_mb, 1),
        timed_out=outcome.timed_out,
        killed=outcome.killed,
        metrics=parsed.metrics,
        crash_reason=parsed.crash_reason,
        steps=steps,
        capped=capped,
    )
    return record, parsed.tail if parsed.crash_reason else ""


def measure(config: Config, root: Path, python: str, log_path: Path, seed: int, labels: dict[str, str]) -> RunResult:
    """Run once in the foreground (Ctrl-C kills the whole tree before it propagates)."""
    spec = run_spec(config, root, python, log_path, seed, labels)
    record, _ = result(config, spec, runner.run(spec), seed)
    return record
