"""The SHA-256 manifest of the files a run must not change.

A training script runs with the researcher's permissions, so it can rewrite
the evaluator that scores it (``prepare.py``) and fake its own result: the
reward hack the field fears most. Refusing such edits before a run is not
enough; the supervisor fingerprints the protected files when a session starts
and checks them after every run, and a run that changed one is a crash.
Hashes, not sizes or mtimes, because a script can restore both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20


def digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None when it is gone or unreadable (both count as a change)."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_BLOCK):
                sha.update(block)
    except OSError:
        return None
    return sha.hexdigest()


def expand(root: Path, patterns: list[str]) -> list[str]:
    """The files these globs name now, project-relative, sorted."""
    found = {p.relative_to(root).as_posix() for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    return sorted(found)


@dataclass(frozen=True)
class Manifest:
    root: Path
    digests: dict[str, str | None]  # project-relative path -> SHA-256

    @classmethod
    def take(cls, root: Path, paths: list[str]) -> Manifest:
        return cls(root, {path: digest(root / path) for path in paths})

    def changed(self) -> list[str]:
        """The files whose bytes differ from the manifest (missing ones included)."""
        return [path for path, want in self.digests.items() if digest(self.root / path) != want]
