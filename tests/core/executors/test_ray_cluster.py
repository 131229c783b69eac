"""Tests for arsup.core.executors.ray_cluster, on a real local Ray cluster with real processes.

One cluster for the module (``ray start --head`` with two fake GPUs, which
Ray hands out by setting CUDA_VISIBLE_DEVICES just as it would real ones).
The runs execute a real ``git archive`` snapshot of a committed project.
Every run's environment carries a marker, so that any training process left
alive anywhere at the end of the module is found and reported.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from arsup import config
from arsup.core import measure
from arsup.core.executors import ray_cluster, ray_task
from arsup.core.executors.ray_cluster import RayRun
from arsup.core.runner import RunOutcome, RunSpec, build_env
from tests.conftest import RayHead, make_project, marked_processes

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(60)

MARK = "ARSUP_RAY_TEST_MARK"
MARK_VALUE = uuid.uuid4().hex
LEAK = "ARSUP_RAY_TEST_LEAK"  # in the cluster's environment, never in a spec's

SHOW = """\
import os, sys, time
print("pid", os.getpid())
print("files", " ".join(sorted(os.listdir("."))))
for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "ARSUP_RAY_TEST_MARK", "ARSUP_RAY_TEST_LEAK"):
    print("env", name, os.environ.get(name, "<unset>"))
print("first", flush=True)
time.sleep(1)
print("val_bpb: 0.5")
"""

# A child and a grandchild in its own session that ignores SIGTERM; both print their pids.
HANG = """\
import os, signal, subprocess, sys, time
code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
kid = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
print("pids", os.getpid(), kid.pid)
print("loss", sys.argv[1] if len(sys.argv) > 1 else "1.0")
print("ready", flush=True)
time.sleep(60)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local head node, its address; stopped (only it), and every run's process checked gone, at the end."""
    head = RayHead(cpus=2, gpus=2, env={LEAK: "leaked"})
    try:
        head.start()
        yield head.address
    finally:
        ray.shutdown()
        head.close()
        leftovers = marked_processes(MARK, MARK_VALUE)
        for proc in leftovers:
            proc.kill()
        assert leftovers == [], f"processes left behind: {leftovers}"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed toy project (tests/conftest.py) with the scripts above beside train.py."""
    root = tmp_path_factory.mktemp("ray") / "repo"
    gitconfig = root.parent / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        root.mkdir()
        (root / "show.py").write_text(SHOW)
        (root / "hang.py").write_text(HANG)
        return make_project(root)


@pytest.fixture(scope="module")
def snapshot(repo: Path) -> bytes:
    return subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=repo, check=True, capture_output=True).stdout


class _Collector:
    """An output subscriber recording each line with the time it arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.ready = threading.Event()

    def __call__(self, lines: list[str], partial: str) -> None:
        self.lines += [(time.monotonic(), line) for line in lines]
        if "ready" in lines:
            self.ready.set()

    def text(self) -> list[str]:
        return [line for _, line in self.lines]


def _spec(tmp_path: Path, command: str, *, timeout: float = 30.0, **fields: object) -> RunSpec:
    env = build_env(os.environ, extra={MARK: MARK_VALUE})
    return RunSpec(command, tmp_path / "nowhere", tmp_path / "logs" / "run.log", env, timeout, 0.5, **fields)


def _py(script: str, *args: str) -> str:
    return shlex.join([sys.executable, script, *args])


def _in_thread(job: RayRun) -> tuple[threading.Thread, list[RunOutcome]]:
    box: list[RunOutcome] = []
    thread = threading.Thread(target=lambda: box.append(job.wait()))
    thread.start()
    return thread, box


def _pids(log: Path) -> list[int]:
    words = next(line for line in log.read_text().splitlines() if line.startswith("pids ")).split()
    return [int(word) for word in words[1:]]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _all_gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(map(_alive, pids)):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_run_streams_its_output_live_into_the_log(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    collector = _Collector()
    spec = _spec(tmp_path, _py("show.py"))
    job = RayRun(spec, collector, address=cluster, snapshot=snapshot)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    job.start()
    assert job.identity is None
    outcome = job.wait()  # the module's first connection to the cluster
    ended = time.monotonic()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers  # ray.init's undone
    assert outcome.exit_code == 0, spec.log_path.read_text()
    assert outcome.start_error == "" and outcome.kill_reason == "" and not outcome.killed
    assert 1.0 <= outcome.wall_s < 10
    log = spec.log_path.read_text().splitlines()
    assert log == collector.text()
    assert "val_bpb: 0.5" in log
    first = next(at for at, line in collector.lines if line == "first")
    assert ended - first >= 0.8, "the first line arrived only when the run ended"
    files = next(line for line in log if line.startswith("files ")).split()[1:]
    assert {"show.py", "train.py", "arsup.toml"} <= set(files) and "reaper.py" not in files
    env = dict(line.split()[1:3] for line in log if line.startswith("env "))
    assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")  # Ray's choice, not the driver's
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env[MARK] == MARK_VALUE
    assert env[LEAK] == "<unset>"  # the worker's own environment does not reach the run


@pytest.mark.slow
def test_kill_from_another_thread_ends_the_whole_tree(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    collector = _Collector()
    job = RayRun(_spec(tmp_path, _py("hang.py")), collector, address=cluster, snapshot=snapshot)
    job.start()
    thread, box = _in_thread(job)
    assert collector.ready.wait(20), "the run did not get going"
    pids = _pids(job.spec.log_path)
    asked = time.monotonic()
    job.kill("stopped by the test")
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - asked < 5
    (outcome,) = box
    assert outcome.killed and outcome.kill_reason == "stopped by the test"
    assert not outcome.timed_out and not outcome.aborted
    assert _all_gone(pids, within=0.5), "wait() returned before the tree was gone"


@pytest.mark.slow
def test_timeout_ends_the_run(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    job = RayRun(_spec(tmp_path, _py("hang.py"), timeout=2.0), None, address=cluster, snapshot=snapshot)
    job.start()
    outcome = job.wait()
    assert outcome.timed_out and not outcome.killed
    assert outcome.kill_reason == "timed out after 2 s"
    assert 2.0 <= outcome.wall_s < 8
    assert _all_gone(_pids(job.spec.log_path))


@pytest.mark.slow
def test_abort_pattern_ends_the_run_and_quotes_the_line(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    spec = _spec(tmp_path, _py("hang.py", "nan"), abort_pattern=re.compile(r"loss nan"))
    job = RayRun(spec, None, address=cluster, snapshot=snapshot)
    job.start()
    outcome = job.wait()
    assert outcome.aborted and not outcome.killed and not outcome.timed_out
    assert outcome.kill_reason == "aborted early: the log says 'loss nan'"
    assert _all_gone(_pids(spec.log_path))


@pytest.mark.slow
def test_a_failing_command_reports_its_exit_code(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "echo failing; exit 3")
    job = RayRun(spec, None, address=cluster, snapshot=snapshot)
    job.start()
    outcome = job.wait()
    assert outcome.exit_code == 3 and outcome.kill_reason == "" and outcome.start_error == ""
    assert spec.log_path.read_text() == "failing\n"


def test_a_dead_address_is_a_start_error(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    spec = _spec(tmp_path, "echo never")
    job = RayRun(spec, None, address=address, snapshot=b"")
    started = time.monotonic()
    job.start()
    outcome = job.wait()
    assert time.monotonic() - started < 10
    assert outcome.exit_code is None and not outcome.killed
    assert outcome.start_error.startswith("ray: ") and address in outcome.start_error
    assert "Traceback" not in outcome.start_error and "\n" not in outcome.start_error
    assert outcome.start_error in spec.log_path.read_text()


@pytest.mark.slow
def test_a_snapshot_that_is_no_tar_is_a_start_error(cluster: str, tmp_path: Path) -> None:
    job = RayRun(_spec(tmp_path, "echo never"), None, address=cluster, snapshot=b"not a tar")
    job.start()
    outcome = job.wait()
    assert outcome.exit_code is None and outcome.kill_reason == ""
    assert outcome.start_error.startswith("ray: cannot start the run on the worker: ReadError: "), outcome.start_error
    assert "\n" not in outcome.start_error


@pytest.mark.slow
def test_a_run_no_node_can_take_is_a_start_error(cluster: str, snapshot: bytes, tmp_path: Path) -> None:
    job = RayRun(_spec(tmp_path, "echo never", timeout=1.0), None, address=cluster, snapshot=snapshot, num_gpus=3)
    job.start()
    outcome = job.wait()
    assert outcome.exit_code is None
    assert outcome.start_error == f"ray: no node of the cluster at {cluster} started the run within 1 s (it asks for 3 GPU)"


@pytest.mark.slow
def test_a_dead_worker_is_a_lost_node_and_a_crash(cluster: str, repo: Path, snapshot: bytes, tmp_path: Path) -> None:
    collector = _Collector()
    spec = _spec(tmp_path, _py("hang.py"))
    job = RayRun(spec, collector, address=cluster, snapshot=snapshot)
    job.start()
    thread, box = _in_thread(job)
    assert collector.ready.wait(20), "the run did not get going"
    pids = _pids(spec.log_path)
    worker = next(p for p in psutil.Process(pids[0]).parents() if " ".join(p.cmdline()).startswith("ray::"))
    worker.kill()  # as a node going down looks from the driver: the task's process vanishes
    thread.join(20)
    (outcome,) = box
    assert outcome.exit_code is None and not outcome.killed and not outcome.timed_out
    assert outcome.kill_reason.startswith("node lost: the Ray worker running it died (on "), outcome.kill_reason
    assert _all_gone(pids), "the training outlived its worker"
    record, tail = measure.result(config.load(repo), spec, outcome, seed=0)
    assert record.crash_reason == outcome.kill_reason
    assert "ready" in tail
    pattern = f"arsup-ray-{worker.pid}-*"
    assert list(Path(tempfile.gettempdir()).glob(pattern)), "no finally ran in the dead worker: its folder is left"
    after = RayRun(_spec(tmp_path / "next", "true"), None, address=cluster, snapshot=snapshot)
    after.start()
    assert after.wait().exit_code == 0
    assert not list(Path(tempfile.gettempdir()).glob(pattern)), "the next task should have deleted it"


@pytest.mark.slow
def test_measure_reads_the_metric_of_a_ray_run(cluster: str, repo: Path, snapshot: bytes, tmp_path: Path) -> None:
    cfg = config.load(repo)
    spec = measure.run_spec(cfg, repo, sys.executable, tmp_path / "run.log", seed=7, labels={MARK: MARK_VALUE})
    job = RayRun(spec, None, address=cluster, snapshot=snapshot)
    job.start()
    record, tail = measure.result(cfg, spec, job.wait(), seed=7)
    assert record.crash_reason == "" and tail == ""
    assert record.exit_code == 0 and record.metrics["val_bpb"] == pytest.approx(1.0 + 1.5**2)
    assert "seed 7" in (tmp_path / "run.log").read_text()


def test_kill_before_start_submits_nothing(tmp_path: Path) -> None:
    job = RayRun(_spec(tmp_path, "echo never"), None, address="127.0.0.1:1", snapshot=b"")
    job.kill("changed my mind")
    job.start()
    outcome = job.wait()
    assert outcome.killed and outcome.kill_reason == "changed my mind" and outcome.exit_code is None


def test_without_ray_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    job = RayRun(_spec(tmp_path, "echo never"), None, address="127.0.0.1:1", snapshot=b"")
    job.start()
    assert job.wait().start_error == "executor = \"ray\" needs the ray extra: pip install 'arsup[ray]'"


@pytest.mark.slow
def test_the_task_runs_without_arsup_on_the_worker(repo: Path, snapshot: bytes, tmp_path: Path) -> None:
    """What Ray ships to a worker unpickles and runs where arsup cannot be imported."""
    ray_cluster._remote_function()  # registers ray_task for pickling by value
    shim = Path(ray_cluster.reaper.__file__).read_text()
    args = (snapshot, "echo hi; ls", {"PATH": os.environ["PATH"], MARK: MARK_VALUE}, 0.5, shim)
    payload = ray.cloudpickle.dumps((ray_task.run_on_worker, args))
    code = textwrap.dedent(
        """\
        import pickle, sys
        sys.modules["arsup"] = None  # any import of arsup now fails
        task, args = pickle.loads(sys.stdin.buffer.read())
        items = list(task(*args))
        sys.stdout.write(repr(items))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()
    items = ast.literal_eval(done.stdout.decode())  # a repr of dicts and bytes
    output = b"".join(item for item in items if isinstance(item, bytes))
    assert output.startswith(b"hi\n") and b"train.py" in output
    assert items[-1]["exit_code"] == 0


@pytest.mark.slow
def test_importing_the_executor_does_not_import_ray() -> None:
    code = "import sys, arsup.core.executors.ray_cluster; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_the_engine_trains_on_the_cluster_in_a_snapshot_of_each_commit(cluster: str, tmp_path: Path) -> None:
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from arsup.core.experiment import Status
    from tests.conftest import TOY_TRAIN, edit, git, write_script
    from tests.faults.conftest import assert_invariants, fingerprint

    train = TOY_TRAIN + "print('cwd', os.getcwd())\nprint('gpu', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
    root = make_project(tmp_path / "repo", train=train, project={"env": {MARK: MARK_VALUE}})
    protected = fingerprint(root, ["prepare.py"])
    script = write_script(root, {"hypothesis": "higher LR", "edits": edit("LR = 0.0001", "LR = 0.003")})
    overrides = {"executor": {"kind": "ray", "address": cluster}, "acceptance": {"mode": "greedy"}}
    engine = Engine(config.load(root, overrides), root, ScriptAgent(script), tag="ray")
    engine.prepare()
    engine.run()
    baseline, faster = engine.history
    assert (baseline.status, faster.status) == (Status.KEEP, Status.KEEP)
    assert faster.metric == pytest.approx(1.0 + (0.5229 - 0.5) ** 2, abs=1e-3)  # its own commit's code ran
    log = Path(faster.runs[0].log_path).read_text()
    cwd = next(line.split(" ", 1)[1] for line in log.splitlines() if line.startswith("cwd "))
    assert Path(cwd).resolve() != root.resolve() and not Path(cwd).exists()  # a snapshot, removed after the run
    assert re.search(r"^gpu \d", log, re.MULTILINE)  # one of the cluster's (fake) GPUs
    assert git(root, "rev-parse", "HEAD") == faster.commit
    assert_invariants(root, protected)


GO_DOWN = """\
print("going down", flush=True)
time.sleep(1.0)  # the line streams back to the driver before the host goes (a loaded machine is slow)
next(p for p in psutil.Process().parents() if " ".join(p.cmdline()).startswith("ray::")).kill()
time.sleep(30)
"""
LOSE_ONCE = """\
import os, time, psutil
if not os.path.exists(os.environ["LOSE_ONCE"]):  # the first attempt: its host goes down under it
    open(os.environ["LOSE_ONCE"], "w").close()
""" + textwrap.indent(GO_DOWN, "    ")
LOSE_ALWAYS = "import time, psutil\n" + GO_DOWN  # every attempt's host goes down


@pytest.mark.slow
def test_a_run_whose_node_is_lost_is_run_again(cluster: str, tmp_path: Path) -> None:
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from arsup.core.events import Notice
    from arsup.core.experiment import Status
    from tests.conftest import TOY_TRAIN, write_script
    from tests.faults.conftest import assert_invariants, fingerprint

    marker = tmp_path / "lost-once"
    env = {MARK: MARK_VALUE, "LOSE_ONCE": str(marker)}
    root = make_project(tmp_path / "repo", train=LOSE_ONCE + TOY_TRAIN, project={"env": env})
    protected = fingerprint(root, ["prepare.py"])
    overrides = {"executor": {"kind": "ray", "address": cluster}, "acceptance": {"mode": "greedy"}}
    engine = Engine(config.load(root, overrides), root, ScriptAgent(write_script(root)), tag="lost")
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.text) if isinstance(event, Notice) else None)
    engine.prepare()
    engine.run()
    (baseline,) = engine.history
    assert baseline.status == Status.KEEP and len(baseline.runs) == 1 and baseline.metric == pytest.approx(3.25)
    assert any("node lost: the Ray worker running it died" in text and "running it again" in text for text in notices)
    lost = Path(baseline.runs[0].log_path).with_name("run.log.lost")
    assert "going down" in lost.read_text()
    (attempt,) = [e for e in engine.journal.events() if e["event"] == "run_lost"]  # journaled as an attempt
    assert (attempt["experiment"], attempt["seed"], attempt["log"]) == (baseline.id, 0, str(lost))
    assert attempt["reason"].startswith("node lost: the Ray worker running it died")
    assert_invariants(root, protected)


@pytest.mark.slow
def test_a_baseline_lost_twice_is_blamed_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from arsup.core.events import SessionEnded
    from arsup.core.experiment import Status
    from tests.conftest import TOY_TRAIN, write_script
    from tests.faults.conftest import assert_invariants, fingerprint

    root = make_project(tmp_path / "repo", train=LOSE_ALWAYS + TOY_TRAIN, project={"env": {MARK: MARK_VALUE}})
    protected = fingerprint(root, ["prepare.py"])
    overrides = {"executor": {"kind": "ray", "address": cluster}, "acceptance": {"mode": "greedy"}}
    engine = Engine(config.load(root, overrides), root, ScriptAgent(write_script(root)), tag="twice")
    ended: list[SessionEnded] = []
    engine.subscribe(lambda event: ended.append(event) if isinstance(event, SessionEnded) else None)
    engine.prepare()
    engine.run()
    (baseline,) = engine.history
    assert baseline.status == Status.CRASH and baseline.reason.startswith("node lost: ")
    (end,) = ended
    assert end.error and "lost twice" in end.reason and "check the cluster's nodes" in end.reason, end.reason
    assert "fix the training script" not in end.reason
    assert_invariants(root, protected)


@pytest.mark.slow
def test_two_runs_at_once_on_the_cluster_each_in_its_slot(cluster: str, tmp_path: Path) -> None:
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine
    from tests.conftest import edit, write_script

    train = "import time\nA = 0\nB = 0\ntime.sleep(1.5 if A or B else 0)\nprint('---')\nprint(f'val_bpb: {1 + A + B}')\n"
    root = make_project(tmp_path / "repo", train=train, project={"env": {MARK: MARK_VALUE}})
    script = write_script(
        root, {"hypothesis": "A", "edits": edit("A = 0", "A = 1")}, {"hypothesis": "B", "edits": edit("B = 0", "B = 1")}
    )
    overrides = {"executor": {"kind": "ray", "address": cluster, "runs": 2}, "acceptance": {"mode": "greedy"}}
    engine = Engine(config.load(root, overrides), root, ScriptAgent(script), tag="two")
    engine.prepare()
    engine.run()
    first, second = sorted(engine.history[1:], key=lambda e: e.started_at)
    assert sorted([first.slot, second.slot]) == ["ray0", "ray1"]
    assert second.started_at < first.finished_at, "the two runs did not overlap"
    assert [e.status for e in (first, second)] == ["discard", "discard"]
