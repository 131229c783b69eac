"""The screen holds no engine: nothing in `arsup.tui` imports it or reads its attributes.

The screen knows a loop only by its events and the `Controls` protocol, so
the same screen works on a loop in another process; this test keeps it so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import arsup.tui

TUI = Path(arsup.tui.__file__).parent


def engine_uses(source: str) -> list[str]:
    """Each import of the engine module, and each name or attribute called engine/Engine, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.startswith("arsup.core.engine")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith("arsup.core.engine") or (
                module == "arsup.core" and any(a.name == "engine" for a in node.names)
            ):
                found.append(f"{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr in ("engine", "Engine"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ("engine", "Engine"):
            found.append(f"{node.lineno}: {node.id}")
    return found


def test_the_check_sees_an_engine() -> None:
    source = "from arsup.core.engine import Engine\nfrom arsup.core import engine\napp.engine.paused\n"
    assert len(engine_uses(source)) == 3


def test_no_module_of_the_screen_touches_an_engine() -> None:
    modules = sorted(TUI.rglob("*.py"))
    assert len(modules) > 10
    uses = {str(path.relative_to(TUI)): engine_uses(path.read_text()) for path in modules}
    assert {name: found for name, found in uses.items() if found} == {}
