"""Editing a proposed change: copies under their repo paths, the editor's result comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.tui.editor import edit_files, editor_command


@pytest.mark.slow
def test_edited_texts_come_back(tmp_path: Path) -> None:
    script = tmp_path / "ed.sh"
    script.write_text('#!/bin/sh\nfor f in "$@"; do echo "# seen $(basename "$f")" >> "$f"; done\n')
    script.chmod(0o755)
    edited = edit_files({"train.py": "LR = 1\n", "lib/model.py": "X = 2\n"}, [str(script)])
    assert edited == {"train.py": "LR = 1\n# seen train.py\n", "lib/model.py": "X = 2\n# seen model.py\n"}


@pytest.mark.slow
def test_a_failing_editor_approves_nothing() -> None:
    with pytest.raises(RuntimeError, match="exited with 1"):
        edit_files({"train.py": "x"}, ["false"])
    with pytest.raises(OSError):
        edit_files({"train.py": "x"}, ["/nonexistent/editor"])


def test_editor_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "code --wait")
    assert editor_command() == ["code", "--wait"]
    monkeypatch.delenv("EDITOR")
    assert editor_command() == ["vi"]
