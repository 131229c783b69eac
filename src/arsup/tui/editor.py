"""Editing a proposed change in the person's own editor before approving it.

The proposed files are written to a temp folder under their repo paths (so
the editor knows the language), the editor runs on them in the foreground,
and whatever was saved comes back. The repo itself is never touched here:
the engine re-checks and commits the edited texts.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

DEFAULT_EDITOR = "vi"


def editor_command() -> list[str]:
    """$VISUAL, else $EDITOR, else vi; may carry arguments (`code --wait`)."""
    return shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or DEFAULT_EDITOR)


def edit_files(files: dict[str, str], command: list[str] | None = None) -> dict[str, str]:
    """Run the editor on copies of `files` (repo path -> text) and return the texts as saved.

    Raises OSError when the editor cannot start and RuntimeError when it fails."""
    command = command or editor_command()
    with tempfile.TemporaryDirectory(prefix="arsup-edit-") as folder:
        paths = {}
        for name, content in files.items():
            path = Path(folder, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            paths[name] = path
        result = subprocess.run([*command, *map(str, paths.values())], check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} exited with {result.returncode}; nothing was approved")
        return {name: path.read_text(encoding="utf-8") for name, path in paths.items()}
