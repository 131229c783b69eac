"""What an edit changes, reduced to a signature, so the loop never runs the same idea twice.

Agents walk in circles over a long night (the same LR bump again and again,
each time "new"). Two edits are the same idea when they remove and add the
same lines, wherever those lines sit, or when they set the same top-level
constants to the same values. Signatures come from unified diffs, so the ones
of past experiments are rebuilt from the journal without touching git.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from arsup.core.experiment import Experiment, Status

CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
"""A top-level constant's name (match it whole): what a signature names and what the tuner tunes."""
_ASSIGNMENT = re.compile(rf"^({CONSTANT_NAME.pattern})\s*(?::[^=]+)?=\s*(.+?)\s*(?:#.*)?$")


@dataclass(frozen=True)
class Signature:
    lines: frozenset[tuple[str, str]]  # ("-" or "+", stripped line)
    constants: frozenset[tuple[str, str]]  # (NAME, canonical value) set by added lines

    def __bool__(self) -> bool:
        return bool(self.lines)

    @property
    def only_seeds(self) -> bool:
        """Every changed line is about a seed: re-seeding fits the noise, it is no idea."""
        return bool(self.lines) and all("seed" in text.lower() for _, text in self.lines)

    def describe(self) -> str:
        if self.constants:
            return ", ".join(f"{name} = {value}" for name, value in sorted(self.constants))
        return f"{len(self.lines)} changed lines"


def _canonical(value: str) -> str:
    """`3e-3`, `0.003` and `0.0030` are one value; anything not a literal stays as written."""
    try:
        return repr(ast.literal_eval(value))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return " ".join(value.split())


def signature(diff: str) -> Signature:
    lines, constants = set(), set()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")) or line[:1] not in ("+", "-"):
            continue
        text = line[1:].strip()
        if not text:
            continue
        lines.add((line[0], text))
        match = _ASSIGNMENT.match(text)
        if line[0] == "+" and match:
            constants.add((match[1], _canonical(match[2])))
    return Signature(frozenset(lines), frozenset(constants))


def diff_texts(before: Mapping[str, str | None], after: Mapping[str, str], context: int = 0) -> str:
    """A unified diff of planned changes (path -> old text or None for a new file -> new text)."""
    out: list[str] = []
    for path, new in sorted(after.items()):
        old = before.get(path) or ""
        out.extend(
            difflib.unified_diff(
                old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm="", n=context
            )
        )
    return "\n".join(out)


def same_idea(candidate: Signature, earlier: Signature) -> bool:
    """The same lines removed and added, or the same constants set to the same values (and nothing else)."""
    if not candidate:
        return False
    if earlier.lines == candidate.lines:
        return True
    return bool(candidate.constants) and earlier.constants == candidate.constants and _only_constants(candidate)


def find_repeat(candidate: Signature, history: Iterable[Experiment]) -> Experiment | None:
    """The earlier trained attempt this edit repeats, exactly or by its constants, if any."""
    for past in history:
        if past.status in Status.TRAINED and past.diff and same_idea(candidate, signature(past.diff)):
            return past
    return None


def _only_constants(candidate: Signature) -> bool:
    """True when every added line sets a constant, so the constants are the whole idea."""
    added = [text for sign, text in candidate.lines if sign == "+"]
    return all(_ASSIGNMENT.match(text) for text in added)


def place(diff: str) -> frozenset[str]:
    """Where an edit acts, whatever values it tries: the constants it sets, else the lines it replaces."""
    changed = signature(diff)
    if changed.constants and _only_constants(changed):
        return frozenset(name for name, _ in changed.constants)
    removed = frozenset(text for sign, text in changed.lines if sign == "-")
    return removed or frozenset(text for _, text in changed.lines)


def describe_place(where: frozenset[str]) -> str:
    names = sorted(where)
    if all(CONSTANT_NAME.fullmatch(name) for name in names):
        return ", ".join(names)
    return "; ".join(f"`{line}`" for line in names[:3]) + (f" and {len(names) - 3} more lines" if len(names) > 3 else "")


def circling(history: Sequence[Experiment]) -> list[Experiment]:
    """The trailing run of the agent's experiments that all act on one place, oldest first.

    The same constant with ever new values, or the same lines rewritten
    again and again, is a loop that exact-repeat refusal cannot see. Edits
    that never applied (no diff) and a candidate measured again neither
    break nor extend the run; the baseline or a person's commit ends it.
    """
    trail: list[Experiment] = []
    for past in reversed(history):
        if past.is_baseline or past.agent == "person":
            break
        if not past.diff or past.agent_data.get("again_of"):
            continue
        if trail and place(past.diff) != place(trail[0].diff):
            break
        trail.insert(0, past)
    return trail
