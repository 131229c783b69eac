"""The header: where the research stands, in one glance.

Fields are packed greedily into as many lines as the width needs, never
split in the middle, so the same header reads at 120 columns and at 80.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from arsup.core import load
from arsup.tui import text
from arsup.tui.palette import Palette
from arsup.view import SessionView


@dataclass
class HeaderInfo:
    """What the header shows besides the session view: what only the app knows (its clock, its quitting)."""

    state: str
    elapsed_s: float
    duty: dict[str, float] | None = None  # each slot's busy share of the session (training time / wall time)


def fields(view: SessionView, info: HeaderInfo, palette: Palette) -> list[Text]:
    """The header's fields in reading order; each is kept whole on one line."""
    arrow = "↓" if view.goal == "minimize" else "↑"
    items = [
        Text(view.project_name, style=palette.strong),
        Text(view.branch or "-"),
        Text(f"{view.agent} {view.model}".strip()),
        Text(f"{view.metric} {arrow} {view.goal}"),
        Text(f"policy {view.policy}"),
    ]
    baseline = view.baseline
    items.append(Text(f"baseline {text.metric(baseline.metric if baseline else None)}"))
    best = Text(f"best {text.metric(view.best.metric if view.best else None)}")
    if view.best is not None and baseline is not None and view.best.id != baseline.id and view.best.metric is not None:
        change = view.best.metric - baseline.metric  # type: ignore[operator]
        best.append(f" ({text.delta(change)})", palette.change(text.improves(change, view.goal)))
    items.append(best)
    for which, shown in (("baseline", baseline), ("best", view.best)):  # the numbers compared against
        if shown is not None and (note := load.note(shown)) and not (which == "best" and shown is baseline):
            items.append(Text(f"⚠ {which} {note}", style=palette.warn))
    counts = view.counts()
    tally = Text("exp ")
    tally.append(f"{counts['keep']} kept" + (" + baseline" if baseline is not None else ""), palette.good)
    tally.append(f" · {counts['discard']} discarded · ")
    tally.append(f"{counts['crash']} crashed", palette.bad if counts["crash"] else "")
    items.append(tally)
    items.append(Text(text.duration(info.elapsed_s)))
    if info.duty:
        shares = [f"{share:.0%}" if len(info.duty) == 1 else f"{name} {share:.0%}" for name, share in info.duty.items()]
        items.append(Text("duty " + " · ".join(shares)))
    spend = view.spend()
    if spend["calls"]:
        items.append(Text(f"${spend['cost_usd']:.2f} ({int(spend['calls'])} calls)"))
    items.append(Text(f"● {info.state}", style=palette.accent + palette.strong))
    for note in view.waiting_notes:  # until a prompt has it: a toast alone fades before it takes effect
        items.append(Text(f"✎ note for the next proposal: {text.one_line(note)[:60]}", style=palette.accent))
    return items


class HeaderPane(Widget):
    """Redrawn by the app every second and on every event; holds the latest figures only."""

    DEFAULT_CSS = """
    HeaderPane { height: auto; padding: 0 1; }
    """

    def __init__(self, view: SessionView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self._fields: list[Text] = [Text("arsup")]

    def show(self, info: HeaderInfo, palette: Palette) -> None:
        self._fields = fields(self.view, info, palette)
        self.refresh(layout=True)

    def render(self) -> Text:
        return text.pack(self._fields, self.content_size.width or 80)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(text.pack(self._fields, width).split("\n"))
