"""Tests for arsup.core.executors.output: the sink and the latch both executors share, on real files."""

from __future__ import annotations

import logging
import math
import re
import threading
from pathlib import Path

import pytest

from arsup.core.executors.output import CappedLog, Ended, LineAssembler, LogUnavailable, OutputSink, StopLatch


class _Subscriber:
    """Collects what a sink delivers; raises on every call when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.lines: list[str] = []
        self.partials: list[str] = []
        self.calls = 0
        self.fail = fail

    def __call__(self, lines: list[str], partial: str) -> None:
        self.calls += 1
        self.lines.extend(lines)
        self.partials.append(partial)
        if self.fail:
            raise RuntimeError("subscriber broke")


def _sink(tmp_path: Path, latch: StopLatch, **kwargs: object) -> OutputSink:
    return OutputSink.open(tmp_path / "logs" / "run.log", 0, latch, **kwargs)  # type: ignore[arg-type]


# -- the latch --------------------------------------------------------------------


def test_the_first_stop_wins_a_kill_over_a_later_abort() -> None:
    latch = StopLatch()
    assert latch.stopped is None
    latch.kill("user stop")
    latch.abort("aborted early: the log says 'FAIL'")
    latch.kill("a second stop")
    assert latch.stopped is Ended.KILL
    assert latch.ending(Ended.KILL, timeout=60) == {
        "timed_out": False, "killed": True, "aborted": False, "kill_reason": "user stop",
    }


def test_the_first_stop_wins_an_abort_over_a_later_kill() -> None:
    latch = StopLatch()
    latch.abort("aborted: no output for 2 s (stall_s)")
    latch.kill("user stop")
    assert latch.stopped is Ended.ABORT
    assert latch.ending(Ended.ABORT, timeout=60) == {
        "timed_out": False, "killed": False, "aborted": True, "kill_reason": "aborted: no output for 2 s (stall_s)",
    }
    # An ending of the kind that lost carries no reason (the executors never report one, but nothing leaks).
    assert latch.ending(Ended.KILL, timeout=60)["kill_reason"] == ""


def test_a_kill_without_a_reason_says_killed() -> None:
    latch = StopLatch()
    latch.kill("")
    assert latch.ending(Ended.KILL, timeout=1)["kill_reason"] == "killed"


def test_every_stop_wakes_the_supervisor_even_one_that_lost() -> None:
    woken: list[Ended | None] = []
    latch = StopLatch()
    latch = StopLatch(lambda: woken.append(latch.stopped))
    latch.kill("first")
    latch.abort("second")
    assert woken == [Ended.KILL, Ended.KILL]  # called after the latch is set, outside its lock


def test_endings_without_a_stop() -> None:
    latch = StopLatch()
    assert latch.ending(Ended.TIMEOUT, timeout=2.5) == {
        "timed_out": True, "killed": False, "aborted": False, "kill_reason": "timed out after 2.5 s",
    }
    assert latch.ending(Ended.TIMEOUT, timeout=3600.0)["kill_reason"] == "timed out after 3600 s"
    lost = latch.ending(Ended.LOST, timeout=1, lost="node lost: the node running it died")
    assert lost == {"timed_out": False, "killed": False, "aborted": False,
                    "kill_reason": "node lost: the node running it died"}
    for ended in (Ended.EXIT, Ended.START, Ended.INTERRUPTED):
        assert latch.ending(ended, timeout=1) == {"timed_out": False, "killed": False, "aborted": False,
                                                  "kill_reason": ""}


def test_a_timeout_after_a_stop_is_still_a_timeout() -> None:
    """How supervision ended decides; a latched stop that did not end it adds nothing (as before the latch)."""
    latch = StopLatch()
    latch.kill("user stop")
    assert latch.ending(Ended.EXIT, timeout=1)["kill_reason"] == ""
    assert latch.ending(Ended.TIMEOUT, timeout=1)["kill_reason"] == "timed out after 1 s"


def test_racing_stops_latch_exactly_one_reason_with_its_kind() -> None:
    for _ in range(20):
        latch = StopLatch()
        go = threading.Barrier(8)

        def stop(i: int) -> None:
            go.wait()
            (latch.kill if i % 2 else latch.abort)(f"{'kill' if i % 2 else 'abort'} {i}")

        threads = [threading.Thread(target=stop, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stopped = latch.stopped
        assert stopped is not None
        reason = latch.ending(stopped, timeout=1)["kill_reason"]
        assert reason.split()[0] == stopped.value  # the reason belongs to the kind that won


# -- the sink ---------------------------------------------------------------------


def test_the_sink_logs_raw_bytes_and_delivers_display_lines(tmp_path: Path) -> None:
    subscriber = _Subscriber()
    sink = _sink(tmp_path, StopLatch(), on_output=subscriber)
    sink.feed(b"step 1\rstep 2\nloss 0.5\r\npartial")
    sink.feed(b" more")
    sink.eof()
    sink.close()
    assert (tmp_path / "logs" / "run.log").read_bytes() == b"step 1\rstep 2\nloss 0.5\r\npartial more"
    assert subscriber.lines == ["step 2", "loss 0.5", "partial more"]  # the partial line is complete at EOF
    assert subscriber.partials == ["partial", "partial more", ""]
    assert sink.report() == {"log_error": "", "unlogged": "", "log_capped": ""}


def test_a_note_goes_to_the_log_only(tmp_path: Path) -> None:
    subscriber = _Subscriber()
    sink = _sink(tmp_path, StopLatch(), on_output=subscriber)
    sink.feed(b"out\n")
    sink.note("cannot start 'x' in /nowhere: no such file")
    sink.eof()
    sink.close()
    assert (tmp_path / "logs" / "run.log").read_bytes() == b"out\narsup: cannot start 'x' in /nowhere: no such file\n"
    assert subscriber.lines == ["out"]


def test_a_matching_line_aborts_even_without_a_subscriber(tmp_path: Path) -> None:
    latch = StopLatch()
    sink = _sink(tmp_path, latch, abort_pattern=re.compile(r"loss nan"))
    sink.feed(b"step 1 loss 2.3\nstep 2 loss nan (progress)\r")
    assert latch.stopped is None  # a progress line is not complete yet
    sink.feed(b"step 2 loss nan" + b" x" * 100 + b"\nstep 3 loss nan again\n")
    sink.close()
    assert latch.stopped is Ended.ABORT
    assert latch.ending(Ended.ABORT, timeout=1)["kill_reason"] == (
        "aborted early: the log says 'step 2 loss nan" + " x" * 51 + "...'"  # the first match, cut to 120
    )


def test_a_matching_line_after_a_kill_leaves_the_kill(tmp_path: Path) -> None:
    latch = StopLatch()
    sink = _sink(tmp_path, latch, abort_pattern=re.compile(r"FAIL"))
    latch.kill("user stop")
    sink.feed(b"FAIL\n")
    sink.eof()
    sink.close()
    assert latch.stopped is Ended.KILL and latch.ending(Ended.KILL, timeout=1)["kill_reason"] == "user stop"


def test_the_last_partial_line_is_matched_at_eof(tmp_path: Path) -> None:
    latch = StopLatch()
    sink = _sink(tmp_path, latch, abort_pattern=re.compile(r"FAIL"))
    sink.feed(b"ok\nFAIL without a newline")
    assert latch.stopped is None
    sink.eof()
    sink.close()
    assert latch.stopped is Ended.ABORT


def test_a_failing_subscriber_is_reported_once_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    subscriber = _Subscriber(fail=True)
    latch = StopLatch()
    sink = _sink(tmp_path, latch, on_output=subscriber, abort_pattern=re.compile("FAIL"), name=lambda: "run 4242")
    with caplog.at_level(logging.ERROR, logger="arsup.core.executors.output"):
        sink.feed(b"one\n")
        sink.feed(b"two\n")
        sink.feed(b"FAIL\n")
    sink.close()
    assert subscriber.calls == 3 and subscriber.lines == ["one", "two", "FAIL"]
    reports = [r for r in caplog.records if "output callback" in r.getMessage()]
    assert [r.getMessage() for r in reports] == ["output callback of run 4242 failed; it keeps being called"]
    assert latch.stopped is Ended.ABORT  # the pattern is still checked after the subscriber raised
    assert (tmp_path / "logs" / "run.log").read_bytes() == b"one\ntwo\nFAIL\n"


def test_silence_past_stall_s_aborts(tmp_path: Path) -> None:
    latch = StopLatch()
    sink = _sink(tmp_path, latch)
    sink.last_output = 100.0
    assert sink.check_stall(1000.0, 0) == math.inf  # off
    assert sink.check_stall(101.0, 2.0) == 102.0 and latch.stopped is None
    assert sink.check_stall(102.0, 2.0) == 102.0
    assert latch.stopped is Ended.ABORT
    assert latch.ending(Ended.ABORT, timeout=1)["kill_reason"] == "aborted: no output for 2 s (stall_s)"
    sink.feed(b"late\n")
    assert sink.last_output > 102.0  # output moves the stall clock
    sink.close()


def test_a_log_that_cannot_be_made_is_a_start_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    path = tmp_path / "blocker" / "run.log"
    with pytest.raises(LogUnavailable, match=rf"^cannot open log {re.escape(str(path))}: "):
        OutputSink.open(path, 0, StopLatch())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails with ENOSPC")
def test_what_the_disk_refuses_is_reported_with_the_end_of_the_output() -> None:
    sink = OutputSink.open(Path("/dev/full"), 0, StopLatch())
    sink.feed(b"step 1\nval_bpb: 1.0\n")
    sink.close()
    report = sink.report()
    assert report["log_error"] == "cannot write the log /dev/full: No space left on device"
    assert report["unlogged"] == "step 1\nval_bpb: 1.0\n" and report["log_capped"] == ""


# -- the line assembler and the capped log (moved from test_runner.py) -------------------


def test_line_assembler_handles_splits_between_chunks() -> None:
    assembler = LineAssembler()
    euro = "€".encode()
    assert assembler.feed(b"a\r") == ([], "a")
    assert assembler.feed(b"\nb" + euro[:1]) == (["a"], "b")  # "\r\n" split across chunks
    assert assembler.feed(euro[1:] + b"\rc\r") == ([], "c")  # a character split across chunks
    assert assembler.feed(b"\xffd\n") == (["\ufffdd"], "")  # undecodable bytes do not stop anything
    assert assembler.feed(b"tail") == ([], "tail")
    assert assembler.close() == ["tail"]


def test_line_assembler_keeps_endless_progress_and_huge_lines_bounded() -> None:
    assembler = LineAssembler()
    for i in range(10_000):
        assert assembler.feed(f"\rstep {i}".encode()) == ([], f"step {i}")
    assert len(assembler._tail) < 20  # overwritten updates are not kept
    huge = "x" * (2 << 20)
    assert assembler.feed(f"\n{huge}".encode()) == (["step 9999", huge], "")


def test_log_file_under_its_cap_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "log"
    chunks = [f"line {i}\n".encode() * 10 for i in range(30)]
    # Far under the cap; then past the head (about 170 bytes) but short of losing anything.
    for cap, count in [(1 << 20, 30), (600, 6)]:
        with open(path, "wb") as file:
            log = CappedLog(file, cap)
            for chunk in chunks[:count]:
                log.write(chunk)
            log.close()
        assert path.read_bytes() == b"".join(chunks[:count])
