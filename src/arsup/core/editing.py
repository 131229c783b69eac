"""A proposal's changes on the repo: plan them, write them, put them back, carry them over.

Every agent (the offline ones and the LLM one) hands the engine a ``Proposal``;
this module turns it into new file texts. Planning and writing are separate so
that a proposal is applied all or nothing: ``plan_changes`` reads the repo,
checks every path and every block and compiles the result without writing a
byte, and only a complete plan reaches ``write_changes``. It is the engine's
side of an edit: agents only parse replies (``arsup.core.agents.edits``) and
never touch files.

Failures raise ``EditError`` whose message is written for the model that made
the edit: it names the file and the block and says how to fix the reply, since
the engine feeds it back as the reason an experiment was invalid.

Planned texts use ``\\n`` line endings whatever the file on disk uses;
``write_changes`` puts each file's own line endings back.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import posixpath
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from arsup.core.agents.base import Proposal
from arsup.core.agents.edits import FORMAT_REMINDER, EditBlock, EditError, parse_blocks

_MAX_SHOWN_LINES = 12


def plan_changes(
    root: Path,
    proposal: Proposal,
    editable: Sequence[str],
    protected: Sequence[str],
    reserved: Sequence[str] = (),
    read: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """Compute, without writing anything, the new text of every file the proposal changes.

    Returns repo-relative POSIX path -> new full text (``\\n`` line endings);
    files whose text ends up unchanged are left out. Every path is checked
    before any block is tried, blocks on one file apply in order to the text
    the earlier ones produced, and every changed ``*.py`` file must compile.
    ``reserved`` names what no edit may touch whatever the globs say (the
    supervisor's own files). ``read`` gives the text a path holds before the
    edit (default: the work tree's, see ``read_current``; a proposal made while
    a run trains is planned against the best commit's). Any failure raises
    EditError and the repo is untouched.
    """
    root = root.resolve()
    read = read or functools.partial(read_current, root)
    if proposal.edits.strip() and proposal.files:
        raise EditError(
            "the proposal carries both SEARCH/REPLACE edits and whole files; send one of them."
        )
    blocks: list[EditBlock] = []
    if proposal.files:
        keys = {raw: _check_path(root, raw, editable, protected, reserved) for raw in proposal.files}
        originals = {key: read(key) for key in keys.values()}
        planned = {keys[raw]: _normalize(text) for raw, text in proposal.files.items()}
    else:
        blocks = parse_blocks(proposal.edits)
        if not blocks:
            raise EditError(f"no edit blocks found in the reply.\n\n{FORMAT_REMINDER}")
        keys = {}
        for number, block in enumerate(blocks, start=1):
            if block.path not in keys:
                try:
                    keys[block.path] = _check_path(root, block.path, editable, protected, reserved)
                except EditError as exc:
                    raise EditError(f"block {number} of {len(blocks)}: {exc}") from None
        originals = {key: read(key) for key in keys.values()}
        planned = _apply_blocks(blocks, keys, originals)
    changes = {key: text for key, text in planned.items() if text != originals[key]}
    for key, text in changes.items():
        if key.endswith(".py"):
            _check_compiles(key, text, [(n, b) for n, b in enumerate(blocks, start=1) if keys[b.path] == key], len(blocks))
    return changes


Saved = dict[str, bytes | None]
"""What each path held before a write (None: it did not exist), to put back exactly that."""


def render_changes(root: Path, changes: Mapping[str, str]) -> dict[str, bytes]:
    """The exact bytes ``write_changes`` will write: each existing file keeps its line endings."""
    root = root.resolve()
    rendered = {}
    for key, text in changes.items():
        target = root / key
        data = _normalize(text)
        if target.exists() and _uses_crlf(target.read_bytes()):
            data = data.replace("\n", "\r\n")
        rendered[key] = data.encode("utf-8")
    return rendered


def write_changes(root: Path, changes: Mapping[str, str]) -> Saved:
    """Write planned texts all or nothing; return what the paths held before, for ``put_back``.

    Files are rewritten in place (not replaced through a temporary file) so
    that their mode, owner and hard links stay as they were; a new file gets
    ``\\n`` endings, the process umask and any missing parent directories.
    All paths are checked against ``root`` again before the first write,
    because a symlink could have appeared since planning. If a write fails,
    what was already written is put back before EditError is raised.
    """
    root = root.resolve()
    targets = {key: (root / key).resolve() for key in changes}
    for key, target in targets.items():
        if not target.is_relative_to(root):
            raise EditError(f"{key}: resolves outside the repository; nothing was written.")
    rendered = render_changes(root, changes)
    saved: Saved = {key: target.read_bytes() if target.exists() else None for key, target in targets.items()}
    written: Saved = {}
    try:
        for key, data in rendered.items():
            written[key] = saved[key]
            targets[key].parent.mkdir(parents=True, exist_ok=True)
            targets[key].write_bytes(data)
    except OSError as exc:
        put_back(root, written)
        raise EditError(f"{exc.filename or 'a file'}: cannot be written ({exc.strerror}); nothing was changed.") from exc
    return saved


def put_back(root: Path, saved: Saved) -> None:
    """Undo ``write_changes``: the old bytes where a file existed, no file where none did.

    Only paths arsup itself wrote are ever in ``saved``, so nothing else is touched."""
    for key, data in saved.items():
        target = root / key
        if data is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(data)


def _check_path(
    root: Path, raw: str, editable: Sequence[str], protected: Sequence[str], reserved: Sequence[str] = (),
    follow: bool = True,
) -> str:
    """Refuse a path the agent may not write; return its canonical repo-relative POSIX path.

    The rules are checked on both the path as written and the path it
    resolves to, so a symlink can neither lead outside ``root`` nor turn an
    editable name into a protected file. ``.git`` is always refused: writing
    there (hooks, config) would reach beyond the training script. With
    ``follow=False`` the name alone is judged, whatever is at it now (a
    symlink, a folder, nothing): a file put back from git is a plain file.
    """
    path = raw.strip()
    if not path or "\x00" in path:
        raise EditError(f"{raw!r}: not a usable file path.")
    if PurePosixPath(path).is_absolute() or re.match(r"^[A-Za-z]:[\\/]|^\\", path):
        raise EditError(f"{path}: absolute paths are refused; use a path relative to the repository.")
    lexical = posixpath.normpath(path)
    if lexical == ".." or lexical.startswith("../"):
        raise EditError(f"{path}: the path leads outside the repository; this is refused.")
    try:
        resolved = (root / lexical).resolve() if follow else root / lexical
    except (OSError, RuntimeError) as exc:
        raise EditError(f"{path}: the path cannot be resolved ({exc}).") from exc
    if not resolved.is_relative_to(root):
        raise EditError(f"{path}: the path resolves outside the repository (through a symlink); this is refused.")
    canonical = resolved.relative_to(root).as_posix()
    names = (lexical, canonical)
    if canonical == "." or (follow and resolved.is_dir()):
        raise EditError(f"{path}: is a directory, not a file.")
    if any(".git" in PurePosixPath(name).parts for name in names):
        raise EditError(f"{path}: files under .git may not be edited.")
    if any(_matches(name, reserved) for name in names):
        raise EditError(f"{path}: the supervisor's own file (or the research instructions); it may not be edited.")
    if any(_matches(name, protected) for name in names):
        raise EditError(f"{path}: the file is protected and may not be edited.")
    if not all(_matches(name, editable) for name in names):
        allowed = ", ".join(editable) or "none"
        raise EditError(f"{path}: the file is not editable; editable files: {allowed}.")
    return canonical


def may_edit(
    root: Path, path: str, editable: Sequence[str], protected: Sequence[str], reserved: Sequence[str],
    follow: bool = True,
) -> bool:
    """Whether an edit to this existing path would pass the path rules (the agent sees only those files);
    `follow=False`: by its name alone (see `_check_path`)."""
    try:
        _check_path(root.resolve(), path, editable, protected, reserved, follow)
    except EditError:
        return False
    return True


def _matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether a path equals or fnmatch-matches an entry (``*`` also spans ``/``)."""
    return any(fnmatch.fnmatchcase(path, posixpath.normpath(pattern)) for pattern in patterns)


def read_current(root: Path, key: str) -> str | None:
    """Current text of a repo file with ``\\n`` line endings, or None if it does not exist."""
    target = root / key
    return decode_text(key, target.read_bytes()) if target.exists() else None


def decode_text(key: str, data: bytes) -> str:
    """A file's bytes as the text edits match against (``\\n`` line endings); EditError if not UTF-8."""
    try:
        return _normalize(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EditError(f"{key}: the file is not UTF-8 text and cannot be edited.") from exc


def _normalize(text: str) -> str:
    """Use ``\\n`` line endings, so matching never trips over a file's CRLFs."""
    return text.replace("\r\n", "\n")


def _uses_crlf(data: bytes) -> bool:
    """A file's line-ending style is that of its first line ending."""
    first = data.find(b"\n")
    return first > 0 and data[first - 1 : first] == b"\r"


def _apply_blocks(
    blocks: Sequence[EditBlock], keys: Mapping[str, str], originals: Mapping[str, str | None]
) -> dict[str, str]:
    """Apply the blocks in order to in-memory texts; return each touched file's final text."""
    texts: dict[str, str | None] = dict(originals)
    edited: set[str] = set()
    total = len(blocks)
    for number, block in enumerate(blocks, start=1):
        key = keys[block.path]
        where = f"{key}, block {number} of {total}"
        current = texts[key]
        if not block.search:
            if current:
                raise EditError(
                    f"{where}: the SEARCH is empty, but {key} already exists and is not empty; "
                    "an empty SEARCH only creates a new file. Copy the lines to change into SEARCH."
                )
            texts[key] = block.replace
        elif current is None:
            raise EditError(
                f"{where}: {key} does not exist; to create it, leave the SEARCH section empty."
            )
        else:
            texts[key] = _replace_once(current, block, where, edited=key in edited)
        edited.add(key)
    return {key: text for key, text in texts.items() if text is not None}


def carry_over(path: str, before: str | None, after: str, onto: str | None) -> str:
    """The change ``before`` -> ``after`` of one file, applied to ``onto`` (the file as it is now).

    A proposal made for an older best is carried onto the new one hunk by
    hunk: each changed run of lines becomes a SEARCH/REPLACE block, applied
    where its old lines are still found once, even beside lines changed since
    (where a three-way merge would see a conflict). EditError when one is not.
    """
    if not before:
        if onto:
            raise EditError(f"{path}: the proposal creates it, but it exists now")
        return after
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    blocks = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        low, high = i1, i2
        if i1 == i2:  # an insertion is anchored on the line above it (below it at the top)
            low, high = (i1 - 1, i2) if i1 > 0 else (i1, i2 + 1)
        search = "".join(old[low:high])
        replace = "".join(old[low:i1]) + "".join(new[j1:j2]) + "".join(old[i2:high])
        blocks.append(EditBlock(path, search, replace))
    return _apply_blocks(blocks, {path: path}, {path: onto})[path]


def _lines(text: str) -> list[str]:
    """Split into lines without their ``\\n``; a final newline does not make an extra line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def _replace_once(text: str, block: EditBlock, where: str, *, edited: bool) -> str:
    """Replace the one place where the block's SEARCH lines match.

    Exact line matches are tried first; only if there are none are lines
    compared without leading/trailing whitespace, because models often get an
    indentation level wrong while the code is right. A SEARCH that matches
    several places is refused, as the model's intent is then ambiguous.
    """
    lines = _lines(text)
    search = _lines(block.search)
    replace = _lines(block.replace)
    note = " (line numbers count in the file as already changed by the earlier blocks)" if edited else ""
    starts = _find(lines, search, lambda line: line)
    if not starts:
        starts = _find(lines, search, str.strip)
        if len(starts) == 1:
            replace = _reindent(replace, search, lines[starts[0] : starts[0] + len(search)])
    if not starts:
        raise EditError(
            f"{where}: the SEARCH text matches nothing in the file.{_closest(lines, search, note)}\n"
            "Copy the SEARCH lines exactly from the current file."
        )
    if len(starts) > 1:
        places = ", ".join(str(start + 1) for start in starts)
        raise EditError(
            f"{where}: the SEARCH text matches {len(starts)} places, starting at lines "
            f"{places}{note}; add neighbouring lines to SEARCH so it matches exactly one."
        )
    start = starts[0]
    new_lines = lines[:start] + replace + lines[start + len(search) :]
    if not new_lines:
        return ""
    return "\n".join(new_lines) + ("\n" if text.endswith("\n") else "")


def _find(lines: list[str], search: list[str], key: Callable[[str], str]) -> list[int]:
    """Start indices where ``search`` matches consecutive ``lines`` under ``key``."""
    want = [key(line) for line in search]
    have = [key(line) for line in lines]
    size = len(want)
    return [start for start in range(len(have) - size + 1) if have[start : start + size] == want]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(replace: list[str], search: list[str], matched: list[str]) -> list[str]:
    """Shift the replacement by the indentation the SEARCH was off by.

    The offset is taken from the first non-blank SEARCH line and the file line
    it matched, and applied to every non-blank replacement line, so nested
    code keeps its shape relative to the matched code.
    """
    first = next((i for i, line in enumerate(search) if line.strip()), None)
    if first is None:
        return replace
    want, have = _indent(matched[first]), _indent(search[first])
    shift = len(want) - len(have)
    if shift > 0:
        pad = want[:shift]
        return [pad + line if line.strip() else line for line in replace]
    if shift < 0:
        return [line[min(-shift, len(_indent(line))) :] for line in replace]
    return replace


def _closest(lines: list[str], search: list[str], note: str) -> str:
    """Describe the file lines most like the SEARCH text, so the model can copy them."""
    if not lines:
        return " The file is empty."
    wanted = "\n".join(search)
    size = min(len(search), len(lines))
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    best_start, best_ratio = 0, -1.0
    for start in range(len(lines) - size + 1):
        matcher.set_seq1("\n".join(lines[start : start + size]))
        if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_start, best_ratio = start, ratio
    shown = lines[best_start : best_start + min(size, _MAX_SHOWN_LINES)]
    width = len(str(best_start + len(shown)))
    excerpt = "\n".join(f"{best_start + i + 1:>{width}}| {line}" for i, line in enumerate(shown))
    more = "\n..." if size > len(shown) else ""
    last = best_start + size
    span = f"line {best_start + 1}" if size == 1 else f"lines {best_start + 1}-{last}"
    return f" The closest lines of the file are {span}{note}:\n{excerpt}{more}"


def _check_compiles(key: str, text: str, blocks: Sequence[tuple[int, EditBlock]], total: int) -> None:
    """Refuse a Python file that would not even compile: training it would only crash.

    The message quotes the edited text around the error. Python's own
    `SyntaxError.text` is read from the file on disk, which still holds the
    old line, and showing the model its old code as the error misleads it.
    """
    try:
        with warnings.catch_warnings():
            # A warning (say, an invalid escape) must not fail code that runs.
            warnings.simplefilter("ignore")
            compile(text, key, "exec", dont_inherit=True)
    except SyntaxError as exc:
        lines = _lines(text)
        number = exc.lineno or 0
        where = f"{key} (whole file)" if not total else f"{key}, {_block_of(lines, number, blocks, total)}"
        shown = range(max(number - 2, 1), min(number + 1, len(lines)) + 1)
        width = max(len(str(shown.stop - 1)), 4)
        excerpt = "\n".join(f"{'>' if n == number else ' '} {n:>{width}}| {lines[n - 1]}" for n in shown)
        raise EditError(
            f"{where}: after the edits the file does not compile: line {number}: {exc.msg}\n{excerpt}"
        ) from exc
    except ValueError as exc:
        raise EditError(f"{key}: after the edits the file does not compile: {exc}") from exc


def _block_of(lines: list[str], number: int, blocks: Sequence[tuple[int, EditBlock]], total: int) -> str:
    """Which block wrote the line at fault, as the model numbered them."""
    if not 1 <= number <= len(lines):
        return "the end of the file" if blocks else ""
    wanted = lines[number - 1].strip()
    for index, block in blocks:
        if any(line.strip() == wanted for line in _lines(block.replace)):
            return f"block {index} of {total}"
    return "at a line no block wrote (look at what the blocks removed or left open before it)"
