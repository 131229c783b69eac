"""Cost of a run sent to a Ray cluster, beside the same run as a local process.

A local one-node cluster (``ray start --head``, one fake GPU) is started for
the benchmark and stopped after it. The same trivial command (print the
metric) runs N times through each executor, alternated, after one warm-up
run each (the first Ray run connects the driver and starts a worker). What
is timed is what the engine waits for: from ``start()`` to ``wait()``
returning, the snapshot's unpacking and the log included. `--smoke`: 2 runs
each. Ray is no optional part here: the test extra installs it, so a missing
Ray fails the benchmark, smoke or not.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import make_repo, median, smoke  # first: it puts src/ on sys.path

from arsup.core import runner
from arsup.core.executors.ray_cluster import RayRun

N = 10  # --smoke: 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(job: runner.Run | RayRun) -> float:
    started = time.monotonic()
    job.start()
    outcome = job.wait()
    assert outcome.exit_code == 0, outcome
    return time.monotonic() - started


def main() -> None:
    n = 2 if smoke(__doc__) else N
    root = make_repo("V = 1.0\n", "true")
    snapshot = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=root, check=True, capture_output=True).stdout
    command = f"{shlex.quote(sys.executable)} -c 'print(\"val_bpb: 1.0\")'"
    env = runner.build_env(os.environ)
    logs = Path(tempfile.mkdtemp(prefix="arsup-bench-logs-"))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray_cli = str(Path(sys.executable).with_name("ray"))
    ray_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    port = free_port()
    start = [ray_cli, "start", "--head", "--num-cpus=2", "--num-gpus=1", f"--port={port}", "--include-dashboard=false"]
    subprocess.run([*start, "--disable-usage-stats", f"--temp-dir={temp}"], env=ray_env, check=True, capture_output=True)
    try:
        address = f"127.0.0.1:{port}"

        def spec(i: int, kind: str) -> runner.RunSpec:
            return runner.RunSpec(command, root, logs / f"{kind}-{i}.log", env, timeout=60)

        started = time.monotonic()
        timed(RayRun(spec(-1, "ray"), None, address=address, snapshot=snapshot))
        first_ray = time.monotonic() - started
        timed(runner.Run(spec(-1, "local")))
        local_s, ray_s = [], []
        for i in range(n):
            pair = [("local", local_s), ("ray", ray_s)]
            for kind, times in pair if i % 2 == 0 else reversed(pair):
                job = runner.Run(spec(i, kind)) if kind == "local" else RayRun(spec(i, kind), None, address=address, snapshot=snapshot)
                times.append(timed(job))
        assert all("val_bpb: 1.0" in path.read_text() for path in logs.iterdir())
        assert len(local_s) == len(ray_s) == n
    finally:
        import ray

        ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], env=ray_env, check=False, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    local, remote = median(local_s) * 1000, median(ray_s) * 1000
    print(f"first Ray run (connect + worker start): {first_ray * 1000:.0f} ms")
    print(f"local executor: median {local:.1f} ms per run ({n} runs)")
    print(f"ray executor:   median {remote:.1f} ms per run ({n} runs)")
    print(f"ray / local: {remote / local:.2f}; ray - local: {remote - local:.1f} ms per run")


if __name__ == "__main__":
    main()
