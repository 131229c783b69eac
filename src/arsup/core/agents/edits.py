"""SEARCH/REPLACE edits as an agent writes them: a reply read into a hypothesis and blocks.

Only text is read here: nothing looks at the repo or writes a file, since
agents never touch files. Planning the blocks on the repo and writing them is
the engine's side, ``arsup.core.editing``, which raises the same ``EditError``.

Failures raise ``EditError`` whose message is written for the model that made
the edit: it names the block and says how to fix the reply, since the engine
feeds it back as the reason an experiment was invalid.

The reply format (aider's)::

    HYPOTHESIS: a higher learning rate converges faster in the time budget

    train.py
    ```python
    <<<<<<< SEARCH
    LR = 0.0005
    =======
    LR = 0.003
    >>>>>>> REPLACE
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_REMINDER = """\
Write each change as the file's path on its own line, then a fenced block:

train.py
```python
<<<<<<< SEARCH
<lines copied exactly from the current file>
=======
<the lines that replace them>
>>>>>>> REPLACE
```

A SEARCH must match exactly one place in the file. To create a new file, leave the SEARCH empty."""

_SEARCH = re.compile(r"^<{5,9}\s*SEARCH\s*$", re.IGNORECASE)
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9}\s*REPLACE\s*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(?:`{3,}|~{3,})\s*(.*?)\s*$")
# "**HYPOTHESIS:** ...", "## Hypothesis: ...", "- hypothesis: ..." all count.
_HYPOTHESIS = re.compile(
    r"^\s*(?:[-*>]\s+)?(?:#+\s*)?[*_]*\s*hypothesis\s*[*_]*\s*:\s*[*_]*\s*(.*?)\s*$",
    re.IGNORECASE,
)
_PATH_PREFIX = re.compile(r"^(?:file(?:name)?|path)\s*:\s*", re.IGNORECASE)
_PATH_CHARS = re.compile(r"^[\w.\-/]+$")


class EditError(Exception):
    """An edit that cannot be applied; str() is the reason, written for the model."""


@dataclass(frozen=True)
class EditBlock:
    """One SEARCH/REPLACE block; ``search`` and ``replace`` end with a newline unless empty."""

    path: str
    search: str
    replace: str


def parse_hypothesis(text: str) -> str:
    """Return the hypothesis of a reply: the text after its first ``HYPOTHESIS:`` label.

    Models decorate the label (bold, heading, bullet) and sometimes put the
    hypothesis on the next line instead; both are accepted so that a good
    proposal is not lost to formatting. Returns "" when there is no label.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        match = _HYPOTHESIS.match(line)
        if not match:
            continue
        rest = _strip_emphasis(match.group(1))
        if rest:
            return rest
        following = next((ln.strip() for ln in lines[index + 1 :] if ln.strip()), "")
        if _FENCE.match(following) or _SEARCH.match(following):
            return ""
        return _strip_emphasis(following)
    return ""


def parse_blocks(text: str) -> list[EditBlock]:
    """Parse every SEARCH/REPLACE block of a reply, in order.

    A block's path is the nearest non-blank line above its SEARCH marker,
    looking through an opening fence (whose info string may itself be the
    path). A block with no path line of its own reuses the previous block's
    path, which is how several blocks for one file share one fence. Prose and
    other code blocks between edit blocks are ignored.

    Raises EditError for a block that is cut short or has no path, since
    silently skipping it would apply only part of what the model meant.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[EditBlock] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _REPLACE.match(line):
            raise EditError(
                f"line {index + 1}: a >>>>>>> REPLACE marker without a <<<<<<< SEARCH "
                f"marker before it.\n\n{FORMAT_REMINDER}"
            )
        if not _SEARCH.match(line):
            index += 1
            continue
        number = len(blocks) + 1
        path = _path_above(lines, index)
        if path is None:
            if not blocks:
                raise EditError(
                    f"block {number}: no file path before its <<<<<<< SEARCH marker; put "
                    f"the path on its own line just above the opening fence.\n\n{FORMAT_REMINDER}"
                )
            path = blocks[-1].path
        search, index = _section(lines, index + 1, number, end=_DIVIDER, end_name="=======")
        replace, index = _section(lines, index + 1, number, end=_REPLACE, end_name=">>>>>>> REPLACE")
        blocks.append(EditBlock(path=path, search=search, replace=replace))
        index += 1
    return blocks


def _strip_emphasis(text: str) -> str:
    """Drop markdown bold markers around a one-line value."""
    return text.strip().strip("*").strip()


def _section(
    lines: list[str], start: int, number: int, *, end: re.Pattern[str], end_name: str
) -> tuple[str, int]:
    """Collect lines from ``start`` up to the ``end`` marker; return the text and the marker's index.

    Running into another block's markers means this one was cut short, which
    is reported rather than guessed at.
    """
    body: list[str] = []
    for index in range(start, len(lines)):
        line = lines[index]
        if end.match(line):
            return "".join(f"{ln}\n" for ln in body), index
        if _SEARCH.match(line) or (end is _DIVIDER and _REPLACE.match(line)):
            raise EditError(
                f"block {number}: line {index + 1} starts another marker before this "
                f"block's {end_name} line.\n\n{FORMAT_REMINDER}"
            )
        body.append(line)
    raise EditError(
        f"block {number}: the reply ends before this block's {end_name} line.\n\n{FORMAT_REMINDER}"
    )


def _path_above(lines: list[str], search_index: int) -> str | None:
    """Find the path written for the block whose SEARCH marker is at ``search_index``."""
    index = _previous_nonblank(lines, search_index)
    if index is None:
        return None
    fence = _FENCE.match(lines[index])
    if fence:
        for token in reversed(fence.group(1).split()):
            path = _as_path(token)
            if path:
                return path
        index = _previous_nonblank(lines, index)
        if index is None:
            return None
    return _as_path(lines[index])


def _previous_nonblank(lines: list[str], index: int) -> int | None:
    """Index of the nearest non-blank line above ``index``, if any."""
    for earlier in range(index - 1, -1, -1):
        if lines[earlier].strip():
            return earlier
    return None


def _as_path(line: str) -> str | None:
    """Return the path a line names (``**train.py**``, ``# `train.py`:``), or None for prose.

    A path is one token with a slash or an extension, so a sentence or a
    language name ("python") is never mistaken for one.
    """
    text = line
    previous = None
    while previous != text:
        previous = text
        text = _PATH_PREFIX.sub("", text.strip().lstrip("#").strip())
        text = text.rstrip(":").strip("*`'\"").strip()
    if not _PATH_CHARS.match(text):
        return None
    if "/" in text or re.search(r"\w\.\w", text):
        return text
    return None
