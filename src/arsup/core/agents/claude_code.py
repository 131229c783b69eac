"""Claude Code as the researcher: `claude -p PROMPT --output-format stream-json --verbose`.

Its fence is its own permission system, not a sandbox: ``--restricted``
confines the file tools to the working directories (the scratch copy and
``--add-dir`` the lab) and takes away every tool that runs code, ``--tools``
names the file tools only (and Bash with ``[agent] allow_shell``), and deny
rules keep the project folder itself (its ``.git``, its ``.arsup``) out of
reach even where a path leads there. A refused tool call comes back in the
result's ``permission_denials``: it is shown and kept, never hidden.
The dollars are its own (the result's ``total_cost_usd``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from arsup.core.agents.cli_agent import Invocation, Stream, one_line, quoted

FILE_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep")
SHELL_TOOLS = ("Bash",)


def settings(call: Invocation) -> str:
    """Deny rules for the folders the agent must not see (`//` starts an absolute path in a rule)."""
    rules = [f"{tool}(/{folder}/**)" for folder in call.hidden for tool in ("Read", "Edit", "Write")]
    return json.dumps({"permissions": {"deny": rules}})


def tool_line(name: str, given: dict[str, Any], stream: Stream) -> str:
    """One line per tool call: "Read train.py", "Edit train.py +1 -1"."""
    path = stream.shown_path(given.get("file_path") or given.get("path") or "")
    if name == "Edit":
        return f"Edit {path} {_counts(given.get('old_string', ''), given.get('new_string', ''))}"
    if name == "MultiEdit":
        edits = given.get("edits") or []
        old = "\n".join(str(e.get("old_string", "")) for e in edits if isinstance(e, dict))
        new = "\n".join(str(e.get("new_string", "")) for e in edits if isinstance(e, dict))
        return f"Edit {path} {_counts(old, new)}"
    if name == "Write":
        return f"Write {path} +{len(str(given.get('content', '')).splitlines())}"
    if name in ("Glob", "Grep"):
        return f"{name} {given.get('pattern', '')}" + (f" in {path}" if path else "")
    if name == "Bash":
        return f"Bash {one_line(given.get('command', ''), 160)}"
    return f"{name} {path}".rstrip() if path else f"{name} {one_line(json.dumps(given), 120)}"


def _counts(old: object, new: object) -> str:
    return f"+{len(str(new).splitlines())} -{len(str(old).splitlines())}"


@dataclass
class ClaudeCodeDialect:
    name: str = "claude-code"
    program: str = "claude"
    install: str = "install it with `npm install -g @anthropic-ai/claude-code` (or set [agent] command to its path)"
    login: str = "run `claude` once and log in (/login), or set ANTHROPIC_API_KEY"
    resumes: bool = True

    def fence(self, call: Invocation) -> tuple[str, ...]:
        return ()

    def command(self, call: Invocation) -> str:
        tools = FILE_TOOLS + (SHELL_TOOLS if call.allow_shell else ())
        argv = [call.program, "-p", call.prompt, "--output-format", "stream-json", "--verbose",
                "--restricted", "--tools", ",".join(tools), "--permission-mode", "acceptEdits",
                "--add-dir", str(call.lab), "--settings", settings(call)]
        if call.model:
            argv += ["--model", call.model]
        if call.resume:
            argv += ["--resume", call.resume]
        return quoted(argv)

    def read(self, line: str, stream: Stream) -> None:
        event = stream.json(line)
        if event is None:
            return
        stream.session = str(event.get("session_id") or stream.session)
        kind = event.get("type")
        if kind == "assistant":
            self._assistant(event, stream)
        elif kind == "result":
            self._result(event, stream)

    def _assistant(self, event: dict[str, Any], stream: Stream) -> None:
        message = event.get("message") if isinstance(event.get("message"), dict) else {}
        texts = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                texts.append(str(block["text"]))
                stream.messages.append(str(block["text"]))
                stream.show(str(block["text"]).strip())
            elif block.get("type") == "tool_use":
                given = block.get("input") if isinstance(block.get("input"), dict) else {}
                stream.show(tool_line(str(block.get("name", "?")), given, stream))
        if event.get("error"):  # the API refused the call (a bad key, an unknown model): its words are the text
            stream.errors.append(f"{event['error']}: {one_line(' '.join(texts))}")

    def _result(self, event: dict[str, Any], stream: Stream) -> None:
        usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
        prompt = sum(int(usage.get(key) or 0) for key in
                     ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        stream.usage.calls += 1
        stream.usage.prompt_tokens += prompt
        stream.usage.completion_tokens += int(usage.get("output_tokens") or 0)
        stream.usage.cost_usd += float(event.get("total_cost_usd") or 0.0)
        for denial in event.get("permission_denials") or []:
            if isinstance(denial, dict):
                given = denial.get("tool_input") if isinstance(denial.get("tool_input"), dict) else {}
                refused = tool_line(str(denial.get("tool_name", "?")), given, stream)
                stream.denials.append(refused)
                stream.show(f"denied: {refused}")
        if isinstance(event.get("result"), str) and event["result"].strip():
            stream.messages.append(event["result"])
        if event.get("is_error"):
            said = event.get("result") or " ".join(map(str, event.get("errors") or [])) or event.get("subtype")
            stream.errors.append(one_line(str(said)))
            stream.failed = True
