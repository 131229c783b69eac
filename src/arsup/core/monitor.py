"""Sample GPU and host (CPU/RAM) use for the TUI's GPU pane.

NVIDIA GPUs are read through NVML (`nvidia-ml-py`, imported as `pynvml`), the
same library nvidia-smi uses, so no subprocess is spawned every tick. A box
without the driver or the library is a normal case (a laptop, CI, an AMD box):
it yields no GPU samples and a one-line `gpu_error` instead of an exception, so
the pane can say why it is empty. Each NVML field is read on its own, because
cards differ in what they support (many report no power limit, MIG slices no
utilization) and one unsupported field must not blank the whole line.

A `Monitor` thread takes a `Sample` every `interval` seconds, keeps a bounded
history for sparklines, and hands each sample to a callback; the TUI turns that
callback into a message for its own event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psutil

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 10.0
DEFAULT_INTERVAL_S = 1.5
DEFAULT_HISTORY = 240  # 6 minutes at the default interval: enough for a sparkline across the pane
STOP_JOIN_TIMEOUT_S = 2.0  # stop() never hangs on a callback that blocks (e.g. on a UI that is shutting down)

T = TypeVar("T")


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment. A field is None when NVML could not read it ("N/A")."""

    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None  # MiB, as nvidia-smi reports
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None
    power_limit_w: float | None


@dataclass(frozen=True)
class HostSample:
    """The whole machine's CPU and RAM use."""

    cpu_pct: float
    ram_used_mb: float  # total minus available: what programs can no longer get, caches excluded
    ram_total_mb: float


@dataclass(frozen=True)
class Sample:
    """Everything the GPU pane shows for one tick."""

    time: float  # time.time() when taken
    gpus: list[GpuSample]
    host: HostSample
    gpu_error: str  # one line saying why no NVIDIA GPU can be read; "" when GPUs were read


class GpuSource(Protocol):
    """What `Monitor` needs from a GPU reader: `GpuReader` on a real box, `FixedGpuReader` in tests."""

    def read(self) -> tuple[list[GpuSample], str]: ...

    def close(self) -> None: ...


class GpuReader:
    """Reads NVIDIA GPUs through NVML; never raises, whatever the box lacks.

    NVML is initialised on the first `read()` (so merely building the TUI costs
    nothing) and only once: a box with no driver does not retry every tick.
    Device handles and names are fetched at that point too; GPUs hot-added
    later are not seen, and a GPU that falls off the bus reads as all-None.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # read() runs on the monitor thread, close() may come from another
        self._tried = False
        self._inited = False
        self._nvml: Any = None
        self._devices: list[tuple[int, Any, str]] = []  # (index, handle or None, name)
        self._error = ""

    def read(self) -> tuple[list[GpuSample], str]:
        """One sample per GPU, and "" or the reason no GPU can be read."""
        with self._lock:
            if not self._tried:
                self._init()
            if self._error:
                return [], self._error
            return [self._read_one(index, handle, name) for index, handle, name in self._devices], ""

    def uuids(self) -> list[str]:
        """Every GPU's UUID (`GPU-...`), as CUDA_VISIBLE_DEVICES names a GPU whatever the bus order; [] without."""
        with self._lock:
            if not self._tried:
                self._init()
            found = [self._get(self._nvml.nvmlDeviceGetUUID, handle) for _, handle, _ in self._devices if handle]
        return [uuid.decode() if isinstance(uuid, bytes) else uuid for uuid in found if uuid]

    def close(self) -> None:
        """Release NVML if this reader initialised it; a later read() starts afresh."""
        with self._lock:
            if self._inited:
                try:
                    self._nvml.nvmlShutdown()
                except self._nvml.NVMLError as exc:
                    logger.debug("nvmlShutdown failed: %s", exc)
            self._tried = self._inited = False
            self._devices = []
            self._error = ""

    def _init(self) -> None:
        self._tried = True
        try:
            import pynvml
        except ImportError:
            self._error = "no NVIDIA GPU found (nvidia-ml-py is not installed)"
            return
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._error = f"no NVIDIA GPU found (NVML: {exc})"
            return
        self._inited = True
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            self._error = f"no NVIDIA GPU found (NVML: {exc})"
            return
        if count == 0:
            self._error = "no NVIDIA GPU found (NVML sees 0 devices)"
            return
        for index in range(count):
            handle = self._get(pynvml.nvmlDeviceGetHandleByIndex, index)
            raw_name = self._get(pynvml.nvmlDeviceGetName, handle) if handle is not None else None
            # nvidia-ml-py before 11.515 returned bytes
            name = raw_name.decode() if isinstance(raw_name, bytes) else (raw_name or "N/A")
            self._devices.append((index, handle, name))

    def _get(self, call: Callable[..., T], *args: Any) -> T | None:
        """One NVML call, None when it fails (not supported, no permission, GPU lost...)."""
        try:
            return call(*args)
        except self._nvml.NVMLError:
            return None

    def _read_one(self, index: int, handle: Any, name: str) -> GpuSample:
        nvml = self._nvml
        if handle is None:
            return GpuSample(index, name, None, None, None, None, None, None)
        util = self._get(nvml.nvmlDeviceGetUtilizationRates, handle)
        mem = self._get(nvml.nvmlDeviceGetMemoryInfo, handle)
        temp = self._get(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        power_mw = self._get(nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = self._get(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        return GpuSample(
            index=index,
            name=name,
            util_pct=float(util.gpu) if util is not None else None,
            mem_used_mb=mem.used / MIB if mem is not None else None,
            mem_total_mb=mem.total / MIB if mem is not None else None,
            temp_c=float(temp) if temp is not None else None,
            power_w=power_mw / 1000 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
        )


class FixedGpuReader:
    """Returns the GPU samples it was given: lets tests and the TUI's snapshot tests show a known GPU pane."""

    def __init__(self, gpus: list[GpuSample], error: str = "") -> None:
        self.gpus = list(gpus)
        self.error = error

    def read(self) -> tuple[list[GpuSample], str]:
        return list(self.gpus), self.error

    def close(self) -> None:
        """Nothing to release."""


def read_host() -> HostSample:
    """CPU use since the previous call (psutil's shared counter) and RAM use now."""
    mem = psutil.virtual_memory()
    return HostSample(
        cpu_pct=float(psutil.cpu_percent(interval=None)),
        ram_used_mb=(mem.total - mem.available) / MIB,
        ram_total_mb=mem.total / MIB,
    )


class Monitor:
    """Samples GPUs and host every `interval` seconds on a daemon thread.

    `on_sample` is called from that thread, so a UI must hand the sample over
    to its own loop (and must not block on that loop, or stop() has to wait
    out STOP_JOIN_TIMEOUT_S). An exception in the callback or the reader is
    logged and sampling goes on: a GPU pane that freezes silently is worse than
    a logged error.
    """

    def __init__(
        self,
        on_sample: Callable[[Sample], None] | None = None,
        interval: float = DEFAULT_INTERVAL_S,
        history_len: int = DEFAULT_HISTORY,
        gpu_reader: GpuSource | None = None,
    ) -> None:
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise ValueError(f"monitor interval must be {MIN_INTERVAL_S}-{MAX_INTERVAL_S} s, got {interval}")
        if history_len < 1:
            raise ValueError(f"monitor history must hold at least 1 sample, got {history_len}")
        self.interval = interval
        self.on_sample = on_sample
        self.gpu_reader: GpuSource = gpu_reader if gpu_reader is not None else GpuReader()
        self._history: deque[Sample] = deque(maxlen=history_len)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        psutil.cpu_percent(interval=None)  # prime the counter, so the first sample's CPU figure means something

    @property
    def history(self) -> list[Sample]:
        """The last samples, oldest first; a copy, so the UI can iterate while the thread appends."""
        with self._lock:
            return list(self._history)

    def sample(self) -> Sample:
        """Take one sample now and add it to the history."""
        gpus, gpu_error = self.gpu_reader.read()
        taken = Sample(time=time.time(), gpus=gpus, host=read_host(), gpu_error=gpu_error)
        with self._lock:
            self._history.append(taken)
        return taken

    def start(self) -> None:
        """Start sampling (first sample at once); a no-op while already running."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="arsup-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling, join the thread and release the GPU reader; returns within ~0.1 s normally."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("monitor thread still busy in its callback after %.1f s", STOP_JOIN_TIMEOUT_S)
        self._thread = None
        self.gpu_reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                taken = self.sample()
                if self.on_sample is not None:
                    self.on_sample(taken)
            except Exception:
                logger.exception("monitor sample or callback failed")
            self._stop.wait(self.interval)


def _na(value: float | None, fmt: str) -> str:
    return "N/A" if value is None else format(value, fmt)


def format_gpu(sample: GpuSample) -> str:
    """One line per GPU, e.g. "GPU0 H100 80GB HBM3  util 97%  mem 71.2/79.6 GB  72°C  412/700 W".

    Memory is shown in GiB (labelled GB, as nvidia-smi users expect); every
    missing field reads N/A on its own.
    """
    name = sample.name.removeprefix("NVIDIA ")
    mem_used = None if sample.mem_used_mb is None else sample.mem_used_mb / 1024
    mem_total = None if sample.mem_total_mb is None else sample.mem_total_mb / 1024
    util = "N/A" if sample.util_pct is None else f"{sample.util_pct:.0f}%"
    return (
        f"GPU{sample.index} {name}  util {util}"
        f"  mem {_na(mem_used, '.1f')}/{_na(mem_total, '.1f')} GB"
        f"  {_na(sample.temp_c, '.0f')}°C"
        f"  {_na(sample.power_w, '.0f')}/{_na(sample.power_limit_w, '.0f')} W"
    )
