"""The GPU pane's drawing: sparklines, fields that read N/A, and the no-driver case."""

from __future__ import annotations

from arsup.core.monitor import GpuSample, HostSample, Sample
from arsup.tui.palette import Palette
from arsup.tui.panes.gpu import render_samples, sparkline

PALETTE = Palette.from_variables({})
HOST = HostSample(cpu_pct=25.0, ram_used_mb=4096, ram_total_mb=16384)


def test_sparkline_scales_pads_and_keeps_the_newest() -> None:
    assert sparkline([0, 50, 100], 3, 100) == "▁▅█"
    assert sparkline([100], 4, 100) == "   █"
    assert sparkline([0, None, 100, 100], 2, 100) == "██"
    assert sparkline([None, 10], 2, 100) == " ▁" and sparkline([1], 0, 100) == ""


def test_no_gpu_shows_host_and_why() -> None:
    shown = render_samples([Sample(0, [], HOST, "no NVIDIA GPU found (NVML: Driver Not Loaded)")], 40, PALETTE).plain
    lines = shown.split("\n")
    assert lines[0].startswith("CPU 25%") and lines[1].startswith("RAM 4.0/16 GB")
    assert " ".join(lines[2:]) == "no NVIDIA GPU found (NVML: Driver Not Loaded)"  # wrapped, not cut


def test_fields_nvml_cannot_read_are_na_never_a_crash() -> None:
    gpu = GpuSample(0, "NVIDIA A100", None, None, None, None, None, None)
    good = GpuSample(1, "NVIDIA A100", 50.0, 1000.0, 4000.0, 60.0, 200.0, 400.0)
    shown = render_samples([Sample(0, [good], HOST, ""), Sample(1, [gpu, good], HOST, "")], 60, PALETTE).plain
    assert "GPU0 A100  util N/A  mem N/A/N/A GB  N/A°C  N/A/N/A W" in shown
    assert shown.count("util ") == 4 and "no NVIDIA" not in shown


def test_before_the_first_sample() -> None:
    assert render_samples([], 40, PALETTE).plain == "sampling…"
