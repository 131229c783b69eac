"""Codex as the researcher: `codex exec --json`, one JSON event a line.

Codex edits through its shell tool, so its fence is a sandbox, its own
``workspace-write``: the scratch copy (and the lab, for the notebook)
writable, the network off for its commands. Codex reports tokens, not
dollars: they are priced with litellm's cost map when ``[agent] model`` names
a model it knows, else recorded with a cost of 0 and the person told so once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arsup.config import SandboxConfig
from arsup.core import sandbox
from arsup.core.agents.cli_agent import Invocation, Stream, one_line, quoted
from arsup.core.agents.llm_client import import_litellm


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars for the tokens by litellm's cost map; None when it has no price for the model."""
    if not model:
        return None
    litellm = import_litellm()
    try:
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # litellm raises a bare Exception for a model it does not know
        return None
    return float(prompt) + float(completion)


def installation(program: str) -> Path:
    """The folder the CLI runs from: the npm `node_modules` that holds it (its wrapper starts a native binary
    from another package there), else the program's own folder."""
    real = Path(os.path.realpath(program))
    return next((folder for folder in real.parents if folder.name == "node_modules"), real.parent)


def item_line(item: dict[str, Any], stream: Stream) -> str:
    """One line per finished item: the agent's words, "Run <command> (exit 0)", "Edit train.py"."""
    kind = item.get("type")
    if kind == "agent_message":
        return str(item.get("text", "")).strip()
    if kind == "command_execution":
        return f"Run {one_line(item.get('command', ''), 160)} (exit {item.get('exit_code')})"
    if kind == "file_change":
        changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
        verbs = {"add": "Add", "delete": "Delete", "update": "Edit"}
        return "; ".join(f"{verbs.get(str(c.get('kind')), 'Edit')} {stream.shown_path(c.get('path', ''))}"
                         for c in changes)
    if kind == "error":
        return f"error: {one_line(item.get('message', ''))}"
    return ""


@dataclass
class CodexDialect:
    model: str = ""
    name: str = "codex"
    program: str = "codex"
    install: str = "install it with `npm install -g @openai/codex` (or set [agent] command to its path)"
    login: str = "run `codex login`, or set OPENAI_API_KEY"
    resumes: bool = True

    def fence(self, call: Invocation) -> tuple[str, ...]:
        """arsup's sandbox where it works: the scratch copy, the lab and Codex's home writable, the project's
        .git and .arsup hidden (Codex's own sandbox lets its commands read anywhere)."""
        if sandbox.problem_with():
            return ()
        home = os.environ.get("CODEX_HOME") or str(Path.home() / ".codex")
        settings = SandboxConfig(kind="auto", writable=[str(call.lab), home], network=True)
        return sandbox.prefix(settings, call.workdir, hide=call.hidden, readable=[installation(call.program)])

    def command(self, call: Invocation) -> str:
        options = ["--json", "--skip-git-repo-check"]
        if call.sandbox:  # inside arsup's: Codex's own would need user namespaces, which a sandbox has not
            options += ["--dangerously-bypass-approvals-and-sandbox"]
        else:
            options += ["-c", 'sandbox_mode="workspace-write"',
                        "-c", f"sandbox_workspace_write.writable_roots={json.dumps([str(call.lab)])}"]
        if call.model:
            options += ["-m", call.model]
        if call.resume:
            return quoted([call.program, "exec", "resume", *options, call.resume, call.prompt])
        return quoted([call.program, "exec", *options, call.prompt])

    def read(self, line: str, stream: Stream) -> None:
        event = stream.json(line)
        if event is None:
            return
        kind = event.get("type")
        if kind == "thread.started":
            stream.session = str(event.get("thread_id") or stream.session)
        elif kind == "item.completed" and isinstance(event.get("item"), dict):
            item = event["item"]
            if item.get("type") == "agent_message":
                stream.messages.append(str(item.get("text", "")))
            if shown := item_line(item, stream):
                stream.show(shown)
        elif kind == "turn.completed":
            self._usage(event.get("usage") if isinstance(event.get("usage"), dict) else {}, stream)
        elif kind == "turn.failed":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            stream.errors.append(one_line(error.get("message") or json.dumps(event)))
            stream.failed = True
        elif kind == "error":
            stream.errors.append(one_line(event.get("message") or json.dumps(event)))

    def _usage(self, usage: dict[str, Any], stream: Stream) -> None:
        prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        stream.usage.calls += 1
        stream.usage.prompt_tokens += prompt
        stream.usage.completion_tokens += completion
        cost = price(self.model, prompt, completion)
        if cost is None:
            stream.unpriced = (f"litellm has no price for the model {self.model!r}" if self.model
                               else "no [agent] model is set, so the model Codex used is unknown")
        else:
            stream.usage.cost_usd += cost
