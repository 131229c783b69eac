"""arsup itself is stopped: Ctrl-C, SIGTERM, SIGHUP (an SSH drop) and kill -9, in the middle of a run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import TOY_TRAIN, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records, start_arsup

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories

SILENT = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(120)\n"


def start_slow(project: Path, tag: str) -> subprocess.Popen[str]:
    """`arsup run --headless` in its own process, once experiment 0002 trains (silently)."""
    script = write_script(project, {"hypothesis": "slow", "files": {"train.py": SILENT}})
    return start_arsup(project, script, tag, "0002")


def final_statuses(project: Path) -> dict[str, tuple[str, str]]:
    records = [r["experiment"] for r in journal_records(project) if r["event"] == "experiment"]
    return {r["id"]: (r["status"], r["reason"]) for r in records}


@pytest.mark.parametrize(
    ("number", "code", "reason"),
    [
        (signal.SIGINT, 130, "stopped by user"),
        (signal.SIGTERM, 143, "stopped: arsup got SIGTERM"),
        (signal.SIGHUP, 129, "stopped: the terminal closed (SIGHUP)"),
    ],
)
def test_a_stop_signal_records_the_run_and_leaves_nothing(project: Path, number: int, code: int, reason: str) -> None:
    protected = fingerprint(project, ["prepare.py"])
    proc = start_slow(project, "sig")
    proc.send_signal(number)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err
    assert final_statuses(project)["0002"] == ("crash", reason)
    rows = (project / "results.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[3] for row in rows] == ["keep", "crash"]
    assert_invariants(project, protected)


def test_kill_9_takes_the_training_down_and_a_restart_recovers(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    proc = start_slow(project, "k9")
    training = [p for p in psutil.Process(proc.pid).children(recursive=True) if "train.py" in " ".join(p.cmdline())]
    assert training
    proc.kill()  # SIGKILL: no handler runs in arsup
    proc.communicate(timeout=10)
    gone, alive = psutil.wait_procs(training, timeout=2.0)
    assert not alive, "the training outlived arsup"
    assert final_statuses(project)["0002"][0] == "running"  # the journal stopped mid-experiment

    restart = subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{project.parent / 'proposals.jsonl'}",
         "--tag", "k9", "--max-experiments", "0"],
        cwd=project, capture_output=True, text=True, timeout=60,
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "recovered experiment 0002: crash" in restart.stdout
    assert final_statuses(project)["0002"] == ("crash", "interrupted: arsup stopped before the run finished")
    assert_invariants(project, protected)
