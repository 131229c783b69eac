"""A coding agent's kept transcript (`.arsup/runs/<id>/agent.jsonl`) read back as the lines the screen showed live.

The transcript holds every line the CLI printed (parsed where it was JSON,
``{"type": "output"}`` where it was not) and an ``arsup.call`` event before
each call. Its lines are not rendered here: each event goes through its
dialect's own ``read`` again, into a `Stream` that collects what it shows, so
a tool call reads "Read train.py" / "Edit train.py +1 -1" and a refused one
"denied: ..." exactly as it did while the agent worked. Replaying starts no
process and prices nothing (the dialects are made without a model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from arsup.core.agents.claude_code import ClaudeCodeDialect
from arsup.core.agents.cli_agent import CALL, Dialect, Stream
from arsup.core.agents.codex import CodexDialect
from arsup.core.agents.command import CommandDialect

DIALECTS: dict[str, Callable[[], Dialect]] = {"claude-code": ClaudeCodeDialect, "codex": CodexDialect}


def dialect_of(agent: str) -> Dialect:
    """The dialect that reads an agent kind's stream; a command agent's (plain lines) for any other kind."""
    made = DIALECTS.get(agent)
    return made() if made is not None else CommandDialect("")


def read(path: Path) -> list[dict[str, Any]]:
    """The events of an `agent.jsonl`; a line that is no JSON object (a torn last line) is kept as plain output."""
    events: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        events.append(event if isinstance(event, dict) else {"type": "output", "text": line})
    return events


def shown_lines(events: Iterable[dict[str, Any]], agent: str) -> list[str]:
    """What the screen showed of these events, one line per message line, tool call and plain output line; each
    call opens with a rule saying which call it was and whether it resumed a session."""
    dialect = dialect_of(agent)
    lines: list[str] = []
    stream = Stream(show=lambda shown: lines.extend(shown.splitlines() or [""]))
    calls = 0
    for event in events:
        kind = event.get("type")
        if kind == CALL:
            calls += 1
            resumed = f"resuming session {event['resume']}" if event.get("resume") else "a fresh session"
            lines.append(f"── call {calls}: {resumed} ──")
            workdir = event.get("workdir")
            stream.workdir = Path(workdir) if isinstance(workdir, str) and workdir else None
        elif kind == "output":
            lines.append(str(event.get("text", "")))
        else:
            dialect.read(json.dumps(event), stream)
    return lines
