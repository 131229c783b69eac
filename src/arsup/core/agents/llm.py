"""The LLM researcher: a language model reads the instructions, the code and the history,
states a hypothesis and edits the training code.

A reply that cannot apply goes back to the model with the precise reason, at
most `max_corrections` times; then the engine records the last attempt as
invalid. After a crash the model sees its diff and the log's tail and may fix
its own idea, at most `max_fixes` times. A lab notebook, rewritten by the model
in every reply and kept in the journal, holds what a long night has learned
once the history no longer fits the context.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Sequence

from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.agents.edits import EditError, parse_blocks, parse_hypothesis
from arsup.core.agents.llm_client import LLMCancelled, LLMClient, LLMContextOverflow, LLMFatal, Reply, Usage
from arsup.core.agents.prompt import PromptParts, build_messages
from arsup.core.experiment import Experiment, Status

NOTEBOOK_MAX_CHARS = 3000
WHOLE_FILE_MAX_LINES = 800  # above this a whole-file reply is more likely truncated than right
REPLY_ECHO_CHARS = 20_000  # how much of a bad reply goes back to the model with the correction
_NOTEBOOK = re.compile(r"^\s*[*#_]*\s*notebook\s*[*_]*\s*:\s*[*_]*(.*?)(?=^\s*(?:[-*>]\s+)?(?:#+\s*)?[*_]*\s*hypothesis\s*[*_]*\s*:)", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_FENCED = re.compile(r"^([^\n`]*)\n?```[\w+-]*[ \t]*([^\n`]*)\n(.*?)\n```", re.MULTILINE | re.DOTALL)


def parse_notebook(text: str) -> str:
    match = _NOTEBOOK.search(text)
    return match[1].strip()[:NOTEBOOK_MAX_CHARS] if match else ""


def whole_file_fallback(text: str, files: dict[str, str]) -> dict[str, str]:
    """Whole files a weak model wrote instead of blocks: a fence named after a small editable file."""
    found = {}
    for before, info, body in _FENCED.findall(text):
        for path, current in files.items():
            named = path in (info.strip(), before.strip().strip("*`#: "))
            small = current.count("\n") <= WHOLE_FILE_MAX_LINES
            plausible = body.count("\n") >= current.count("\n") // 2  # not a fragment
            if named and small and plausible:
                found[path] = body + "\n"
    return found


def proposal_from_reply(text: str, files: dict[str, str]) -> tuple[Proposal, str]:
    """The proposal in a reply, and what is missing from it ("" when nothing is).

    Problems with the edit itself are the engine's to find (`AgentContext.check`).
    """
    hypothesis = parse_hypothesis(text)
    try:
        has_blocks = bool(parse_blocks(text))
    except EditError:
        has_blocks = True  # malformed blocks: the engine's check explains what is wrong
    whole = {} if has_blocks else whole_file_fallback(text, files)
    proposal = Proposal(hypothesis=hypothesis or "(no hypothesis)", edits="" if whole else text, files=whole)
    if not hypothesis:
        return proposal, "the reply has no `HYPOTHESIS:` line; start with one line saying what you change and why"
    return proposal, ""


class LLMAgent:
    """The researcher as one model behind litellm: a prompt of the history, a reply of edits, corrections.

    Calls at once, one per slot (`lanes`): a call keeps all it learns in its own locals and tells its own
    proposal (`context.notify`); the only state two calls share is the history cap, a lesson about the
    model's context that holds for both."""

    name = "llm"
    lanes = 64  # calls at once: as many as the loop has slots, in practice ([agent] at_once caps them)

    def __init__(
        self,
        client: LLMClient,
        editable: Sequence[str],
        protected: Sequence[str],
        max_corrections: int = 2,
        max_fixes: int = 2,
    ) -> None:
        self.client = client
        self.editable = list(editable)
        self.protected = list(protected)
        self.max_corrections = max_corrections
        self.max_fixes = max_fixes
        self._history_cap: int | None = None  # lowered when the server says the prompt overflowed

    # -- the protocol -----------------------------------------------------------

    def propose(self, context: AgentContext) -> Proposal | None:
        parts = self._parts(context.history)
        usage, calls = Usage(), []
        try:
            messages, reply = self._first_reply(context, parts, usage, calls)
            for correction in range(self.max_corrections + 1):
                proposal, missing = proposal_from_reply(reply.text, context.files)
                if reply.too_long:
                    reason = "the reply is far too long; answer with the format only: NOTEBOOK, HYPOTHESIS and short blocks"
                else:
                    reason = "; ".join(r for r in (missing, context.check(proposal)) if r)
                if not reason or correction == self.max_corrections:
                    break
                messages = messages + [
                    {"role": "assistant", "content": reply.text[:REPLY_ECHO_CHARS]},
                    {"role": "user", "content": f"That edit was refused: {reason}\nReply again, in the same format."},
                ]
                reply = self._call(messages, context, usage, calls, "correction")
        except LLMCancelled:
            return None
        proposal.meta = self._meta(proposal, parts, reply.text, usage, calls, correction)
        return proposal

    def observe(self, experiment: Experiment) -> None:
        """Nothing to update here: the notebook and fixes are rebuilt from the history each time."""

    # -- helpers -----------------------------------------------------------------

    def _parts(self, history: list[Experiment]) -> PromptParts:
        parts = PromptParts(self.editable, self.protected)
        mine = [e for e in history if e.agent == self.name]
        parts.notebook = next((e.agent_data["notebook"] for e in reversed(mine) if e.agent_data.get("notebook")), "")
        last = history[-1] if history else None
        if last is not None and last.agent == self.name and last.status == Status.CRASH:
            root = last.agent_data.get("idea") or last.id
            fixes = sum(1 for e in history if e.agent_data.get("idea") == root)
            parts.crashed, parts.fixes_left = last, max(0, self.max_fixes - fixes)
        return parts

    def _first_reply(
        self, context: AgentContext, parts: PromptParts, usage: Usage, calls: list[dict]
    ) -> tuple[list[dict[str, str]], Reply]:
        """Ask with as much history as fits; when the server still says it overflowed, halve it."""
        budget = self.client.context_tokens() - self.client.max_tokens - 256
        while True:
            messages = build_messages(context, parts, self.client.count_tokens, budget, self._history_cap)
            try:
                return messages, self._call(messages, context, usage, calls, "proposal")
            except LLMContextOverflow as exc:
                shown = self._history_cap if self._history_cap is not None else len(context.history)
                if shown == 0:
                    raise LLMFatal(
                        f"model {self.client.model}: program.md and the editable files alone overflow its context ({exc})"
                    ) from exc
                self._history_cap = shown // 2
                context.notify(f"the prompt overflowed the context; showing {self._history_cap} experiments")

    def _call(
        self, messages: list[dict[str, str]], context: AgentContext, usage: Usage, calls: list[dict], purpose: str
    ) -> Reply:
        reply = self.client.complete(messages, context.on_text, context.cancel, context.notify)
        usage.add(reply.usage)
        calls.append({"purpose": purpose, **asdict(reply.usage)})
        return reply

    def _meta(
        self, proposal: Proposal, parts: PromptParts, text: str, usage: Usage, calls: list[dict], corrections: int
    ) -> dict:
        meta: dict = {
            "model": self.client.model,
            "usage": asdict(usage),
            "calls": calls,
            "corrections": corrections,
            "notebook": parse_notebook(text) or parts.notebook,
        }
        if parts.crashed is not None and parts.fixes_left and proposal.hypothesis.upper().startswith("FIX"):
            meta["idea"] = parts.crashed.agent_data.get("idea") or parts.crashed.id
        return meta
