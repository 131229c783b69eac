"""When the loop asks a person before going on, and what the person can answer.

`auto` never asks; `edits` asks before an edit is committed; `runs` before each
training run, the baseline included; `keeps` before a keep becomes final.
Repeats and confirmation runs of one experiment never ask again.
"""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

POLICIES = ("auto", "edits", "runs", "keeps")
EDIT, RUN, KEEP = "edit", "run", "keep"
_ASKS = {"auto": frozenset(), "edits": frozenset({EDIT}), "runs": frozenset({RUN}), "keeps": frozenset({KEEP})}


def asks(policy: str, kind: str) -> bool:
    return kind in _ASKS[policy]


def next_policy(policy: str) -> str:
    return POLICIES[(POLICIES.index(policy) + 1) % len(POLICIES)]


@dataclass(frozen=True)
class Answer:
    """A person's answer to an approval: go on or not, and for an edit, the files as they edited them."""

    approved: bool
    files: dict[str, str] | None = None


def settle(future: Future[Any], answer: Answer) -> bool:
    """Answer a question unless it was already answered or withdrawn; True if this answer counts."""
    if future.done():
        return False
    try:
        future.set_result(answer)
    except InvalidStateError:  # answered or withdrawn a moment ago
        return False
    return True
