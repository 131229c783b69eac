"""A research repo held for changing its work tree: the loop and the morning-after checks share this.

Holding means: the repo lock first (two arsups on one work tree would wreck
each other), then one git object (GitPython is not thread-safe; one owner at
a time). Both are let go together, also when taking them fails half way.
The dirty check lives here too, so the loop and `verify`/`ablate` refuse a
person's uncommitted work by the same rule.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from arsup.config import ProjectConfig
from arsup.core.journal import RepoLock
from arsup.core.vcs import Vcs


class HeldRepo:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.lock = RepoLock(self.root)
        self.lock.acquire()
        try:
            self.vcs = Vcs(self.root)
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.vcs.close()
        self.lock.release()

    def __enter__(self) -> HeldRepo:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def uncommitted(self, project: ProjectConfig) -> list[str]:
        """Files arsup edits or protects that hold uncommitted changes.

        Untracked files count where a name is given literally; under a glob
        they are only neighbours (arsup never writes them, see the engine)."""
        named = project.editable + project.protected
        literal = [entry for entry in named if not any(char in entry for char in "*?[")]
        return list(dict.fromkeys(self.vcs.changed_files(named, untracked=False) + self.vcs.changed_files(literal)))
