"""The loop as a service: how fast events reach an attached client, what attaching costs, what clients cost the loop.

1. Latency: a control server in this process sends 300 events, 10 ms apart,
   each stamped with the monotonic clock (system-wide on Linux); a client in
   another process notes when each arrives. Goal: median under 50 ms.
2. Attach: a real loop whose journal holds 1,000 experiments waits on its
   first question; a fresh process attaches and reads the snapshot (the
   history included) until it is live; then a fresh screen process (headless
   Textual, 120x40) attaches and draws the history. Goal: the first full
   frame under 1 s.
3. Overhead: the same 40-experiment session (a one-line run, a replayed
   agent whose proposals each set a constant of their own) with no client and
   with 3 attached clients reading every event, alternated, 5 pairs; the ratio
   of time per experiment. Goal: under 5 %.

`--smoke`: 30 events, 50 experiments in the journal, one pair of sessions of 8.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, SUM_OF_CONSTANTS, constants, make_repo, median, require, set_constants, smoke, trained

from arsup.core.events import Notice, SessionStarted
from arsup.core.experiment import Experiment, Status
from arsup.core.journal import Journal
from arsup.core.service import ControlServer

PYTHON = sys.executable
CLIENT = f"""
import sys, time
sys.path.insert(0, {str(ROOT / "src")!r})
from pathlib import Path
from arsup.core.service import ControlClient
root, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "attach":
    started = time.monotonic()
    client = ControlClient(root)
    snapshot = client.connect()
    print(f"{{time.monotonic() - started:.4f}} {{len(snapshot[0].history)}}", flush=True)
    client.close()
    raise SystemExit
got = []
def heard(event):
    if mode == "latency" and type(event).__name__ == "Notice" and event.text.startswith("t="):
        got.append(time.monotonic() - float(event.text[2:]))
client = ControlClient(root, heard)
client.connect()
print("ready", flush=True)
client.start()
client.closed.wait()
if mode == "latency":
    print(" ".join(f"{{x * 1000:.3f}}" for x in got), flush=True)
"""


SCREEN = f"""
import sys, time
started = time.monotonic()
sys.path.insert(0, {str(ROOT / "src")!r})
from pathlib import Path
from arsup import config
from arsup.core.service import ControlClient
from arsup.tui.bridge import Bridge
from arsup.tui.launch import screen
root = Path(sys.argv[1])
bridge = Bridge()
client = ControlClient(root, on_event=bridge)
for event in client.connect():
    bridge(event)
app = screen(config.load(root), bridge, client, on_ready=client.start)
def shown():
    if len(app.view.history) >= int(sys.argv[2]) and app.main.query_one("HistoryPane").experiment_tree.root.children:
        app.call_after_refresh(lambda: (print(f"{{time.monotonic() - started:.4f}}", flush=True), app.exit()))
app.call_later(lambda: app.set_interval(0.005, shown))
app.run(headless=True, size=(120, 40))
client.close()
"""


class Quiet:
    """Controls that do nothing: the latency bench only sends events."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: True


def client(root: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-c", CLIENT, str(root), mode], stdout=subprocess.PIPE, text=True)


def latency(events: int) -> None:
    root = make_repo("V = 1\n", "true")
    server = ControlServer(Quiet(), root)  # type: ignore[arg-type]
    server(SessionStarted("bench", "autoresearch/bench", "0" * 40, 0))
    server.start()
    listener = client(root, "latency")
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    for _ in range(events):
        server(Notice(f"t={time.monotonic()}"))
        time.sleep(0.01)
    server.stop()
    out, _ = listener.communicate(timeout=30)
    values = sorted(float(x) for x in out.split())
    require(len(values) == events, f"{len(values)} of {events} events reached the client")
    p95 = values[int(len(values) * 0.95)]
    print(f"event latency to an attached client: median {median(values):.2f} ms, p95 {p95:.2f} ms "
          f"over {len(values)} events (goal: median < 50 ms)")
    shutil.rmtree(root, ignore_errors=True)


def loop(root: Path, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([PYTHON, "-m", "arsup", "run", "--headless", "--tag", "bench", *args], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = root / ".arsup" / "control.sock"
    while not socket.exists():
        time.sleep(0.02)
    return proc


def arsup(root: Path, *args: str) -> None:
    subprocess.run([PYTHON, "-m", "arsup", *args], cwd=root, check=True, capture_output=True)


def attach_time(experiments: int, reads: int, frames_of: int) -> None:
    root = make_repo("V = 1\n", "echo val_bpb: 1.0")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    journal = Journal(root)
    diff = "".join(f"-LR = {i}\n+LR = {i + 1}\n" for i in range(20))
    for number in range(1, experiments + 1):
        experiment = Experiment(
            id=f"{number:04d}", tag="bench", parent=head, commit=head, hypothesis=f"idea {number}: " + "x" * 80,
            agent="tuner", diff=diff, status=Status.KEEP if number == 1 else Status.DISCARD, metric=1.0,
            is_baseline=number == 1,
        )
        journal.record(experiment)
    subprocess.run(["git", "checkout", "-q", "-b", "autoresearch/bench"], cwd=root, check=True)
    proc = loop(root, "--policy", "runs", "--agent", "tuner")
    times = []
    for _ in range(reads):
        attached = client(root, "attach")
        out, _ = attached.communicate(timeout=60)
        seconds, count = out.split()
        require(int(count) == experiments, f"the snapshot held {count} of {experiments} experiments")
        times.append(float(seconds))
    frames = []
    for _ in range(frames_of):
        shown = subprocess.run([PYTHON, "-c", SCREEN, str(root), str(experiments)],
                               capture_output=True, text=True, timeout=120)
        require(shown.returncode == 0 and bool(shown.stdout.split()), f"the screen drew nothing:\n{shown.stderr}")
        frames.append(float(shown.stdout.split()[-1]))
    arsup(root, "stop")
    proc.wait(30)
    print(f"attach to a loop with {count} experiments: snapshot read in {median(times) * 1000:.0f} ms (median of "
          f"{len(times)}); the screen's first full frame, from its process start, in {median(frames) * 1000:.0f} ms "
          f"(median of {len(frames)}; goal < 1 s)")
    shutil.rmtree(root, ignore_errors=True)


def session(clients: int, experiments: int) -> float:
    root = make_repo(constants(experiments - 1), SUM_OF_CONSTANTS)
    proposals = set_constants([(i % 7 - 3) / 100 for i in range(experiments - 1)])  # the baseline counts
    (root / "proposals.jsonl").write_text("".join(json.dumps(p) + "\n" for p in proposals))
    subprocess.run(["git", "add", "proposals.jsonl"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@l", "commit", "-qm", "p"], cwd=root, check=True)
    proc = loop(root, "--policy", "runs", "--agent", "script:proposals.jsonl", "--max-experiments", str(experiments))
    listeners = [client(root, "watch") for _ in range(clients)]
    for listener in listeners:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    arsup(root, "policy", "auto")  # the waiting baseline goes ahead: the session starts now for everyone
    proc.wait(300)
    for listener in listeners:
        listener.wait(30)
    trained(root, "bench", experiments - 1)
    records = [json.loads(line) for line in (root / ".arsup" / "journal.jsonl").read_text().splitlines()]
    done = {r["experiment"]["id"]: r["experiment"] for r in records if r["event"] == "experiment"}
    finished = sorted(e["finished_at"] for e in done.values() if e["status"] in ("keep", "discard", "crash"))
    shutil.rmtree(root, ignore_errors=True)
    return (finished[-1] - finished[0]) / (len(finished) - 1)


def overhead(pairs: int, experiments: int) -> None:
    ratios = []
    for pair in range(pairs):
        order = [0, 3] if pair % 2 == 0 else [3, 0]
        per = {clients: session(clients, experiments) for clients in order}
        ratios.append(per[3] / per[0])
        print(f"pair {pair + 1}: no client {per[0] * 1000:.1f} ms/experiment, "
              f"3 clients {per[3] * 1000:.1f} ms/experiment, ratio {ratios[-1]:.3f}")
    print(f"time per experiment, 3 clients / none: median {median(ratios):.3f} (goal: < 1.05)")


if __name__ == "__main__":
    if smoke(__doc__):
        latency(30)
        attach_time(50, 2, 1)
        overhead(1, 8)
    else:
        latency(300)
        attach_time(1000, 5, 3)
        overhead(5, 40)
