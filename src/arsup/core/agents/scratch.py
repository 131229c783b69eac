"""The scratch copy a coding agent edits, and what it changed there: the proposal's files.

Every changed or added text file is reported, whatever its path: a change
outside the editable files must reach the engine's check, which refuses it
with the file named (an agent that hides it would make a refused edit look
like a clean one). What a proposal cannot carry (a deleted file, a file that
is not text) is named here instead, for the agent to put right. Python's
byte-code caches are left out: they come from running the code, not from
an edit, and git ignores them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

_CACHE_PARTS = ("__pycache__",)
_CACHE_SUFFIXES = (".pyc", ".pyo")
_SYMLINK = b"\xff symlink"  # not UTF-8: no text file reads the same


@dataclass
class Changes:
    files: dict[str, str] = field(default_factory=dict)  # changed or added text file -> its new text
    problems: list[str] = field(default_factory=list)  # what no proposal can carry, one sentence each

    def refusal(self) -> str:
        return "; ".join(self.problems)


class Scratch:
    """One folder, emptied and filled from the best commit for each proposal (a fixed path, so that a CLI that
    keeps its sessions per working directory can resume them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._before: dict[str, bytes] = {}

    def reset(self, export: Callable[[Path], None]) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        export(self.folder)
        self._before = _read_all(self.folder)

    def changes(self) -> Changes:
        found = Changes()
        after = _read_all(self.folder)
        for path in sorted(set(self._before) - set(after)):
            found.problems.append(f"{path} was deleted; arsup does not delete files: put it back")
        for path, data in sorted(after.items()):
            if self._before.get(path) == data:
                continue
            if data == _SYMLINK:
                found.problems.append(f"{path} is a symbolic link; only text files can be proposed: remove it")
                continue
            try:
                found.files[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                found.problems.append(f"{path} is not UTF-8 text; only text files can be proposed: remove it")
        return found


def _read_all(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its POSIX path relative to it; a symlink as a marker, never followed (it
    may point anywhere), which differs from any text so that a new one is named."""
    files = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part in _CACHE_PARTS for part in relative.parts) or path.suffix in _CACHE_SUFFIXES:
            continue
        if path.is_symlink():
            files[relative.as_posix()] = _SYMLINK
        elif path.is_file():
            files[relative.as_posix()] = path.read_bytes()
    return files
