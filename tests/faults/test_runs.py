"""Training scripts that misbehave: each run ends in a stated outcome and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.experiment import Status
from tests.conftest import TOY_TRAIN, make_engine, make_project, write_script
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

LOOPS_FOREVER = "print('starting', flush=True)\nwhile True:\n    pass\n"

FIFTY_SLEEPERS = TOY_TRAIN + """
import subprocess
for _ in range(50):
    subprocess.Popen(["sleep", "300"])
"""

METRIC_TWICE = TOY_TRAIN + "print('val_bpb:          2.500000')\n"

# A helper that leaves the run's session and closes its output within one sampling interval.
DOUBLE_FORK = TOY_TRAIN + """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(300)
    os._exit(0)
os.wait()
"""


def run_one(tmp_path: Path, train: str, **project: object) -> tuple[Path, dict[str, str], object]:
    """The baseline of a project whose training script is `train`."""
    root = make_project(tmp_path / "repo", train=train, project={"timeout": 30, **project})
    protected = fingerprint(root, ["prepare.py"])
    engine, _ = make_engine(root, write_script(root), max_experiments=1, acceptance={"mode": "greedy"})
    engine.run()
    return root, protected, engine.history[0]


def test_a_run_that_loops_forever_is_killed_at_the_timeout(tmp_path: Path) -> None:
    root, protected, baseline = run_one(tmp_path, LOOPS_FOREVER, time_budget=1, timeout=2)
    assert baseline.status == Status.CRASH and baseline.reason == "timed out after 2 s"
    assert_invariants(root, protected)


def test_a_run_that_leaves_fifty_sleepers_counts_and_they_are_ended(tmp_path: Path) -> None:
    root, protected, baseline = run_one(tmp_path, FIFTY_SLEEPERS)
    assert baseline.status == Status.KEEP and baseline.metric == pytest.approx(3.25)
    assert_invariants(root, protected)


def test_a_metric_printed_twice_counts_its_last_value(tmp_path: Path) -> None:
    root, protected, baseline = run_one(tmp_path, METRIC_TWICE)
    assert baseline.status == Status.KEEP and baseline.metric == pytest.approx(2.5)
    assert_invariants(root, protected)


@pytest.mark.parametrize("attempt", range(5))
def test_a_fast_double_fork_does_not_escape(tmp_path: Path, attempt: int) -> None:
    root, protected, baseline = run_one(tmp_path, DOUBLE_FORK)
    assert baseline.status == Status.KEEP
    assert_invariants(root, protected, settle_s=0.5)


NAN_THEN_HANG = "import time\nprint('step 00003 | loss: nan', flush=True)\ntime.sleep(60)\n"
SILENT_HANG = "import time\nprint('starting', flush=True)\ntime.sleep(60)\n"
HOG = "import time\nblock = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\ntime.sleep(60)\n"
FLOOD_THEN_METRIC = "import sys\nfor _ in range(3000):\n    sys.stdout.write('x' * 1023 + '\\n')\n" + TOY_TRAIN


@pytest.mark.parametrize(
    ("train", "watchdog", "reason"),
    [
        (NAN_THEN_HANG, {}, "aborted early: the log says 'step 00003 | loss: nan'"),
        (SILENT_HANG, {"stall_s": 1}, "aborted: no output for 1 s (stall_s)"),
        (HOG, {"memory_gb": 0.1}, "aborted: memory"),
    ],
    ids=["nan-loss", "stall", "memory"],
)
def test_a_watchdog_ends_a_doomed_run_early(tmp_path: Path, train: str, watchdog: dict, reason: str) -> None:
    root = make_project(tmp_path / "repo", train=train, project={"timeout": 60}, watchdog=watchdog)
    protected = fingerprint(root, ["prepare.py"])
    engine, _ = make_engine(root, write_script(root), max_experiments=1, acceptance={"mode": "greedy"})
    engine.run()
    baseline = engine.history[0]
    assert baseline.status == Status.CRASH and baseline.reason.startswith(reason)
    assert baseline.runs[0].wall_s < 20
    assert_invariants(root, protected)


def test_a_flood_is_capped_on_disk_and_the_metric_still_read(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=FLOOD_THEN_METRIC, watchdog={"max_log_mb": 1})
    protected = fingerprint(root, ["prepare.py"])
    engine, _ = make_engine(root, write_script(root), max_experiments=1, acceptance={"mode": "greedy"})
    engine.run()
    baseline = engine.history[0]
    assert baseline.status == Status.KEEP and baseline.metric == pytest.approx(3.25)
    log = Path(baseline.runs[0].log_path)
    assert log.stat().st_size <= 1024 * 1024 and b"[arsup: log cut here;" in log.read_bytes()
    assert_invariants(root, protected)
