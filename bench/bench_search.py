"""Search measured: the tuner against random search over the same space, and greedy against confirm acceptance.

Each night is a real arsup loop (Engine, git, journal, one process per run)
driven by the offline tuner, N proposals after the baseline. A strategy is a
sampler and an acceptance rule:

    tuner (confirm)   the default agent (compass steps, then TPE) with the default rule
    random (confirm)  the same agent with `sampler="random"`: the same constants,
                      windows, rotation and re-centring, each value drawn
                      uniformly from its window (optuna's RandomSampler)
    tuner (greedy)    the tuner with autoresearch's rule (keep when better, one run)
    random (greedy)   the random sampler with the greedy rule (synthetic only by default)

"Best after N" is the metric of the head of the kept line after the first N
proposals: the best result as the night's own rule judged it (a mean over the
confirmation runs under confirm, one run under greedy). Seed s seeds both the
sampler (`TunerAgent(seed=s)`) and the runs (`[project] seed = s`), so a
night is reproducible; `[slots] queue = 0`, so each proposal sees every
result before it (the tuner proposes in milliseconds; made ahead it would not
see the last result, and which result it saw would depend on timing).

Objectives:

- synthetic: a train.py of nine constants whose loss has a known optimum of
  1.0 (quadratic bowls in log scale, one interaction: the best LR grows with
  the batch size, one constant with no effect) plus N(0, 0.005) noise seeded
  by the run's seed and the constants; runs in milliseconds. The table also
  gives the regret (noise-free loss - 1.0) of the kept configuration.
- spirals, tinylm: the sample projects with a smaller data budget (their
  prepare.py, in the benchmark's copy only: see REDUCED), the size constants
  bounded in [agent.space] (see SPACE), one torch thread per run, and runs
  started by a warm fork server (see WARM_SERVER) so that a run does not pay
  for importing torch and rebuilding the data each time. The sample projects'
  files are not changed.

`--smoke`: one seed, N = 2, synthetic and spirals, the tuner and random search
under confirm (tinylm's reduced copy is made, not run); it fails when a night
trained fewer than N proposals.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from common import make_repo, parser, require

from arsup import config  # noqa: E402
from arsup.core.agents.tuner import TunerAgent  # noqa: E402
from arsup.core.loop import Engine  # noqa: E402
from arsup.core.experiment import Status  # noqa: E402
from arsup.core.vcs import Vcs  # noqa: E402
from arsup.demo import create_demo_repo  # noqa: E402

STRATEGIES = {  # name -> (sampler, acceptance mode)
    "tuner (confirm)": ("tpe", "confirm"),
    "random (confirm)": ("random", "confirm"),
    "tuner (greedy)": ("tpe", "greedy"),
    "random (greedy)": ("random", "greedy"),
}

# The sample projects' budgets as the benchmark runs them: (file, original line, line in the benchmark's copy).
REDUCED = {
    "spirals": [("prepare.py", "SAMPLE_BUDGET = 300_000", "SAMPLE_BUDGET = 60_000")],
    "tinylm": [
        ("prepare.py", "TOKEN_BUDGET = 700_000", "TOKEN_BUDGET = 20_000"),
        ("prepare.py", "EVAL_BYTES = 32768", "EVAL_BYTES = 8192"),
    ],
}
# [agent.space] for the samples: the size constants bounded (or left out) so that no run costs more than a
# few times the baseline's. Their default windows reach 16x the width (HIDDEN 1024: a 60 s run, not 0.3 s).
SPACE = {
    "spirals": {"HIDDEN": [16, 128], "N_LAYERS": [1, 6], "BATCH_SIZE": [16, 256]},
    "tinylm": {"N_EMBD": [], "N_LAYER": [1, 4], "BATCH_SIZE": [8, 128]},
}
TIME_CAP_S = 60  # [project] time_budget for the samples: a wall-clock cap that a reduced run never nears

SYNTHETIC_PREPARE = '''"""The objective: a known optimum of 1.0, seeded noise. Read-only."""
import math
import os
import random

SIGMA = 0.005
ACTIVATIONS = {"relu": 0.05, "gelu": 0.01, "silu": 0.0, "tanh": 0.2}


def regret(c):
    """Noise-free loss above the optimum (0 at LR 0.006 x sqrt(BATCH_SIZE / 16), WARMUP_STEPS 30, ...)."""
    best_lr = 0.006 * math.sqrt(c["BATCH_SIZE"] / 16)
    return (
        1.0 * math.log10(c["LR"] / best_lr) ** 2
        + 0.2 * math.log10(c["WARMUP_STEPS"] / 30) ** 2
        + 0.1 * math.log10(c["WEIGHT_DECAY"] / 0.1) ** 2
        + 0.2 * math.log10((1 - c["BETA2"]) / 0.005) ** 2
        + 0.05 * math.log2(c["BATCH_SIZE"] / 16) ** 2
        + 0.3 * math.log10(c["DROPOUT"] / 0.05) ** 2
        + 0.1 * math.log2(c["N_LAYER"] / 6) ** 2
        + ACTIVATIONS[c["ACTIVATION"]]
    )


def report(c):
    seed = os.environ.get("ARSUP_SEED", "0")
    noise = random.Random(f"{seed}|{sorted(c.items())}").gauss(0, SIGMA)
    r = regret(c)
    print("---")
    print(f"val_loss: {1.0 + r + noise:.6f}")
    print(f"regret: {r:.6f}")
'''

SYNTHETIC_TRAIN = '''"""A synthetic training script: the constants below are the hyperparameters."""
import sys

sys.dont_write_bytecode = True
from prepare import report  # noqa: E402

LR = 0.001
WARMUP_STEPS = 200
WEIGHT_DECAY = 0.01
BETA2 = 0.95
BATCH_SIZE = 64
DROPOUT = 0.2
N_LAYER = 4
GRAD_CLIP = 1.0  # no effect on the loss
ACTIVATION = "relu"

report({k: v for k, v in dict(globals()).items() if k.isupper()})
'''

# A fork server: imports torch and the project's prepare.py once; each run is a fork that executes the
# run's own train.py in the run's directory, with the run's environment and the run's stdout/stderr (passed
# over the socket), and reports its exit status. The client is the run command the engine starts.
WARM_SERVER = r'''
import hashlib, json, os, runpy, select, signal, socket, struct, sys, threading, traceback
sys.dont_write_bytecode = True
path, project = sys.argv[1], sys.argv[2]
parent = os.getppid()
os.chdir(project)
sys.path.insert(0, project)
import torch
torch.set_num_threads(1)
import prepare  # noqa: F401


def warm_up():
    """One tiny step through the layers the samples use: the first optimizer step imports torch._dynamo."""
    import torch.nn as nn
    import torch.nn.functional as F
    emb, norm, lin = nn.Embedding(4, 8), nn.LayerNorm(8), nn.Linear(8, 4)
    params = [*emb.parameters(), *norm.parameters(), *lin.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    x = norm(emb(torch.zeros(1, 2, dtype=torch.long)))
    q = x.view(1, 2, 2, 4).transpose(1, 2)
    x = F.scaled_dot_product_attention(q, q, q, is_causal=True).transpose(1, 2).reshape(1, 2, 8)
    x = sum(f(x) for f in (nn.GELU(), nn.ReLU(), nn.SiLU(), nn.Tanh()))
    loss = F.cross_entropy(lin(nn.Dropout(0.1)(x)).reshape(-1, 4), torch.zeros(2, dtype=torch.long))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        lin(x).argmax(dim=-1)


warm_up()
digest = hashlib.sha256(open("prepare.py", "rb").read()).hexdigest()
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
server.bind(path)
server.listen(64)
print("ready", flush=True)


def child(conn, request, fds):
    server.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    here = os.path.join(request["cwd"], "prepare.py")
    if not os.path.isfile(here) or hashlib.sha256(open(here, "rb").read()).hexdigest() != digest:
        sys.modules.pop("prepare", None)  # another prepare.py: import the run's own
    sys.path[0] = request["cwd"]
    sys.argv = request["argv"]
    sys.stdout.reconfigure(line_buffering=True)

    def watch():  # the client was killed: so is the run
        try:
            conn.recv(1)
        finally:
            os._exit(137)

    threading.Thread(target=watch, daemon=True).start()
    code = 0
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(struct.pack("i", code))
    os._exit(0)


while os.getppid() == parent:  # the benchmark gone (killed): so is the server
    if not select.select([server], [], [], 1.0)[0]:
        continue
    conn, _ = server.accept()
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if os.fork() == 0:
        child(conn, json.loads(message), fds)
    conn.close()
    for fd in fds:
        os.close(fd)
'''
WARM_CLIENT = r'''
import json, os, socket, struct, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
conn.connect(os.environ["BENCH_WARM_SOCKET"])
request = {"cwd": os.getcwd(), "env": dict(os.environ), "argv": sys.argv[1:]}
socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
answer = conn.recv(4)
sys.exit(struct.unpack("i", answer)[0] if len(answer) == 4 else 1)
'''


@dataclass
class Night:
    objective: str
    strategy: str
    seed: int
    best: list[float]  # the kept line's metric after 0 (the baseline), 1, ..., N proposals
    regret: list[float]  # the same for the synthetic objective's noise-free regret; empty otherwise
    runs: int
    wall_s: float
    proposals: int  # trained after the baseline: fewer than N when the night ended early


def synthetic_repo() -> Path:
    root = make_repo(SYNTHETIC_TRAIN, "{python} train.py")
    (root / "prepare.py").write_text(SYNTHETIC_PREPARE)
    data = config.detect(root)
    data["project"].update({"run": "{python} train.py", "protected": ["prepare.py"], "time_budget": 60, "timeout": 120})
    data["metric"] = {"name": "val_loss", "goal": "minimize", "record": ["regret"]}
    (root / "arsup.toml").write_text(config.to_toml(data))
    commit(root, ["prepare.py", "arsup.toml"], "the synthetic objective")
    return root


def commit(root: Path, files: list[str], message: str) -> None:
    vcs = Vcs(root)
    try:
        vcs.commit(files, message)
    finally:
        vcs.close()


def sample_repo(name: str, where: Path) -> Path:
    """A fresh copy of a sample project with the benchmark's smaller budget committed in it."""
    root = create_demo_repo(name, where)
    for file, old, new in REDUCED[name]:
        text = (root / file).read_text()
        if old not in text:
            raise SystemExit(f"sample_projects/{name}/{file} no longer has `{old}`; update REDUCED")
        (root / file).write_text(text.replace(old, new))
    commit(root, sorted({file for file, _, _ in REDUCED[name]}), "bench_search: a smaller budget")
    return root


def night(objective: str, strategy: str, seed: int, n: int, socket_path: str, client: str) -> Night:
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix=f"arsup-search-{objective}-"))
    root = synthetic_repo() if objective == "synthetic" else sample_repo(objective, scratch / "repo")
    sampler, mode = STRATEGIES[strategy]
    project: dict = {"seed": seed}
    if objective != "synthetic":
        project.update({"run": f"{{python}} -I -S {client} train.py", "env": {"BENCH_WARM_SOCKET": socket_path},
                        "time_budget": TIME_CAP_S, "timeout": 4 * TIME_CAP_S})
    overrides = {
        # The fork server, not the run command, runs train.py, outside any sandbox; a bubblewrap sandbox
        # (the default where it works) would only hide the client and the socket in its private /tmp.
        "sandbox": {"kind": "none" if objective != "synthetic" else "auto"},
        "project": project,
        "acceptance": {"mode": mode},
        "slots": {"queue": 0},
        "budget": {"max_experiments": n + 1},  # the baseline counts
        "agent": {"kind": "tuner", "space": SPACE.get(objective, {})},
    }
    cfg = config.load(root, overrides)
    agent = TunerAgent(space=cfg.agent.space, seed=seed, sampler=sampler)
    engine = Engine(cfg, root, agent, tag=f"s{seed}")
    engine.prepare()
    try:
        engine.run()
    finally:
        engine.close()
    history = list(engine.history)
    best: list[float] = []
    regret: list[float] = []
    head = None
    for experiment in history:
        if experiment.status == Status.KEEP and experiment.metric is not None:
            head = experiment
        if head is None:
            continue
        best.append(head.metric)
        if objective == "synthetic":
            regret.append(head.runs[0].metrics["regret"])
    if not best:  # raised, not require(): this runs in a worker of the pool, whose result() raises it again
        said = history[0].reason if history else "no experiment recorded"
        raise RuntimeError(f"{objective} {strategy} seed {seed}: the baseline was not kept: {said}")
    if len(best) < n + 1:  # the agent ran out of ideas: the best stays
        best += [best[-1]] * (n + 1 - len(best))
        regret += [regret[-1]] * (n + 1 - len(regret)) if regret else []
    runs = sum(len(e.runs) for e in history)
    shutil.rmtree(scratch, ignore_errors=True)
    if objective == "synthetic":
        shutil.rmtree(root, ignore_errors=True)
    proposals = sum(e.status in Status.TRAINED and not e.is_baseline for e in history)
    return Night(objective, strategy, seed, best[: n + 1], regret[: n + 1], runs, time.time() - started, proposals)


def start_server(name: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    template = sample_repo(name, workdir / f"{name}-template")
    script = workdir / "warm_server.py"
    script.write_text(WARM_SERVER)
    socket_path = str(workdir / f"{name}.sock")
    env = {**os.environ, "ARSUP_TIME_BUDGET": str(TIME_CAP_S), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, str(script), socket_path, str(template)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise SystemExit(f"the warm server for {name} did not start")
    return server, socket_path


def fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) >= 0.1 or value == 0 else f"{value:.2e}"


def table(nights: list[Night], checkpoints: list[int], goal_of: dict[str, str]) -> list[str]:
    lines = []
    objectives = list(dict.fromkeys(n.objective for n in nights))
    head = f"{'objective':10} {'strategy':17}" + "".join(f" {'best@' + str(c):>10}" for c in checkpoints)
    head += "".join(f" {'regret@' + str(c):>10}" for c in checkpoints) + f" {'runs':>6} {'min/night':>9}"
    lines.append(head)
    for objective in objectives:
        for strategy in STRATEGIES:
            group = [n for n in nights if n.objective == objective and n.strategy == strategy]
            if not group:
                continue
            row = f"{objective:10} {strategy:17}"
            row += "".join(f" {fmt(statistics.median(n.best[c] for n in group)):>10}" for c in checkpoints)
            if objective == "synthetic":
                row += "".join(f" {fmt(statistics.median(n.regret[c] for n in group)):>10}" for c in checkpoints)
            else:
                row += "".join(f" {'':>10}" for _ in checkpoints)
            minutes = statistics.fmean(n.wall_s for n in group) / 60
            row += f" {statistics.median(n.runs for n in group):>6.0f} {minutes:>9.2f}"
            lines.append(row)
    lines.append("")
    for objective in objectives:
        sign = -1 if goal_of[objective] == "minimize" else 1
        for mode in ("confirm", "greedy"):
            tuner = {n.seed: n for n in nights if n.objective == objective and n.strategy == f"tuner ({mode})"}
            rand = {n.seed: n for n in nights if n.objective == objective and n.strategy == f"random ({mode})"}
            seeds = sorted(set(tuner) & set(rand))
            if not seeds:
                continue
            parts = []
            for c in checkpoints:
                wins = sum(sign * (tuner[s].best[c] - rand[s].best[c]) > 0 for s in seeds)
                ties = sum(tuner[s].best[c] == rand[s].best[c] for s in seeds)
                parts.append(f"N={c}: {wins} of {len(seeds)}" + (f" ({ties} tied)" if ties else ""))
            lines.append(f"{objective}, {mode}: tuner beats random in " + "; ".join(parts) + " seeds")
    return lines


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--quick", action="store_true", help="3 seeds, N = 20, the synthetic objective and spirals")
    arguments.add_argument("--seeds", type=int, help="seeds per strategy (default 5, quick 3, smoke 1)")
    arguments.add_argument("--n", type=int, help="proposals per night (default 50, quick 20, smoke 2)")
    arguments.add_argument("--objectives", help="comma-separated: synthetic,spirals,tinylm")
    arguments.add_argument("--strategies",
                           help="indexes into STRATEGIES, e.g. 0,1 (default: 0,1,2; all 4 for synthetic; smoke 0,1)")
    arguments.add_argument("--jobs", type=int, default=2, help="nights at once (default 2)")
    args = arguments.parse_args()
    seeds = args.seeds or (1 if args.smoke else 3 if args.quick else 5)
    n = args.n or (2 if args.smoke else 20 if args.quick else 50)
    quick = args.quick or args.smoke
    objectives = (args.objectives or ("synthetic,spirals" if quick else "synthetic,spirals,tinylm")).split(",")
    names = list(STRATEGIES)
    chosen = [names[int(i)] for i in args.strategies.split(",")] if args.strategies else None
    chosen = chosen or (names[:2] if args.smoke else None)

    def strategies(objective: str) -> list[str]:
        # random (greedy) only where runs cost milliseconds, unless asked for
        return chosen or (names if objective == "synthetic" else names[:3])

    checkpoints = [c for c in (20, 50) if c <= n] or [n]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers and the pool are cleaned up
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="arsup-search-"))
    client = workdir / "warm_client.py"
    client.write_text(WARM_CLIENT)
    servers = {}
    try:
        for name in objectives:
            if name != "synthetic":
                servers[name] = start_server(name, workdir)
        for name in set(REDUCED) - set(objectives) if args.smoke else []:
            sample_repo(name, workdir / f"{name}-unused")  # that its REDUCED lines still apply
        # The slowest nights first, so the pool ends together.
        order = sorted(objectives, key=lambda o: ["tinylm", "spirals", "synthetic"].index(o))
        tasks = [(o, s, seed) for o in order for seed in range(seeds) for s in strategies(o)]
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(night, o, s, seed, n, servers[o][1] if o in servers else "", str(client))
                for o, s, seed in tasks
            ]
            nights = []
            for future in futures:
                result = future.result()
                nights.append(result)
                require(not args.smoke or result.proposals == n, f"{result.objective} {result.strategy} seed "
                        f"{result.seed}: {result.proposals} of {n} proposals trained")
                path = " -> ".join(fmt(result.best[c]) for c in [0, *checkpoints])
                print(f"  {result.objective:9} {result.strategy:17} seed {result.seed}: best {path} "
                      f"(after 0, {', '.join(map(str, checkpoints))}), {result.runs} runs, {result.wall_s:.0f} s",
                      flush=True)
    finally:
        for server, _ in servers.values():
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    goal_of = {"synthetic": "minimize", "spirals": "maximize", "tinylm": "minimize"}
    print()
    print("\n".join(table(nights, checkpoints, goal_of)))
    print(f"\n{len(nights)} nights of {n} proposals, {seeds} seeds each, in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
