"""Read the metrics out of a training log, and decide whether the run crashed.

A run counts only when it printed a finite value of the metric, exited 0 and
never said FAIL (autoresearch prints it, glued to the end of its `\\r`
progress line, when the loss explodes). Everything else is a crash with a
reason and the log's tail, which the agent reads before its next proposal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from arsup.core.metric_names import goal_of
from arsup.core.terminal import collapse_progress

NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)"
FAIL_WORD = re.compile(r"\bFAIL\b")
TAIL_LINES = 50
TAIL_BYTES = 8 * 1024  # the tail goes into the journal and the next prompt: a flood must not
_NAME_VALUE = re.compile(rf"^\s*([A-Za-z_][\w.]*)\s*[:=]\s*{NUMBER}\s*$", re.IGNORECASE)
SET_METRIC_NAME = "(set `[metric] name`)"


@dataclass
class ParsedLog:
    metrics: dict[str, float] = field(default_factory=dict)
    crash_reason: str = ""  # empty when the run counts
    tail: str = ""  # the last lines, `\r` progress collapsed


def metric_pattern(name: str, pattern: str = "") -> re.Pattern[str]:
    """The configured regex, or a line `<name>: <number>` (autoresearch's summary block)."""
    if pattern:
        return re.compile(pattern, re.MULTILINE)
    return re.compile(rf"^\s*{re.escape(name)}\s*[:=]\s*({NUMBER})\s*$", re.MULTILINE | re.IGNORECASE)


def log_lines(text: str) -> list[str]:
    """Lines as a person saw them: each `\r`-rewritten progress line counts once, as its last state."""
    lines = [collapse_progress(line) for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def log_tail(lines: list[str], max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
    """The last lines of a log, at most `max_bytes` of UTF-8, cut at the front with a marker saying so."""
    tail = "\n".join(lines[-max_lines:])
    data = tail.encode("utf-8")
    if len(data) <= max_bytes:
        return tail
    kept = data[-max_bytes:].decode("utf-8", errors="ignore")
    return f"[arsup: {len(data) - len(kept.encode('utf-8'))} earlier bytes of the tail cut]\n{kept}"


def parse_log(
    text: str,
    metric: str,
    pattern: str = "",
    record: tuple[str, ...] | list[str] = (),
    exit_code: int | None = 0,
    failure: str = "",
) -> ParsedLog:
    """Parse a whole log. `failure` is the supervisor's own reason (timeout, kill), which wins."""
    lines = log_lines(text)
    # Progress segments are searched too, since autoresearch glues FAIL onto one.
    searchable = text.replace("\r", "\n")
    parsed = ParsedLog(tail=log_tail(lines))
    for name, regex in [(metric, metric_pattern(metric, pattern))] + [(n, metric_pattern(n)) for n in record]:
        matches = regex.findall(searchable)
        if matches:
            try:
                parsed.metrics[name] = float(matches[-1])
            except ValueError:
                parsed.metrics[name] = math.nan
    value = parsed.metrics.get(metric)
    if failure:
        parsed.crash_reason = failure
    elif FAIL_WORD.search(searchable):
        parsed.crash_reason = "the run printed FAIL" + (f" (exit code {exit_code})" if exit_code else "")
    elif exit_code not in (0, None):
        parsed.crash_reason = f"exit code {exit_code}"
    elif value is None:
        printed = [] if pattern else _other_metric_lines(lines, {metric, *record})
        parsed.crash_reason = (
            f"no `{metric}:` line; the log has {', '.join(f'`{name}:`' for name in printed)} {SET_METRIC_NAME}"
            if printed else f"no {metric} in the output"
        )
    elif not math.isfinite(value):
        parsed.crash_reason = f"{metric} is {value}"
    return parsed


def _other_metric_lines(lines: list[str], known: set[str], most: int = 3) -> list[str]:
    """The names of the log's other `name: number` lines, scores (val_loss, acc) first: a project whose
    training prints val_loss while arsup.toml says val_bpb is told which name to set, not to fix the script."""
    names = list(dict.fromkeys(m.group(1) for line in lines if (m := _NAME_VALUE.match(line))))
    names = [name for name in names if name not in known]
    return sorted(names, key=lambda name: goal_of(name) is None)[:most]


def names_the_wrong_metric(reason: str) -> bool:
    """Whether a crash's reason is a metric name the log does not print (next to others it does)."""
    return reason.endswith(SET_METRIC_NAME)


def read_log(path: Path) -> str:
    """A run's log as text; a run that never started has none."""
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
