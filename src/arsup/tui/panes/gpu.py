"""The GPU pane: each GPU's use now and over the last minutes, and the host's CPU and RAM.

Samples come from the monitor thread through the bridge; this pane only
keeps the recent ones and draws them. A box without an NVIDIA driver is
normal (a laptop, CI): the pane then shows CPU and RAM and says in one line
why there is no GPU.
"""

from __future__ import annotations

import textwrap
from collections import deque
from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.widget import Widget

from arsup.core.monitor import Sample, format_gpu
from arsup.tui import text
from arsup.tui.palette import Palette

BLOCKS = "▁▂▃▄▅▆▇█"
HISTORY = 240  # samples: 6 minutes at the monitor's 1.5 s
LABEL = 16  # columns before a sparkline ("CPU 23%", "RAM 5.1/16 GB")


def sparkline(values: Sequence[float | None], width: int, top: float) -> str:
    """The newest `width` values as block characters scaled to `top`; a missing value is a blank."""
    if width <= 0:
        return ""
    shown = list(values)[-width:]
    out = []
    for value in shown:
        if value is None or top <= 0:
            out.append(" ")
        else:
            level = min(len(BLOCKS) - 1, max(0, int(value / top * len(BLOCKS))))
            out.append(BLOCKS[level])
    return "".join(out).rjust(width)


def _pct(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else 100.0 * part / whole


def render_samples(samples: Sequence[Sample], width: int, palette: Palette) -> Text:
    """The pane's text for a width: per GPU its figures and two sparklines, then CPU and RAM."""
    if not samples:
        return Text("sampling…", style=palette.muted)
    last = samples[-1]
    spark_width = max(0, width - LABEL)
    out = Text(no_wrap=True, overflow="ellipsis")

    def row(label: str, values: list[float | None], style: str = "") -> None:
        out.append(f"{label:<{LABEL}}"[:LABEL])
        out.append(sparkline(values, spark_width, 100.0), style or palette.accent)
        out.append("\n")

    for gpu in last.gpus:
        series = [next((g for g in s.gpus if g.index == gpu.index), None) for s in samples]
        summary = text.pack([Text(field) for field in format_gpu(gpu).split(text.FIELD_GAP)], width)
        summary.stylize(palette.strong)
        out.append_text(summary)
        out.append("\n")
        row("  util", [g.util_pct if g else None for g in series])
        row("  mem", [_pct(g.mem_used_mb, g.mem_total_mb) if g else None for g in series])
    host = last.host
    row(f"CPU {host.cpu_pct:.0f}%", [s.host.cpu_pct for s in samples])
    row(
        f"RAM {host.ram_used_mb / 1024:.1f}/{host.ram_total_mb / 1024:.0f} GB",
        [_pct(s.host.ram_used_mb, s.host.ram_total_mb) for s in samples],
    )
    if last.gpu_error:
        out.append("\n".join(textwrap.wrap(last.gpu_error, width)), palette.warn)
    out.rstrip()
    return out


class GpuView(Widget):
    """Draws the kept samples at whatever width the pane has."""

    DEFAULT_CSS = """
    GpuView { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.samples: deque[Sample] = deque(maxlen=HISTORY)
        self.palette: Palette | None = None

    def _text(self, width: int) -> Text:
        palette = self.palette or Palette.from_variables({})
        return render_samples(self.samples, max(LABEL + 1, width), palette)

    def render(self) -> Text:
        return self._text(self.content_size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._text(width).split("\n"))


class GpuPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield GpuView()

    def add(self, sample: Sample) -> None:
        view = self.query_one(GpuView)
        view.samples.append(sample)
        view.refresh(layout=True)

    def restyle(self, palette: Palette) -> None:
        view = self.query_one(GpuView)
        view.palette = palette
        view.refresh()
