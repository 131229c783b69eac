"""Rich styles taken from the current Textual theme, for text built in Python (tree labels, cells, diffs).

CSS colours reach only widgets; labels and table cells are `Text` built
from untrusted strings, so their colours come from here, and panes rebuild
them when the theme changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from rich.style import Style
from textual.color import Color, ColorParseError

from arsup.core.experiment import Status


def _color(variables: Mapping[str, str], name: str, fallback: str) -> str:
    try:
        return Color.parse(variables.get(name, fallback)).hex6
    except ColorParseError:
        return fallback


@dataclass(frozen=True)
class Palette:
    good: Style
    bad: Style
    warn: Style
    accent: Style
    muted: Style
    strong: Style

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> Palette:
        """From `App.theme_variables` (the resolved design variables of the current theme)."""
        return cls(
            good=Style(color=_color(variables, "text-success", "#4EBF71")),
            bad=Style(color=_color(variables, "text-error", "#D17E92")),
            warn=Style(color=_color(variables, "text-warning", "#FFC473")),
            accent=Style(color=_color(variables, "text-accent", "#FFC473")),
            muted=Style(dim=True),
            strong=Style(bold=True),
        )

    def status(self, status: str) -> Style:
        return {
            Status.KEEP: self.good + self.strong,
            Status.DISCARD: self.muted,
            Status.CRASH: self.bad,
            Status.INVALID: self.warn,
            Status.SKIPPED: self.muted,
            Status.RUNNING: self.accent,
        }.get(status, Style())

    def change(self, better: bool) -> Style:
        return self.good if better else self.bad
