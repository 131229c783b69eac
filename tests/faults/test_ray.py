"""The Ray cluster goes away under a run: its head is killed (as `ray stop --force` does), or killed and
started again at once. arsup runs as a real `arsup run --headless` process, the cluster's driver.

Each test has its own head (one CPU, one fake GPU, no dashboard) and kills only that head's processes:
`ray stop --force` would take every Ray cluster of the machine with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TOY_TRAIN, RayHead, make_project, marked_processes, write_script
from tests.faults.conftest import assert_invariants, fingerprint, journal_records, start_arsup

pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # slow: the fault cases run real loops on a real Ray head

MARK = "ARSUP_RAY_FAULT_MARK"
MARK_VALUE = uuid.uuid4().hex

# The first attempt trains until its host goes; the next one finishes (a marker file beside the repo says which).
LOST_ONCE = (
    "import os, time\n"
    "if not os.path.exists(os.environ['LOST_ONCE']):\n"
    "    open(os.environ['LOST_ONCE'], 'w').close()\n"
    "    print('training', flush=True)\n"
    "    time.sleep(120)\n"
) + TOY_TRAIN


@pytest.fixture
def head() -> Iterator[RayHead]:
    node = RayHead()
    node.start()
    try:
        yield node
    finally:
        node.close()
        leftovers = marked_processes(MARK, MARK_VALUE)
        for proc in leftovers:
            proc.kill()
        assert leftovers == [], f"processes left behind: {leftovers}"


def start_on_cluster(root: Path, tag: str) -> subprocess.Popen[str]:
    """`arsup run --headless` on the cluster, once the baseline's first attempt trains."""
    return start_arsup(root, write_script(root), tag, "0001", timeout=90)  # no proposals: the baseline, then no more ideas


def ray_project(tmp_path: Path, head: RayHead) -> Path:
    env = {MARK: MARK_VALUE, "LOST_ONCE": str(tmp_path / "lost-once")}
    executor = {"kind": "ray", "address": head.address}
    return make_project(
        tmp_path / "repo", train=LOST_ONCE, project={"env": env}, executor=executor, acceptance={"mode": "greedy"}
    )


def lost_runs(root: Path) -> list[dict]:
    return [r for r in journal_records(root) if r["event"] == "run_lost"]


def baseline_record(root: Path) -> dict:
    return [r["experiment"] for r in journal_records(root) if r["event"] == "experiment"][-1]


def test_a_lost_head_ends_the_loop_with_one_message_and_a_restart_measures_it(head: RayHead, tmp_path: Path) -> None:
    root = ray_project(tmp_path, head)
    protected = fingerprint(root, ["prepare.py"])
    proc = start_on_cluster(root, "gone")
    head.kill()
    killed_at = time.monotonic()
    out, err = proc.communicate(timeout=180)
    took = time.monotonic() - killed_at
    message = f"the Ray cluster at {head.address} is gone: start it again (ray start --head --port={head.port})"
    assert proc.returncode == 1, out + err
    assert message in out and "restart arsup" in out, out
    assert "fix the training script" not in out and "Traceback" not in err, out + err
    assert took < 55, f"{took:.0f} s: Ray's own client ends its driver after 60 s"
    (lost,) = lost_runs(root)
    assert lost["experiment"] == "0001" and lost["seed"] == 0 and lost["reason"].startswith("node lost: ")
    assert "training" in Path(lost["log"]).read_text()
    records = journal_records(root)
    end = [r for r in records if r["event"] == "session_end"][-1]
    assert end["error"] and message in end["reason"]
    assert [r["experiment"] for r in records if r["event"] == "unmeasured"] == ["0001"]  # not the code's crash
    assert not (root / "results.tsv").exists() or len((root / "results.tsv").read_text().splitlines()) == 1
    assert_invariants(root, protected)

    head.start()
    again = subprocess.run(
        [sys.executable, "-m", "arsup", "run", "--headless", "--agent", f"script:{write_script(root)}", "--tag", "gone"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "experiment 0001 was not measured (a lost Ray cluster): it is measured again first" in again.stdout
    baseline = baseline_record(root)
    assert (baseline["id"], baseline["status"], baseline["metric"]) == ("0001", "keep", pytest.approx(3.25))
    assert_invariants(root, protected)


def test_a_restarted_head_is_reconnected_and_the_run_measured(head: RayHead, tmp_path: Path) -> None:
    root = ray_project(tmp_path, head)
    protected = fingerprint(root, ["prepare.py"])
    proc = start_on_cluster(root, "back")
    head.kill()
    head.start()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    assert "running it again" in out and "Traceback" not in err, out + err
    (lost,) = lost_runs(root)
    assert lost["experiment"] == "0001" and lost["reason"].startswith("node lost: ")
    baseline = baseline_record(root)
    assert baseline["status"] == "keep" and baseline["metric"] == pytest.approx(3.25)
    assert len(baseline["runs"]) == 1  # the lost attempt is the journal's run_lost, not a run of the mean
    assert_invariants(root, protected)


def test_a_stop_while_a_lost_cluster_is_awaited_ends_at_once(head: RayHead, tmp_path: Path) -> None:
    root = ray_project(tmp_path, head)
    protected = fingerprint(root, ["prepare.py"])
    proc = start_on_cluster(root, "wait")
    head.kill()
    waiting = f"arsup: the Ray cluster at {head.address} does not answer: waiting up to 30 s for it to come back"
    log = root / ".arsup" / "runs" / "0001" / "run.log"  # the next attempt's: the lost one is run.log.lost
    deadline = time.monotonic() + 30
    while not (lost_runs(root) and log.exists() and waiting in log.read_text()):  # the screen's log says it too
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    asked = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - asked < 15, "the stop waited for the cluster"
    assert "Traceback" not in err, err
    baseline = baseline_record(root)
    assert (baseline["status"], baseline["reason"]) == ("crash", "stopped by user")
    assert_invariants(root, protected)
