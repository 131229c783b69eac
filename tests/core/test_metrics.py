from __future__ import annotations

from arsup.core.metrics import log_lines, names_the_wrong_metric, parse_log

SUMMARY = "step 1\rstep 2\rstep 3\n---\nval_bpb:          0.997900\npeak_vram_mb:     45060.2\n"


def test_summary_block_parses() -> None:
    parsed = parse_log(SUMMARY, "val_bpb", record=["peak_vram_mb", "training_seconds"])
    assert parsed.crash_reason == ""
    assert parsed.metrics == {"val_bpb": 0.9979, "peak_vram_mb": 45060.2}


def test_last_match_wins() -> None:
    parsed = parse_log("val_bpb: 2.0\nval_bpb: 1.5\n", "val_bpb")
    assert parsed.metrics["val_bpb"] == 1.5


def test_custom_pattern() -> None:
    parsed = parse_log("epoch 3 | acc=0.91\nepoch 4 | acc=0.93\n", "acc", pattern=r"acc=([0-9.]+)")
    assert parsed.metrics["acc"] == 0.93 and not parsed.crash_reason


def test_nan_and_inf_are_crashes() -> None:
    assert parse_log("val_bpb: nan\n", "val_bpb").crash_reason == "val_bpb is nan"
    assert parse_log("val_bpb: -inf\n", "val_bpb").crash_reason == "val_bpb is -inf"


def test_fail_glued_to_progress_line() -> None:
    log = "\rstep 00010 (3.2%) | loss: 9.1 | remaining: 280s    FAIL\n"
    parsed = parse_log(log, "val_bpb", exit_code=1)
    assert parsed.crash_reason == "the run printed FAIL (exit code 1)"


def test_fail_inside_a_word_is_not_a_failure() -> None:
    parsed = parse_log("FAILED_IMPORTS=0\nval_bpb: 1.0\n", "val_bpb")
    assert parsed.crash_reason == ""


def test_missing_metric_and_exit_code() -> None:
    assert parse_log("hello\n", "val_bpb").crash_reason == "no val_bpb in the output"
    assert parse_log("val_bpb: 1.0\n", "val_bpb", exit_code=3).crash_reason == "exit code 3"


def test_a_missing_metric_names_the_metric_lines_the_log_has() -> None:
    log = "step 1\n---\nval_loss:   0.8123\ntrain_loss: 0.7\npeak_vram_mb: 10.0\n"
    parsed = parse_log(log, "val_bpb", record=["peak_vram_mb"])
    assert parsed.crash_reason == "no `val_bpb:` line; the log has `val_loss:`, `train_loss:` (set `[metric] name`)"
    assert names_the_wrong_metric(parsed.crash_reason) and not names_the_wrong_metric("no val_bpb in the output")
    only_recorded = parse_log("peak_vram_mb: 10.0\nnum_steps: 3\n", "val_bpb", record=["peak_vram_mb"])
    assert only_recorded.crash_reason == "no `val_bpb:` line; the log has `num_steps:` (set `[metric] name`)"
    assert parse_log("peak_vram_mb: 10.0\n", "val_bpb", record=["peak_vram_mb"]).crash_reason == (
        "no val_bpb in the output"
    )


def test_supervisor_failure_wins() -> None:
    parsed = parse_log("val_bpb: 1.0\n", "val_bpb", exit_code=-15, failure="timed out after 2 s")
    assert parsed.crash_reason == "timed out after 2 s"


def test_tail_keeps_last_50_lines_with_progress_collapsed() -> None:
    log = "".join(f"line {i}\n" for i in range(100)) + "a\rb\rc\n"
    tail = parse_log(log, "val_bpb").tail.splitlines()
    assert len(tail) == 50
    assert tail[-1] == "c" and tail[0] == "line 51"


def test_log_lines_collapse_carriage_returns() -> None:
    assert log_lines("x\r\ny\rz\n") == ["x", "z"]


def test_the_tail_is_capped_in_lines_and_bytes() -> None:
    flood = "x" * 10_000_000  # a crash that printed 10 MB without a newline
    parsed = parse_log(f"start\n{flood}\nTraceback: boom\n", "val_bpb", exit_code=1)
    assert parsed.crash_reason == "exit code 1"
    assert len(parsed.tail.encode()) <= 8 * 1024 + 100
    assert parsed.tail.startswith("[arsup: ") and "bytes of the tail cut]" in parsed.tail
    assert parsed.tail.endswith("Traceback: boom")
    many = "\n".join(f"line {i}" for i in range(1000))
    assert parse_log(many, "val_bpb").tail.splitlines() == [f"line {i}" for i in range(950, 1000)]
