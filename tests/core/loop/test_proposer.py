"""What the proposer hands an agent: a scratch copy of the best commit, with nothing of arsup's or git's in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arsup.core.agents.base import Proposal
from arsup.core.experiment import Status
from tests.conftest import edit, git, make_engine, make_project, write_script

pytestmark = pytest.mark.slow  # a real engine on a real repo


def test_the_scratch_copy_is_the_best_commit_without_git_or_arsups_state(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    (root / "notes.txt").write_text("uncommitted, never copied\n")
    script = write_script(root, {"hypothesis": "raise LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    engine, _ = make_engine(root, script, max_experiments=2)
    copies: list[Path] = []

    class Copying:
        name = "copying"

        def propose(self, context: Any) -> Proposal | None:
            if copies:
                return None
            folder = tmp_path / "scratch"
            context.export(folder)
            copies.append(folder)
            text = (folder / "train.py").read_text()
            return Proposal("raise LR", files={"train.py": text.replace("LR = 0.0001", "LR = 0.003")})

        def observe(self, experiment: Any) -> None:
            pass

    engine.agent = Copying()
    engine.run()
    [folder] = copies
    tracked = sorted(git(root, "ls-files").split())
    copied = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert copied == tracked and not (folder / ".git").exists() and not (folder / ".arsup").exists()
    assert (folder / "train.py").read_text() == git(root, "show", f"{engine.history[0].commit}:train.py") + "\n"
    assert [e.status for e in engine.history][:1] == [Status.KEEP] and len(engine.history) == 2
