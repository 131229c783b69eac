"""One measured training run as the supervisor defines it: environment, seed, budget, metrics.

The loop, `arsup verify` and `arsup ablate` all measure through here, so a
number from the morning-after checks means exactly what it meant at night.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from arsup.config import Config
from arsup.core import metrics, runner, sandbox
from arsup.core.experiment import RunResult


def run_spec(
    config: Config, root: Path, python: str, log_path: Path, seed: int, labels: dict[str, str], holdout: bool = False,
) -> runner.RunSpec:
    """The run command with the supervisor's environment (allow-listed, seeded, budgeted), watchdogs and
    sandbox (in `root`, which is the project or a slot's worktree); `holdout`: the `[holdout]` command and
    environment instead."""
    project = config.project
    extra = {
        **project.env,
        **(config.holdout.env if holdout else {}),
        "ARSUP_SEED": str(seed),
        "ARSUP_TIME_BUDGET": f"{project.time_budget:g}",
        **labels,
    }
    watchdog = config.watchdog
    command = (config.holdout.run if holdout else "") or project.run
    return runner.RunSpec(
        command=command.replace("{python}", shlex.quote(python)),
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
    config: Config, spec: runner.RunSpec, outcome: runner.RunOutcome, seed: int, holdout: bool = False,
) -> tuple[RunResult, str]:
    """The run's record and, when it crashed, its log tail for the agent (a holdout run's: for nobody).

    The metric is read from the output, not only from the file: what a full
    disk refused to the log (``unlogged``, its end) is read after the file's
    bytes, so a run that printed its metric is never a crash for want of disk."""
    name, pattern = config.metric.name, config.metric.pattern
    if holdout and config.holdout.name and config.holdout.name != name:
        name, pattern = config.holdout.name, ""  # its own line: the metric's pattern is for the metric's
    if holdout and config.holdout.pattern:
        pattern = config.holdout.pattern
    parsed = metrics.parse_log(
        metrics.read_log(spec.log_path) + outcome.unlogged,
        name,
        pattern,
        () if holdout else config.metric.record,
        outcome.exit_code,
        outcome.start_error or outcome.kill_reason,
    )
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
    )
    return record, parsed.tail if parsed.crash_reason else ""


def measure(config: Config, root: Path, python: str, log_path: Path, seed: int, labels: dict[str, str]) -> RunResult:
    """Run once in the foreground (Ctrl-C kills the whole tree before it propagates)."""
    spec = run_spec(config, root, python, log_path, seed, labels)
    record, _ = result(config, spec, runner.run(spec), seed)
    return record
