"""Theme files (`themes/*.toml`) -> Textual themes, and which one to use.

A theme is a small TOML file of Textual's theme fields, so a person can add
one without writing Python. A broken file must never keep the screen from
opening: it is reported as a problem and the default theme is used instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_THEME = "dark"
FALLBACK_THEME = "textual-dark"  # Textual's own, used only when even the default file is broken
COLOR_FIELDS = (
    "primary", "secondary", "accent", "warning", "error", "success",
    "foreground", "background", "surface", "panel", "boost",
)


class ThemeError(Exception):
    """A theme file that cannot be used; the text names the file and the key."""


def themes_dir() -> Path:
    """Installed wheels carry the themes inside the package; a source checkout has them at the top."""
    packaged = Path(__file__).resolve().parents[1] / "_themes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "themes"


def _color(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ThemeError(f"{path.name}: {key} must be a colour string such as \"#1a2b3c\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeError(f"{path.name}: {key} = {value!r} is not a colour") from None
    return value


def load_theme(path: Path) -> Theme:
    """One theme file; its name is the file name without `.toml`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path.name}: cannot read it ({exc})") from None
    unknown = set(data) - {*COLOR_FIELDS, "dark", "variables"}
    if unknown:
        known = ", ".join((*COLOR_FIELDS, "dark", "variables"))
        raise ThemeError(f"{path.name}: unknown key(s) {', '.join(sorted(unknown))}; known: {known}")
    if "primary" not in data:
        raise ThemeError(f"{path.name}: primary is required")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError(f"{path.name}: dark must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeError(f"{path.name}: [variables] must map names to strings")
    colors: dict[str, Any] = {key: _color(path, key, data[key]) for key in COLOR_FIELDS if key in data}
    return Theme(name=path.stem, dark=dark, variables=dict(variables), **colors)


@dataclass
class ThemeSet:
    """The themes found, in cycling order (the default first), and the files that failed."""

    themes: list[Theme]
    problems: list[str]

    @property
    def names(self) -> list[str]:
        return [theme.name for theme in self.themes]

    def default(self) -> str:
        return DEFAULT_THEME if DEFAULT_THEME in self.names else FALLBACK_THEME

    def choose(self, requested: str, known: list[str]) -> tuple[str, str]:
        """The theme to start with, and a notice when the request cannot be honoured.

        `known` is every registered name (Textual's built-in themes too)."""
        if not requested or requested in known:
            return (requested or self.default()), ""
        broken = next((p for p in self.problems if p.startswith(f"{requested}.toml:")), "")
        why = f"theme file broken ({broken})" if broken else f"no theme {requested!r} (themes: {', '.join(self.names)})"
        return self.default(), f"{why}; using {self.default()}"

    def next_after(self, current: str) -> str:
        """The theme `t` switches to: the next of ours, wrapping around."""
        names = self.names or [FALLBACK_THEME]
        return names[(names.index(current) + 1) % len(names)] if current in names else names[0]


def load_themes(folder: Path | None = None) -> ThemeSet:
    """Every `*.toml` in the themes folder; broken ones become problems, never exceptions."""
    folder = folder or themes_dir()
    themes, problems = [], []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            themes.append(load_theme(path))
        except ThemeError as exc:
            problems.append(str(exc))
    themes.sort(key=lambda theme: theme.name != DEFAULT_THEME)  # the default first, then by name
    return ThemeSet(themes, problems)
