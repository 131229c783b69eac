"""The screen holds no engine: nothing in `arsup.tui` reads an engine's attributes.

The screen knows a loop only by its events and the `Controls` protocol, so
the same screen works on a loop in another process; this test keeps it so.
That no module of the screen imports the engine is an import-linter contract
(`pyproject.toml`, run by `lint-imports`); a contract sees imports only, so an
engine reached through an attribute (`app.engine.paused`) is caught here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import arsup.tui

TUI = Path(arsup.tui.__file__).parent


def engine_uses(source: str) -> list[str]:
    """Each name or attribute called engine/Engine, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("engine", "Engine"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ("engine", "Engine"):
            found.append(f"{node.lineno}: {node.id}")
    return found


def test_the_check_sees_an_engine() -> None:
    source = "engine = make()\napp.engine.paused\nEngine(root)\n"
    assert len(engine_uses(source)) == 3


def test_no_module_of_the_screen_touches_an_engine() -> None:
    modules = sorted(TUI.rglob("*.py"))
    assert len(modules) > 10
    uses = {str(path.relative_to(TUI)): engine_uses(path.read_text()) for path in modules}
    assert {name: found for name, found in uses.items() if found} == {}
