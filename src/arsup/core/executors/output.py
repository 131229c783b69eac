"""What every executor does with a run's output and its stops, wherever the run executes.

A local process (``runner.Run``) and a task on a cluster (``ray_cluster.RayRun``)
differ in how they start, watch and end a run, but not in what they do with its
bytes or in how a stop is decided, so that a fix to either is made once. The
rules this module keeps:

* ``OutputSink``: every byte goes to the log, capped (``CappedLog``), and, as
  display lines (``LineAssembler``), to one optional subscriber and past the
  abort pattern. Nothing on this path waits or raises: the log keeps in memory
  what its disk refuses, a subscriber that raises is logged once and keeps
  being called, and the pattern is one regex search per batch of lines.
* ``StopLatch``: a run is stopped at most once, and the first reason wins: a
  person's kill after a watchdog's abort leaves an abort, and the other way
  round. How supervision ended (an ``Ended``) and the latch together make the
  stop half of the outcome (``StopLatch.ending``), the same for every executor.
"""

from __future__ import annotations

import codecs
import enum
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypedDict

from arsup.core.terminal import collapse_progress

logger = logging.getLogger(__name__)

_MAX_LINE_CHARS = 1 << 20  # a "line" this long without a newline is passed on as is
_LOG_TAIL_BYTES = 1 << 20  # a log cut short keeps this much of the end of the output
_LOG_MARKER_RESERVE = 128  # room kept under the cap for the "log cut here" line
_DISK_RESERVE_BYTES = 64 << 20  # a log leaves at least this much of its disk free (see _disk_reserve)
_DISK_RESERVE_SHARE = 0.05  # ... or this share of the disk, if more
_DISK_RESERVE_MAX = 1 << 30  # ... but the share never asks for more than this
_FREE_CHECK_BYTES = 1 << 20  # a log asks for its disk's free space again after writing this much
_QUOTE_CHARS = 120  # an abort reason quotes at most this much of the matching line

OutputCallback = Callable[[list[str], str], None]
"""Receives (complete new lines, the current partial line) once per chunk read."""


class Ended(enum.Enum):
    """How the supervision of a run ended; with the ``StopLatch`` it decides the stop half of the outcome.

    The values are the words the executors used before this enum; none of
    them reaches the journal or the screen (the outcome's flags and reasons do).
    """

    EXIT = "exit"  # the command ended on its own (a run that exited before a stop is reported as it ended)
    KILL = "kill"  # StopLatch.kill won: a person's stop
    ABORT = "abort"  # StopLatch.abort won: a watchdog (stall, memory, the abort pattern)
    TIMEOUT = "timeout"  # the spec's wall-clock limit
    INTERRUPTED = "interrupted"  # the waiting thread was interrupted (KeyboardInterrupt) before it knew
    LOST = "lost"  # the cluster lost the task while it ran (Ray)
    START = "start"  # it never started: the start error says why


class Ending(TypedDict):
    """The stop half of a ``runner.RunOutcome``: its fields of the same names."""

    timed_out: bool
    killed: bool
    aborted: bool
    kill_reason: str


class LogReport(TypedDict):
    """What a closed log adds to a ``runner.RunOutcome``: its fields of the same names."""

    log_error: str
    unlogged: str
    log_capped: str


class StopLatch:
    """Why a run is being stopped: nothing yet, a kill or an abort; the first reason wins, for good.

    ``kill()`` comes from any thread (a person's stop, the engine); ``abort()``
    from the watchdogs (the drain thread's abort pattern, the supervising
    thread's stall and memory checks). ``on_stop`` runs after every call, in
    the caller's thread and outside the lock, even when the call lost: it
    wakes whoever supervises the run. ``_lock`` guards the pair
    (``_stopped``, ``_reason``), so that no reader sees a kind without its
    reason.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._stopped: Ended | None = None  # Ended.KILL or Ended.ABORT once set; never changes after
        self._reason = ""

    def kill(self, reason: str) -> None:
        """Stop the run for ``reason`` ("killed" if empty), unless a stop came first."""
        self._stop(Ended.KILL, reason or "killed")

    def abort(self, reason: str) -> None:
        """A watchdog's stop: the same ending as a kill, reported as an abort, unless a stop came first."""
        self._stop(Ended.ABORT, reason)

    @property
    def stopped(self) -> Ended | None:
        """``Ended.KILL`` or ``Ended.ABORT`` once a stop was latched; None before."""
        with self._lock:
            return self._stopped

    def ending(self, ended: Ended, *, timeout: float, lost: str = "") -> Ending:
        """The outcome's stop fields, for a run whose supervision ended as ``ended``.

        A kill or an abort carries the latched reason (the empty one if the
        other kind was latched), a timeout says ``timeout`` (the spec's, in
        seconds), a lost task says ``lost``; anything else has no reason.
        """
        with self._lock:
            stopped, latched = self._stopped, self._reason
        reasons = {Ended.TIMEOUT: f"timed out after {timeout:g} s", Ended.LOST: lost}
        if ended is stopped:
            reasons[ended] = latched
        return Ending(
            timed_out=ended is Ended.TIMEOUT,
            killed=ended is Ended.KILL,
            aborted=ended is Ended.ABORT,
            kill_reason=reasons.get(ended, ""),
        )

    def _stop(self, kind: Ended, reason: str) -> None:
        with self._lock:
            if self._stopped is None:
                self._stopped, self._reason = kind, reason
        if self._on_stop is not None:
            self._on_stop()


class LogUnavailable(Exception):
    """The run's log cannot be opened; the message says which file and why, as a start error."""


class OutputSink:
    """One run's output: to its capped log, and as lines to its subscriber and past its abort pattern.

    Threads: one thread feeds it (``feed``, ``eof``; the drain thread of a
    local run, the waiting thread of a Ray run), and the subscriber is called
    in that thread; ``check_stall`` may come from another (it only reads
    ``last_output``, one float); ``note``, ``close`` and ``report`` come from
    the thread that owns the run, never while another feeds. So nothing here
    needs a lock; the latch has its own. Lines are assembled only where
    someone reads them: a subscriber or an abort pattern.
    """

    def __init__(
        self,
        log: CappedLog,
        path: Path,
        latch: StopLatch,
        *,
        on_output: OutputCallback | None = None,
        abort_pattern: re.Pattern[str] | None = None,
        name: Callable[[], str] = lambda: "run",
    ) -> None:
        self._log = log
        self._path = path
        self._latch = latch
        self._on_output = on_output
        self._pattern = abort_pattern
        self._name = name  # for the log line of a failing subscriber: "run 1234", "ray run host pid 56"
        self._lines = LineAssembler() if on_output is not None or abort_pattern is not None else None
        self._callback_failed = False
        # Monotonic time of the last byte fed, for stall_s. Its owner sets it too: when the
        # command starts (a local run), when a notice that is not output arrives (a Ray run).
        self.last_output = time.monotonic()

    @classmethod
    def open(
        cls,
        path: Path,
        cap: int,
        latch: StopLatch,
        *,
        on_output: OutputCallback | None = None,
        abort_pattern: re.Pattern[str] | None = None,
        name: Callable[[], str] = lambda: "run",
    ) -> OutputSink:
        """A sink writing a new log at ``path`` (its parents made), capped at ``cap`` bytes (0: no cap).

        Raises ``LogUnavailable`` when the file cannot be made.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = open(path, "wb")  # noqa: SIM115 -- closed by close()
        except OSError as exc:
            raise LogUnavailable(f"cannot open log {path}: {exc}") from exc
        return cls(CappedLog(file, cap), path, latch, on_output=on_output, abort_pattern=abort_pattern, name=name)

    def feed(self, data: bytes) -> None:
        """A chunk of the run's output: logged raw, then its completed lines passed on."""
        self.last_output = time.monotonic()
        self._log.write(data)  # never blocks on a full disk: what it refuses is kept in memory
        if self._lines is not None:
            batch = self._lines.feed(data)
            if batch is not None:
                self._deliver(*batch)

    def eof(self) -> None:
        """The output is over: the partial line left becomes a line, passed on like the others."""
        rest = self._lines.close() if self._lines is not None else []
        if rest:
            self._deliver(rest, "")

    def note(self, text: str) -> None:
        """A line of arsup's own (a start error) into the log only, as ``arsup: text``."""
        self._log.write(f"arsup: {text}\n".encode())

    def check_stall(self, now: float, stall_s: float) -> float:
        """Abort the run if it has been silent for ``stall_s`` (0: never); when to look again."""
        if stall_s <= 0:
            return math.inf
        silent_until = self.last_output + stall_s
        if now >= silent_until:
            self._latch.abort(f"aborted: no output for {stall_s:g} s (stall_s)")
        return silent_until

    def close(self) -> None:
        """Close the log (a log cut short writes its end here); feed nothing after this."""
        self._log.close()

    def report(self) -> LogReport:
        """What the closed log adds to the outcome (see ``CappedLog.report``)."""
        return self._log.report(self._path)

    def _deliver(self, lines: list[str], partial: str) -> None:
        """Completed lines go to the subscriber, and past the abort pattern until the run is stopped."""
        if self._on_output is not None:
            try:
                self._on_output(lines, partial)
            except Exception:
                if not self._callback_failed:  # once: a broken subscriber would otherwise flood the log
                    self._callback_failed = True
                    logger.exception("output callback of %s failed; it keeps being called", self._name())
        if self._latch.stopped is None:
            reason = abort_reason(self._pattern, lines)
            if reason:
                self._latch.abort(reason)


class LineAssembler:
    """Turns raw output into display lines, the way a terminal would show them.

    ``\\n`` ends a line; ``\\r`` returns to its start, so only the text after
    the last ``\\r`` remains (progress bars), where a ``\\r`` right before the
    ``\\n`` does not count (``\\r\\n`` line ends). Work is per chunk with
    ``str`` methods, never per character, to keep up with a flood. One thread
    feeds it.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""  # text after the last newline, kept short (see _compact)

    def feed(self, data: bytes) -> tuple[list[str], str] | None:
        """The lines completed by ``data`` and the partial line after them, or None if no new text."""
        text = self._decoder.decode(data)
        if not text:
            return None
        buf = self._tail + text
        lines = buf.split("\n")
        tail = lines.pop()
        if "\r" in buf:
            lines = [collapse_progress(line) for line in lines]
            tail = _compact(tail)
        if len(tail) > _MAX_LINE_CHARS:
            lines.append(collapse_progress(tail))
            tail = ""
        self._tail = tail
        return lines, collapse_progress(tail)

    def close(self) -> list[str]:
        """At EOF: what is left becomes a complete line, since nothing will follow it."""
        rest = self._tail + self._decoder.decode(b"", final=True)  # the tail never holds a "\n"
        self._tail = ""
        return [collapse_progress(rest)] if rest else []


def _compact(tail: str) -> str:
    """Drop progress updates that a later ``\\r`` already overwrote, so an endless bar costs no memory."""
    cut = tail.rstrip("\r").rfind("\r")
    return tail[cut + 1 :]


class CappedLog:
    """The run's log on disk: all of it, or its head, a marker line and its end.

    A script that floods for hours must not fill the disk, and a disk that
    fills while it runs (whoever filled it) must not cost the run its result,
    yet the summary it prints last (the metric) must still end the log. The
    head goes to disk until one of three things ends it, at a line end where
    it can: the cap (about ``cap - 1 MiB``), the disk's reserve (the log never
    takes its disk below ``_disk_reserve`` free; statvfs is asked every
    ``_FREE_CHECK_BYTES`` written), or a write that fails (a full disk: what
    the disk refused is kept, not lost). What follows goes into a bounded
    in-memory ring instead of the disk (so the drain never slows down), and
    ``close()`` appends a marker line and the ring's last whole lines. What
    close cannot write either stays in ``unwritten``: the file's bytes and
    then those are the log as it should read, which is what the metric is
    read from. Nothing here raises: ``error`` and ``cut_for_space`` say what
    happened. One thread at a time uses it (see ``OutputSink``).
    """

    def __init__(self, file: BinaryIO, cap: int = 0) -> None:
        self._file = file
        self._fd = file.fileno()  # written with os.write: each byte is on disk or in memory, never in between
        self._tail_max = min(_LOG_TAIL_BYTES, cap // 2) if cap > 0 else _LOG_TAIL_BYTES
        # Bytes the head may still take under the cap.
        self._head_left = max(0, cap - self._tail_max - _LOG_MARKER_RESERVE) if cap > 0 else math.inf
        self._reserve = _disk_reserve(self._fd)
        self._next_check = 0  # bytes written when the free space is asked next
        self._written = 0
        self._cut = False  # the head is complete; output goes to the ring
        self._head_ends_line = True
        self._ring = bytearray()
        self._past_head = 0  # bytes that came after the head
        self.error: OSError | None = None  # the first write the disk refused
        self.cut_for_space = ""  # why the head ended early to keep the disk's reserve free, in a few words
        self.unwritten = b""  # what close() could not write: it belongs after the file's bytes

    def write(self, data: bytes) -> None:
        if not self._cut and self._written >= self._next_check:
            self._check_free()
        if not self._cut:
            if len(data) <= self._head_left:
                self._head_left -= len(data)
                data = self._to_disk(data)  # what the disk refused, if it did (then the head is over)
                if not data:
                    return
            else:
                end = data.rfind(b"\n", 0, int(self._head_left)) + 1  # the head ends with a whole line if it can
                data = self._to_disk(data[:end]) + data[end:]
                self._cut = True
        self._past_head += len(data)
        self._ring += data
        if len(self._ring) > 2 * self._tail_max:  # trimmed in bulk: amortised O(1) per byte
            del self._ring[: len(self._ring) - self._tail_max]

    def close(self) -> None:
        """Append the marker and the kept end of the output (if the head was cut short), then close."""
        if self._cut:
            self.unwritten = self._to_disk(self._end())
        try:
            self._file.close()
        except OSError as exc:  # nothing is buffered: only the file system can say no here
            self._fail(exc)

    def report(self, path: Path) -> LogReport:
        """What this closed log, at ``path``, adds to the outcome: what the disk refused, why it was cut early."""
        error = self.error
        return LogReport(
            log_error=f"cannot write the log {path}: {error.strerror or error}" if error is not None else "",
            unlogged=self.unwritten.decode("utf-8", errors="replace"),
            log_capped=f"the log {path} was {self.cut_for_space}; the run went on" if self.cut_for_space else "",
        )

    def _end(self) -> bytes:
        kept = bytes(self._ring[-self._tail_max :])
        if len(kept) == self._past_head:  # nothing was dropped after all: the log is whole
            return kept
        newline = kept.find(b"\n")
        if newline >= 0:
            kept = kept[newline + 1 :]  # the first line is cut in the middle: drop it
        dropped = self._past_head - len(kept)
        start = b"" if self._head_ends_line else b"\n"
        marker = f"[arsup: log cut here; {dropped} bytes dropped; the run went on]\n".encode()
        return start + marker + kept

    def _check_free(self) -> None:
        """End the head now if going on could take the disk below its reserve (the end still has room)."""
        self._next_check = self._written + _FREE_CHECK_BYTES
        try:
            free = _free_bytes(self._fd)
        except OSError:
            return
        if self._reserve and free < self._reserve + self._tail_max + _LOG_MARKER_RESERVE + _FREE_CHECK_BYTES:
            self._cut = True
            written, reserve = size_text(self._written), size_text(self._reserve)
            self.cut_for_space = f"cut at {written} to keep {reserve} of its disk free"

    def _to_disk(self, data: bytes) -> bytes:
        """Write what the disk takes; the rest comes back (a refused write ends the head, see ``_fail``)."""
        view = memoryview(data)
        try:
            while view:
                done = os.write(self._fd, view)  # the log is read while the run goes on: no buffer
                self._head_ends_line = view[done - 1] == ord("\n")  # a file takes at least a byte, or raises
                self._written += done
                view = view[done:]
        except OSError as exc:
            self._fail(exc)
        return bytes(view)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
        self._cut = True


def _disk_reserve(fd: int) -> int:
    """How much of its disk a run's log leaves free: max(64 MiB, 5 % up to 1 GiB), at most half the disk.

    The reserve is room for arsup's own writes (the journal, git) and for
    everyone else on the disk. It is the disk's, not a share of what is free
    now: on a disk already below it a log keeps only its end, and run after
    run of floods cannot take half of the rest each time. 0 when the file
    system does not say (no check then).
    """
    try:
        stats = os.fstatvfs(fd)
    except OSError:
        return 0
    total = stats.f_blocks * stats.f_frsize
    return int(min(max(_DISK_RESERVE_BYTES, min(total * _DISK_RESERVE_SHARE, _DISK_RESERVE_MAX)), total / 2))


def _free_bytes(fd: int) -> int:
    stats = os.fstatvfs(fd)
    return stats.f_bavail * stats.f_frsize


def size_text(nbytes: float) -> str:
    """A memory or file size for a one-line reason: GB from 1 GB up, MB below."""
    mib = nbytes / (1024 * 1024)
    return f"{round(mib / 1024, 1):g} GB" if mib >= 1024 else f"{mib:.0f} MB"


def abort_reason(pattern: re.Pattern[str] | None, lines: list[str]) -> str:
    """Why a run must end, when a completed line matches the spec's abort pattern; "" otherwise."""
    if pattern is None or not lines:
        return ""
    hit = next(filter(pattern.search, lines), None)  # the loop runs in C: a flood stays cheap
    return "" if hit is None else f"aborted early: the log says {_quote(hit)}"


def _quote(line: str) -> str:
    """A log line for a one-line reason: stripped, cut to _QUOTE_CHARS, quoted."""
    line = line.strip()
    if len(line) > _QUOTE_CHARS:
        line = line[: _QUOTE_CHARS - 3] + "..."
    return f"'{line}'"
