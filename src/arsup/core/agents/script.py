"""An agent that replays proposals from a JSONL file: for tests, benchmarks and demos.

Each line is `{"hypothesis": ..., "edits": "<SEARCH/REPLACE blocks>"}` or
`{"hypothesis": ..., "files": {"train.py": "<whole text>"}}`, with an optional
`"think_s"` to play a slow model and an optional `"usage"` (`{"calls": 1,
"cost_usd": 0.25}`) to play what it costs, so spend and budgets can be
tested without a model. The whole file is checked up front, so a typo
on line 40 is reported before the night starts rather than at 4 a.m.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.experiment import Experiment

KNOWN_KEYS = {"hypothesis", "edits", "files", "think_s", "usage"}


def _line_proposal(raw: Any, where: str) -> tuple[Proposal, float, dict[str, float]]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN_KEYS))}")
    hypothesis, edits, files = raw.get("hypothesis"), raw.get("edits", ""), raw.get("files", {})
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise ValueError(f"{where}: \"hypothesis\" must be a non-empty string")
    if not isinstance(edits, str) or not isinstance(files, dict):
        raise ValueError(f"{where}: \"edits\" must be a string and \"files\" an object")
    if bool(edits) == bool(files):
        raise ValueError(f"{where}: give exactly one of \"edits\" and \"files\"")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError(f"{where}: \"files\" maps paths to whole file texts (strings)")
    think_s = raw.get("think_s", 0)
    if not isinstance(think_s, (int, float)) or think_s < 0:
        raise ValueError(f"{where}: \"think_s\" must be a number of seconds >= 0")
    usage = raw.get("usage", {})
    if not isinstance(usage, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in usage.values()
    ):
        raise ValueError(f"{where}: \"usage\" must map names (calls, cost_usd, ...) to numbers >= 0")
    return Proposal(hypothesis=hypothesis.strip(), edits=edits, files=dict(files)), float(think_s), dict(usage)


def load_script(path: Path) -> list[tuple[Proposal, float]]:
    """Parse and check every line; raises ValueError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read script {path}: {exc.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        proposal, think_s, usage = _line_proposal(raw, where)
        proposal.meta = {"line": number, **({"usage": usage} if usage else {})}
        entries.append((proposal, think_s))
    return entries


class ScriptAgent:
    name = "script"

    def __init__(self, path: Path) -> None:
        self.entries = load_script(path)
        self._position: int | None = None

    def propose(self, context: AgentContext) -> Proposal | None:
        if self._position is None:  # resume after the last line an earlier session used
            used = [e.agent_data.get("line", 0) for e in context.history if e.agent == self.name]
            last = max(used, default=0)
            self._position = sum(1 for proposal, _ in self.entries if proposal.meta["line"] <= last)
        if self._position >= len(self.entries):
            return None
        proposal, think_s = self.entries[self._position]
        self._position += 1
        if think_s and context.cancel.wait(think_s):
            return None
        return Proposal(proposal.hypothesis, proposal.edits, dict(proposal.files), dict(proposal.meta))

    def observe(self, experiment: Experiment) -> None:
        """A replay does not learn."""
