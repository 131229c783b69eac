"""The command line as a person uses it: real subprocesses, real repos, exit codes and messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from arsup import __version__, config
from tests.conftest import TOY_TRAIN, git, make_project

ARSUP = [sys.executable, "-m", "arsup"]


def arsup(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ARSUP, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_version(tmp_path: Path) -> None:
    assert arsup("--version", cwd=tmp_path).stdout.strip() == f"arsup {__version__}"


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom arsup import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'optuna', 'torch', 'litellm', 'textual', 'git', 'pydantic'} & set(sys.modules)\n"
        "print('HEAVY', sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_init_detects_autoresearch_layout(tmp_path: Path) -> None:
    for name in ("program.md", "train.py", "prepare.py", "pyproject.toml", "uv.lock"):
        (tmp_path / name).write_text("")
    result = arsup("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = config.load(tmp_path)
    assert cfg.project.run == "uv run train.py"
    assert (cfg.project.editable, cfg.project.protected) == (["train.py"], ["prepare.py"])
    assert (cfg.project.time_budget, cfg.project.timeout) == (300, 600)
    assert (cfg.metric.name, cfg.metric.goal) == ("val_bpb", "minimize")
    again = arsup("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_overrides(tmp_path: Path) -> None:
    (tmp_path / "program.md").write_text("")
    (tmp_path / "fit.py").write_text("")
    result = arsup(
        "init", "--metric", "val_accuracy", "--goal", "maximize", "--run", "{python} fit.py",
        "--editable", "fit.py", "--time-budget", "900", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    cfg = config.load(tmp_path)
    assert (cfg.metric.name, cfg.metric.goal, cfg.project.editable) == ("val_accuracy", "maximize", ["fit.py"])
    assert cfg.project.time_budget == 900 and cfg.project.timeout >= 900 and cfg.project.protected == []


def test_bad_config_exits_2_with_one_clear_message(project: Path) -> None:
    text = (project / "arsup.toml").read_text().replace('goal = "minimize"', 'goal = "lower"')
    (project / "arsup.toml").write_text(text)
    result = arsup("run", "--headless", cwd=project)
    assert result.returncode == 2
    assert "[metric] goal" in result.stderr and "Traceback" not in result.stderr


def test_not_a_git_repo_exits_2(tmp_path: Path) -> None:
    make_project(tmp_path / "repo")
    subprocess.run(["rm", "-rf", str(tmp_path / "repo" / ".git")], check=True)
    result = arsup("run", "--headless", cwd=tmp_path / "repo")
    assert result.returncode == 2 and "not a git repository" in result.stderr


def _script(root: Path, *entries: dict) -> str:
    path = root / "proposals.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    git(root, "add", "proposals.jsonl")
    git(root, "commit", "-qm", "proposals")
    return "script:proposals.jsonl"


def test_run_headless_prints_a_line_per_experiment(project: Path) -> None:
    agent = _script(project, {"hypothesis": "raise LR", "files": {"train.py": TOY_TRAIN.replace("0.0001", "0.003")}})
    result = arsup("run", "--headless", "--agent", agent, "--tag", "cli", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "arsup: branch autoresearch/cli at " in result.stdout
    lines = [line for line in result.stdout.splitlines() if line[:4].isdigit()]
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["0001", "keep", "val_bpb"] and lines[0].endswith("baseline")
    assert lines[1].split()[1] == "keep" and lines[1].endswith("raise LR  (p 0, 3 runs)")
    assert "results in" in result.stdout and "journal.jsonl" in result.stdout
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "autoresearch/cli"


def test_ctrl_c_stops_cleanly(project: Path) -> None:
    slow = TOY_TRAIN + "import time\nprint('training', flush=True)\ntime.sleep(60)\n"
    agent = _script(project, {"hypothesis": "slow", "files": {"train.py": slow}})
    proc = subprocess.Popen(
        [*ARSUP, "run", "--headless", "--agent", agent, "--tag", "cc"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log = project / ".arsup" / "runs" / "0002" / "run.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and "training" in log.read_text()):
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    rows = (project / "results.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[3] for r in rows] == ["keep", "crash"]
    journal = [json.loads(line) for line in (project / ".arsup" / "journal.jsonl").read_text().splitlines()]
    finals = {e["experiment"]["id"]: e["experiment"]["status"] for e in journal if e["event"] == "experiment"}
    assert finals == {"0001": "keep", "0002": "crash"}
    assert git(project, "status", "--porcelain") == ""


def test_demo_headless_trains_tinylm(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [*ARSUP, "demo", "--headless", "--dir", str(target), "--max-experiments", "3", "--time-budget", "1"],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = (target / "results.tsv").read_text().splitlines()
    assert rows[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription" and len(rows) == 4
    assert all(float(r.split("\t")[1]) > 0 for r in rows[1:] if r.split("\t")[3] != "crash")
    assert f"results in {target.resolve() / 'results.tsv'}" in result.stdout


def test_demo_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine")
    result = arsup("demo", "--headless", "--dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "x").read_text() == "mine"


def test_llm_agent_trains_what_a_local_server_sends(tmp_path: Path) -> None:
    from tests.openai_server import OpenAIServer, reply

    edit = (
        "NOTEBOOK:\n- the learning rate looks low\nHYPOTHESIS: a 6x higher learning rate fits more in the budget\n\n"
        "train.py\n```python\n<<<<<<< SEARCH\nLR = 0.0005  # peak AdamW learning rate\n=======\n"
        "LR = 0.003  # peak AdamW learning rate\n>>>>>>> REPLACE\n```\n"
    )
    target = tmp_path / "demo"
    with OpenAIServer() as server:
        server.push(reply(edit))
        result = subprocess.run(
            [*ARSUP, "demo", "--headless", "--dir", str(target), "--agent", "llm", "--model", "openai/local-coder",
             "--api-base", server.base_url, "--max-experiments", "2", "--time-budget", "1"],
            capture_output=True, text=True, timeout=240, env={**os.environ, "OPENAI_API_KEY": ""},
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a 6x higher learning rate" in result.stdout
    assert "LLM spend 1 calls" in result.stdout
    statuses = [row.split("\t")[3] for row in (target / "results.tsv").read_text().splitlines()[1:]]
    assert len(statuses) == 2 and statuses[1] in ("keep", "discard")
    log = git(target, "log", "--all", "--format=%s")
    assert "a 6x higher learning rate" in log


def test_verify_and_ablate_from_the_command_line(tmp_path: Path) -> None:
    from tests.core.test_checks import ADDITIVE

    root = make_project(tmp_path / "repo", train=ADDITIVE)
    agent = _script(root, {"hypothesis": "turn on A", "files": {"train.py": ADDITIVE.replace("A = 0", "A = 1")}})
    assert arsup("run", "--headless", "--agent", agent, "--tag", "t", cwd=root).returncode == 0
    verified = arsup("verify", "--seeds", "2", cwd=root)
    assert verified.returncode == 0, verified.stderr
    assert "gain over the baseline: +0.100000" in verified.stdout
    ablated = arsup("ablate", "--seeds", "2", cwd=root)
    assert ablated.returncode == 0 and "0002  turn on A" in ablated.stdout
    bad = arsup("verify", "nope", cwd=root)
    assert bad.returncode == 2 and "'nope' is not a commit" in bad.stderr and "Traceback" not in bad.stderr
