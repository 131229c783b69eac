"""GPU/host sampling: the real no-GPU path, the sampling thread, N/A formatting.

The host figures come from the real psutil and the no-GPU case from the real
NVML library on this driverless machine. Per-field NVML failures can't be
produced without a GPU, so those tests alone swap in a stand-in `pynvml`
module that raises the library's own NVMLError classes.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import pynvml
import pytest

from arsup.core.monitor import (
    FixedGpuReader,
    GpuReader,
    GpuSample,
    HostSample,
    Monitor,
    Sample,
    format_gpu,
)

H100 = GpuSample(0, "NVIDIA H100 80GB HBM3", 97.0, 72_908.8, 81_920.0, 72.0, 412.3, 700.0)
BARE = GpuSample(1, "N/A", None, None, None, None, None, None)

# The NVIDIA kernel driver publishes this file on Linux; without it NVML cannot work.
HAS_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version").exists()


def assert_host_sane(host: HostSample) -> None:
    assert 0.0 <= host.cpu_pct <= 100.0
    assert 0.0 < host.ram_used_mb <= host.ram_total_mb


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Collector:
    """An on_sample callback that records what it got."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.threads: set[str] = set()

    def __call__(self, sample: Sample) -> None:
        self.threads.add(threading.current_thread().name)
        self.samples.append(sample)


# --- the real machine ---------------------------------------------------------


def test_gpu_reader_on_this_machine() -> None:
    reader = GpuReader()
    try:
        gpus, error = reader.read()
        again = reader.read()
    finally:
        reader.close()
    if HAS_NVIDIA_DRIVER:
        assert error == "" and gpus and [g.index for g in gpus] == list(range(len(gpus)))
    else:
        assert gpus == []
        assert error.startswith("no NVIDIA GPU found (") and "\n" not in error
        assert again == ([], error)


def test_monitor_sample_without_gpu_reports_why_and_reads_host() -> None:
    monitor = Monitor()
    sample = monitor.sample()
    monitor.stop()
    assert_host_sane(sample.host)
    assert sample.time == pytest.approx(time.time(), abs=5)
    if not HAS_NVIDIA_DRIVER:
        assert sample.gpus == [] and "NVIDIA" in sample.gpu_error
    assert monitor.history == [sample]


# --- the sampling thread ------------------------------------------------------


def test_fixed_gpu_samples_reach_the_callback_from_the_monitor_thread() -> None:
    got = Collector()
    monitor = Monitor(on_sample=got, interval=0.2, gpu_reader=FixedGpuReader([H100, BARE]))
    monitor.start()
    try:
        assert wait_until(lambda: len(got.samples) >= 2)
    finally:
        monitor.stop()
    first = got.samples[0]
    assert first.gpus == [H100, BARE] and first.gpu_error == ""
    assert_host_sane(first.host)
    assert got.threads == {"arsup-monitor"}
    assert got.samples[1].time > first.time
    assert monitor.history[: len(got.samples)] == got.samples


def test_fixed_reader_error_is_passed_on() -> None:
    monitor = Monitor(gpu_reader=FixedGpuReader([], error="no NVIDIA GPU found (NVML: Driver Not Loaded)"))
    sample = monitor.sample()
    assert sample.gpus == [] and sample.gpu_error == "no NVIDIA GPU found (NVML: Driver Not Loaded)"


class ClosingReader(FixedGpuReader):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_stop_is_prompt_joins_the_thread_and_closes_the_reader() -> None:
    got = Collector()
    reader = ClosingReader([H100])
    monitor = Monitor(on_sample=got, interval=10.0, gpu_reader=reader)  # the thread will sit in a 10 s wait
    monitor.start()
    assert wait_until(lambda: len(got.samples) == 1)
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 0.5
    assert not any(t.name == "arsup-monitor" for t in threading.enumerate())
    assert reader.closed == 1
    assert len(got.samples) == 1


def test_monitor_can_be_restarted_after_stop() -> None:
    got = Collector()
    monitor = Monitor(on_sample=got, interval=0.2, gpu_reader=FixedGpuReader([H100]))
    monitor.start()
    assert wait_until(lambda: len(got.samples) >= 1)
    monitor.stop()
    count = len(got.samples)
    monitor.start()
    try:
        assert wait_until(lambda: len(got.samples) > count)
    finally:
        monitor.stop()


def test_history_keeps_only_the_last_samples() -> None:
    monitor = Monitor(history_len=3, gpu_reader=FixedGpuReader([H100]))
    taken = [monitor.sample() for _ in range(5)]
    assert len(monitor.history) == 3
    assert all(a is b for a, b in zip(monitor.history, taken[2:], strict=True))


def test_history_is_bounded_while_the_thread_runs() -> None:
    got = Collector()
    monitor = Monitor(on_sample=got, interval=0.2, history_len=2, gpu_reader=FixedGpuReader([H100]))
    monitor.start()
    try:
        assert wait_until(lambda: len(got.samples) >= 3)
    finally:
        monitor.stop()
    assert len(monitor.history) == 2
    assert monitor.history == got.samples[-2:]


def test_a_raising_callback_does_not_stop_sampling() -> None:
    calls: list[Sample] = []

    def explode(sample: Sample) -> None:
        calls.append(sample)
        raise RuntimeError("the UI is broken")

    monitor = Monitor(on_sample=explode, interval=0.2, gpu_reader=FixedGpuReader([H100]))
    monitor.start()
    try:
        assert wait_until(lambda: len(calls) >= 3)
    finally:
        monitor.stop()


def test_a_raising_reader_does_not_stop_sampling() -> None:
    class FlakyReader(FixedGpuReader):
        reads = 0

        def read(self) -> tuple[list[GpuSample], str]:
            self.reads += 1
            if self.reads == 1:
                raise RuntimeError("first read fails")
            return super().read()

    got = Collector()
    monitor = Monitor(on_sample=got, interval=0.2, gpu_reader=FlakyReader([H100]))
    monitor.start()
    try:
        assert wait_until(lambda: len(got.samples) >= 1)
    finally:
        monitor.stop()
    assert got.samples[0].gpus == [H100]


@pytest.mark.parametrize("interval", [0.1, 10.5, 0.0])
def test_interval_outside_range_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Monitor(interval=interval, gpu_reader=FixedGpuReader([]))


def test_interval_bounds_are_accepted() -> None:
    assert Monitor(interval=0.2, gpu_reader=FixedGpuReader([])).interval == 0.2
    assert Monitor(interval=10, gpu_reader=FixedGpuReader([])).interval == 10


# --- formatting ---------------------------------------------------------------


def test_format_gpu_full_line() -> None:
    assert format_gpu(H100) == "GPU0 H100 80GB HBM3  util 97%  mem 71.2/80.0 GB  72°C  412/700 W"


def test_format_gpu_all_missing_reads_na() -> None:
    assert format_gpu(BARE) == "GPU1 N/A  util N/A  mem N/A/N/A GB  N/A°C  N/A/N/A W"


def test_format_gpu_one_missing_field_hides_nothing_else() -> None:
    no_limit = GpuSample(2, "NVIDIA A100-SXM4-40GB", 0.0, 512.0, 40_960.0, 35.0, 61.0, None)
    assert format_gpu(no_limit) == "GPU2 A100-SXM4-40GB  util 0%  mem 0.5/40.0 GB  35°C  61/N/A W"
    no_util = GpuSample(3, "RTX 4090", None, 1024.0, 24_576.0, 40.0, 30.0, 450.0)
    assert format_gpu(no_util) == "GPU3 RTX 4090  util N/A  mem 1.0/24.0 GB  40°C  30/450 W"


# --- GpuReader's per-field handling, through a stand-in pynvml ----------------


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml(types.SimpleNamespace):
    """Two GPUs: 0 supports everything, 1 has no temperature sensor and no power limit.

    Errors and constants are the real library's, so GpuReader's except clauses are tested for real.
    """

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, init_error: int | None = None) -> None:
        super().__init__()
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0
        self.lost: set[int] = set()

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise nvml_error(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def _alive(self, handle: int) -> None:
        if handle in self.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        return "NVIDIA H100 80GB HBM3" if handle == 0 else b"Tesla T4"  # old bindings give bytes

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> types.SimpleNamespace:
        self._alive(handle)
        return types.SimpleNamespace(gpu=97 if handle == 0 else 5, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> types.SimpleNamespace:
        self._alive(handle)
        return types.SimpleNamespace(used=1024 * 1024 * 1024, total=16 * 1024 * 1024 * 1024, free=0)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        self._alive(handle)
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        if handle == 1:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 72

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        self._alive(handle)
        return 412_345

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        self._alive(handle)
        if handle == 1:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 700_000


def test_unsupported_fields_are_none_and_the_rest_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reader = GpuReader()
    gpus, error = reader.read()
    assert error == ""
    assert gpus == [
        GpuSample(0, "NVIDIA H100 80GB HBM3", 97.0, 1024.0, 16384.0, 72.0, 412.345, 700.0),
        GpuSample(1, "Tesla T4", 5.0, 1024.0, 16384.0, None, 412.345, None),
    ]
    reader.read()
    assert fake.inits == 1
    reader.close()
    assert fake.shutdowns == 1


def test_a_gpu_that_disappears_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reader = GpuReader()
    reader.read()
    fake.lost.add(0)
    gpus, error = reader.read()
    assert error == ""
    assert gpus[0] == GpuSample(0, "NVIDIA H100 80GB HBM3", None, None, None, None, None, None)
    assert gpus[1].util_pct == 5.0


def test_driver_not_loaded_is_reported_once_and_never_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reader = GpuReader()
    assert reader.read() == ([], "no NVIDIA GPU found (NVML: Driver Not Loaded)")
    assert reader.read() == ([], "no NVIDIA GPU found (NVML: Driver Not Loaded)")
    reader.close()
    assert fake.inits == 1 and fake.shutdowns == 0


def test_missing_library_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    gpus, error = GpuReader().read()
    assert gpus == [] and "nvidia-ml-py" in error
