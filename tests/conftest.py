"""Shared fixtures: real git repositories holding small real projects in temp folders."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from arsup import config

pytest_plugins = [
    "tests.fast_tier",  # the fast tier's guard: a test that starts a process is marked slow
    "tests.agent_clis",  # claude_cli, codex_cli: the real agent CLIs, offline (skipped where not installed)
]

# A training script that is a pure function of its constants: fast, deterministic,
# and its optimum (LR = 10**-2.5) is known, so decisions can be checked exactly.
TOY_TRAIN = textwrap.dedent(
    """\
    import math
    import os

    LR = 0.0001
    WIDTH = 64

    loss = (math.log10(LR) + 2.5) ** 2 + 1.0 + 0.001 * abs(WIDTH - 64)
    print(f"seed {os.environ.get('ARSUP_SEED')}")
    print("---")
    print(f"val_bpb:          {loss:.6f}")
    print("peak_vram_mb:     2048.0")
    print("training_seconds: 0.1")
    """
)


# The sandbox test projects run under: "none", or "bwrap" to run the fault corpus again inside bubblewrap
# (CI does both: see .ci/run). A test that needs one kind names it in its project's [sandbox] section.
SANDBOX = os.environ.get("ARSUP_TEST_SANDBOX", "none")


def _bwrap_problem() -> str:
    from arsup.core import sandbox

    return sandbox.problem_with()


needs_bwrap = pytest.mark.skipif(bool(_bwrap_problem()), reason=f"bubblewrap cannot run here: {_bwrap_problem()}")


def blocked_bwrap(folder: Path) -> Path:
    """A folder holding a bwrap that fails as Ubuntu's AppArmor makes the real one fail (put it first on PATH):
    the machine, not the unit under test."""
    folder.mkdir()
    tool = folder / "bwrap"
    tool.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    tool.chmod(0o755)
    return folder


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's git config; they get a known identity."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def make_project(root: Path, train: str = TOY_TRAIN, **sections: dict) -> Path:
    """A committed research repo laid out like autoresearch, with an arsup.toml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "program.md").write_text("Minimise val_bpb by editing train.py.\n")
    (root / "train.py").write_text(train)
    (root / "prepare.py").write_text("DATA = 'fixed'\n")
    data = {
        "project": {
            "instructions": "program.md",
            "editable": ["train.py"],
            "protected": ["prepare.py"],
            "run": "{python} train.py",
            "time_budget": 5,
            "timeout": 30,
            "kill_grace": 0.5,
        },
        "metric": {"name": "val_bpb", "goal": "minimize", "record": ["peak_vram_mb", "training_seconds"]},
        "sandbox": {"kind": SANDBOX},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    (root / config.CONFIG_NAME).write_text(config.to_toml(data))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


def edit(search: str, replace: str, path: str = "train.py") -> str:
    """One SEARCH/REPLACE block, as a model writes it."""
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def write_script(root: Path, *entries: dict[str, Any]) -> Path:
    """Proposals for the script agent, beside (not inside) the repo."""
    path = root.parent / "proposals.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def make_engine(
    root: Path, script: Path, tag: str = "t1", max_experiments: int = 0, **overrides: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """A prepared engine replaying `script`, and the list its events go to."""
    from arsup.core.agents.script import ScriptAgent
    from arsup.core.loop import Engine

    cfg = config.load(root, {"budget": {"max_experiments": max_experiments}, **overrides})
    engine = Engine(cfg, root, ScriptAgent(script), tag=tag)
    events: list[Any] = []
    engine.subscribe(events.append)
    engine.prepare()
    return engine, events


def results_rows(root: Path) -> list[list[str]]:
    return [line.split("\t") for line in (root / "results.tsv").read_text().splitlines()[1:]]


def marked_processes(name: str, value: str) -> list[Any]:
    """Live processes whose environment holds `name=value`, wherever they are in the process tree
    (a test marks its runs so that any it left alive is found, escaped or not)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(name) == value:
                found.append(proc)
        except psutil.Error:
            continue
    return found


class RayHead:
    """A local Ray head node (no dashboard) on a free port and its own temp folder, to start, kill and start again.

    `kill` ends only this head's processes (they name its temp folder) and the workers they started:
    `ray stop --force` would end every Ray cluster of the machine, other tests' too.
    """

    def __init__(self, cpus: int = 1, gpus: int = 1, env: dict[str, str] | None = None) -> None:
        import socket
        import sys
        import tempfile

        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.command = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={self.port}"]
        self.command += [f"--num-cpus={cpus}", f"--num-gpus={gpus}", "--include-dashboard=false"]
        self.command += ["--disable-usage-stats", f"--temp-dir={self.temp}"]

    def start(self) -> None:
        subprocess.run(self.command, env=self.env, check=True, capture_output=True, timeout=120)

    def kill(self) -> None:
        """SIGKILL to the head's processes and the workers and agents they started, as `ray stop --force`
        does: Ray's processes, not what runs under them (a task's own children die with their worker)."""
        import psutil

        own = [p for p in psutil.process_iter(["cmdline"]) if self.temp in " ".join(p.info["cmdline"] or [])]
        victims = set(own)
        for proc in own:
            try:
                victims.update(proc.children())
            except psutil.NoSuchProcess:
                continue
        for proc in victims:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(list(victims), timeout=10)

    def close(self) -> None:
        import shutil

        self.kill()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 30 MB tmpfs to fill, unmounted at the end; skipped where this user may not mount one (not root)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(where)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("a full disk needs a small tmpfs, and this machine has no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a small tmpfs; this user cannot mount one: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)  # busy: detach now, freed later


def fill(disk: Path) -> Path:
    """Fill `disk` to its last byte with one file beside the project (another program's), and return it."""
    filler = disk / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return filler
