"""The command line as a person uses it: real subprocesses, real repos, exit codes and messages."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from arsup import __version__, cli, config
from arsup.core import journal
from arsup.core.experiment import Experiment
from tests.conftest import TOY_TRAIN, git, make_project

ARSUP = [sys.executable, "-m", "arsup"]


def arsup(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ARSUP, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_version(tmp_path: Path) -> None:
    assert arsup("--version", cwd=tmp_path).stdout.strip() == f"arsup {__version__}"


@pytest.mark.slow
def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom arsup import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'optuna', 'torch', 'litellm', 'textual', 'git', 'pydantic'} & set(sys.modules)\n"
        "print('HEAVY', sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def _parsers(parser: argparse.ArgumentParser, name: str = "arsup") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and every command's, as `arsup --help` and `arsup COMMAND --help` show them."""
    yield name, parser
    for action in parser._actions:  # noqa: SLF001: argparse keeps its options there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for command, sub in action.choices.items():
                yield from _parsers(sub, command)


def test_every_command_has_a_one_line_description_and_every_option_says_its_values() -> None:
    seen = set()
    for name, parser in _parsers(cli.build_parser()):
        seen.add(name)
        assert parser.description and "\n" not in parser.description, f"arsup {name} --help has no description"
        assert name == "arsup" or len(parser.description) <= 100, f"arsup {name}: one line, as the command list"
        for action in parser._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:  # noqa: SLF001
                continue
            assert action.help, f"arsup {name} {action.option_strings or action.dest} has no help"
            for choice in action.choices or ():
                assert str(choice) in action.help, f"arsup {name} {action.dest}: {choice!r} not in {action.help!r}"
            if action.dest == "agent":
                assert all(kind in action.help for kind in config.AGENT_KINDS), f"arsup {name} --agent"
    assert {"init", "demo", "policy", "export", "stop"} <= seen


@pytest.mark.slow
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


@pytest.mark.slow
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


VAL_LOSS_TRAIN = TOY_TRAIN.replace('print(f"val_bpb:          {loss:.6f}")', 'print(f"val_loss: {loss:.4f}")')


@pytest.mark.slow
def test_init_writes_the_metric_the_training_prints_and_the_baseline_measures_it(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=VAL_LOSS_TRAIN)
    (root / "arsup.toml").unlink()
    result = arsup("init", cwd=root)
    assert result.returncode == 0, result.stderr
    assert (config.load(root).metric.name, config.load(root).metric.goal) == ("val_loss", "minimize")
    line = VAL_LOSS_TRAIN.splitlines().index('print(f"val_loss: {loss:.4f}")') + 1
    assert f"arsup: metric val_loss (minimize): train.py line {line} prints `val_loss: ...`; change it with " \
           "`arsup init --force --metric NAME --goal minimize|maximize`" in result.stdout
    night = arsup("run", "--headless", "--max-experiments", "1", "--tag", "t", cwd=root)
    assert night.returncode == 0, night.stdout + night.stderr
    assert journal.Journal(root).experiments("t")[0].metric == 3.25  # LR 1e-4: (log10(LR) + 2.5)^2 + 1
    accuracy = arsup("init", "--force", "--metric", "val_accuracy", cwd=root)  # the goal from the name given
    assert config.load(root).metric.goal == "maximize" and "metric val_accuracy (maximize)" in accuracy.stdout


@pytest.mark.slow
def test_a_baseline_without_the_metric_line_names_the_lines_its_log_has(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", train=VAL_LOSS_TRAIN)  # arsup.toml says val_bpb
    night = arsup("run", "--headless", "--tag", "t", cwd=root)
    said = night.stdout + night.stderr
    assert night.returncode != 0 and "Traceback" not in said
    assert "the baseline measured nothing: no `val_bpb:` line; the log has `val_loss:` (set `[metric] name`). " \
           "Set it in arsup.toml" in said
    assert "fix the training script" not in said
    toml = root / "arsup.toml"  # as told: the name set, the night started again
    toml.write_text(toml.read_text().replace('name = "val_bpb"', 'name = "val_loss"'))
    again = arsup("run", "--headless", "--tag", "t", "--max-experiments", "2", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    report = arsup("report", "--tag", "t", cwd=root)
    assert report.returncode == 0, report.stderr
    assert "3 experiments, 0 kept, 0 crashed, and 1 baseline attempt that crashed" in report.stdout
    assert "the baseline crashed 1 time before it was measured (0001)" in \
        (root / ".arsup" / "reports" / "t" / "report.md").read_text()


@pytest.mark.slow  # the CLI imports GitPython, which asks `git version`
def test_init_writes_the_agent_it_is_given_before_or_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "program.md").write_text("")
    (tmp_path / "train.py").write_text("")
    assert cli.main(["init", "--dir", str(tmp_path), "--agent", "codex", "--model", "gpt-5-codex"]) == 0
    assert (config.load(tmp_path).agent.kind, config.load(tmp_path).agent.model) == ("codex", "gpt-5-codex")
    assert cli.main(["--agent", "claude-code", "init", "--dir", str(tmp_path), "--force"]) == 0
    assert config.load(tmp_path).agent.kind == "claude-code"
    assert cli.main(["init", "--dir", str(tmp_path), "--force", "--agent", "bogus"]) == 2  # said, nothing written
    assert config.load(tmp_path).agent.kind == "claude-code"


@pytest.mark.slow
def test_bad_config_exits_2_with_one_clear_message(project: Path) -> None:
    text = (project / "arsup.toml").read_text().replace('goal = "minimize"', 'goal = "lower"')
    (project / "arsup.toml").write_text(text)
    result = arsup("run", "--headless", cwd=project)
    assert result.returncode == 2
    assert "[metric] goal" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_not_a_git_repo_exits_2(tmp_path: Path) -> None:
    make_project(tmp_path / "repo")
    subprocess.run(["rm", "-rf", str(tmp_path / "repo" / ".git")], check=True)
    result = arsup("run", "--headless", cwd=tmp_path / "repo")
    assert result.returncode == 2 and "not in a git repository" in result.stderr


def _script(root: Path, *entries: dict) -> str:
    path = root / "proposals.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    git(root, "add", "proposals.jsonl")
    git(root, "commit", "-qm", "proposals")
    return "script:proposals.jsonl"


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_demo_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine")
    result = arsup("demo", "--headless", "--dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "x").read_text() == "mine"


@pytest.mark.slow
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


@pytest.mark.slow
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


def _bad_project(tmp_path: Path, **project: object) -> Path:
    (tmp_path / "x.py").write_text("")  # outside the project: the old check found it and went on
    (tmp_path / "outside.md").write_text("")
    return make_project(tmp_path / "repo", project=project)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("project", "key"),
    [
        ({"editable": ["../x.py"]}, "[project] editable: '../x.py' is outside the project folder"),
        ({"editable": ["/abs/path"]}, "[project] editable: '/abs/path' is outside the project folder"),
        ({"protected": ["../x.py"]}, "[project] protected: '../x.py' is outside the project folder"),
        ({"protected": ["/abs/path"]}, "[project] protected: '/abs/path' is outside the project folder"),
        ({"instructions": "../outside.md"}, "[project] instructions: '../outside.md' is outside the project folder"),
        ({"time_budget": True}, "[project] time_budget: must be a number, not true or false"),
    ],
)
def test_config_mistakes_end_in_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project: dict, key: str
) -> None:
    root = _bad_project(tmp_path, **project)
    code = cli.main(["run", "--headless", "--max-experiments", "1", "--dir", str(root)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("arsup: error: ") and key in err and "Traceback" not in err


@pytest.mark.slow
def test_init_with_an_absolute_editable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "program.md").write_text("")
    assert cli.main(["init", "--dir", str(tmp_path), "--editable", "/abs"]) == 2
    assert "[project] editable: '/abs' is outside the project folder" in capsys.readouterr().err
    assert not (tmp_path / "arsup.toml").exists()
    result = arsup("init", "--editable", "/etc/hosts", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("arsup: error: ") and "'/etc/hosts' is outside" in result.stderr


@pytest.mark.slow
def test_a_broken_state_folder_exits_2_with_the_fix(project: Path) -> None:
    (project / ".arsup").write_text("")  # a file where arsup's folder belongs
    result = arsup("run", "--headless", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"arsup: error: cannot use {project / '.arsup'}" in result.stderr and "move it away" in result.stderr


def _recorded(root: Path, *experiments: tuple[str, str, str, float]) -> journal.Journal:
    """Experiments (id, tag, status, metric) in the repo's journal, as the engine records them."""
    ledger = journal.Journal(root)
    for id_, tag, status, metric in experiments:
        ledger.record(Experiment(
            id=id_, tag=tag, parent="a" * 40, commit=id_ * 10, hypothesis=f"try {id_}", agent="tuner",
            status=status, metric=metric,
        ))
    return ledger


@pytest.mark.slow
def test_rebuild_rewrites_results_tsv_from_the_journal(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _recorded(
        project, ("0001", "nov27", "keep", 1.0), ("0002", "nov27", "discard", 1.2), ("0003", "nov27", "invalid", 0.0),
        ("0004", "nov28", "keep", 0.9),
    )
    results = project / "results.tsv"
    assert cli.main(["rebuild", "--tag", "nov27", "--dir", str(project)]) == 0
    assert capsys.readouterr().out == f"arsup: wrote 2 rows of tag nov27 to {results}\n"
    assert [row.split("\t")[0] for row in results.read_text().splitlines()] == ["commit", "0001000", "0002000"]
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "experim')  # a torn line: said, not fatal
    assert cli.main(["rebuild", "--dir", str(project)]) == 0  # the latest tag
    out, err = capsys.readouterr()
    assert out == f"arsup: wrote 1 rows of tag nov28 to {results}\n"
    assert "arsup: warning: " in err and "line 5: not JSON" in err and "journal.torn" in err  # and set aside
    assert [row.split("\t")[0] for row in results.read_text().splitlines()[1:]] == ["0004000"]


@pytest.mark.slow
def test_rebuild_refuses_an_unknown_tag_and_a_busy_repo(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _recorded(project, ("0001", "nov27", "keep", 1.0))
    (project / "results.tsv").write_text("mine\n")
    assert cli.main(["rebuild", "--tag", "nov2", "--dir", str(project)]) == 2
    err = capsys.readouterr().err
    assert "no experiments of tag 'nov2'" in err and "tags in the journal: nov27" in err
    lock = journal.RepoLock(project)
    lock.acquire()
    try:
        result = arsup("rebuild", cwd=project)
    finally:
        lock.release()
    assert result.returncode == 2 and "another arsup" in result.stderr
    assert (project / "results.tsv").read_text() == "mine\n"


@pytest.mark.slow
def test_import_then_report_the_mar8_log(tmp_path: Path) -> None:
    from tests.core.test_importing import MAR8

    imported = arsup("import", str(MAR8), "--tag", "mar8", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "imported 126 experiments" in imported.stdout and "as tag mar8 (0001-0126)" in imported.stdout
    reported = arsup("report", "--out", "night", cwd=tmp_path)  # the latest tag
    assert reported.returncode == 0, reported.stderr
    assert ("arsup: mar8: best val_bpb 0.969686 (0119); improvement 0.028214 (2.83%) over the baseline 0.997900; "
            "126 experiments, 22 kept, 1 crashed") in reported.stdout  # no times in a results.tsv: no slot-hours
    assert f"to {tmp_path / 'night'}" in reported.stdout
    assert sorted(p.name for p in (tmp_path / "night").iterdir()) == [
        "progress.png", "report.md", "results.tsv", "summary.json"]


@pytest.mark.slow
def test_a_bad_log_and_an_imported_tag_end_in_one_error_line(project: Path) -> None:
    bad = project.parent / "bad.tsv"
    bad.write_text("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nabc\t0.9\t1.0\tKEPT\tx\n")
    before = journal.Journal(project).path.read_bytes() if journal.Journal(project).path.exists() else b""
    refused = arsup("import", str(bad), cwd=project)
    assert refused.returncode == 2 and "line 2: status 'KEPT'" in refused.stderr and "Traceback" not in refused.stderr
    assert (journal.Journal(project).path.read_bytes() if journal.Journal(project).path.exists() else b"") == before
    good = project.parent / "good.tsv"
    good.write_text("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nbaseline\t1.0\t1.0\tkeep\tbaseline\n")
    assert arsup("import", str(good), "--tag", "old", cwd=project).returncode == 0
    resumed = arsup("run", "--headless", "--tag", "old", "--max-experiments", "1", cwd=project)
    assert resumed.returncode == 2 and "tag 'old' was imported from a results.tsv" in resumed.stderr
    assert "Traceback" not in resumed.stderr and git(project, "status", "--porcelain") == ""
    assert "autoresearch/old" not in git(project, "branch", "--list")


# Each command that acts on a project, with the arguments it cannot do without.
COMMANDS_WITH_DIR = {
    "init": [], "run": [], "demo": [], "verify": [], "ablate": [], "rebuild": [], "report": [],
    "import": ["results.tsv"], "export": ["mlflow"], "attach": [], "status": [], "approve": [], "skip": [],
    "kill": [], "pause": [], "resume": [], "note": ["hello"], "policy": ["auto"], "stop": [], "mcp": [], "hook": ["stop"], "agent": ["claude"],
}


def test_every_command_is_in_the_dir_table() -> None:
    commands = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert sorted(commands.choices) == sorted(COMMANDS_WITH_DIR)


@pytest.mark.parametrize("command", sorted(COMMANDS_WITH_DIR))
def test_dir_before_or_after_the_command_names_the_folder(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "X"
    monkeypatch.chdir(tmp_path)  # another folder than the one named
    extra = COMMANDS_WITH_DIR[command]
    for argv in (["--dir", str(target), command, *extra], [command, *extra, "--dir", str(target)]):
        assert cli.parse_args(argv).dir == target, argv
    assert cli.parse_args(["--dir", str(target), command, *extra, "--dir", str(target / ".")]).dir == target


@pytest.mark.parametrize("command", ["stop", "status", "init", "run"])
def test_dir_given_twice_as_two_folders_is_one_error(command: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["--dir", str(tmp_path / "A"), command, "--dir", str(tmp_path / "B")])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"--dir names two folders, {tmp_path / 'A'} and {tmp_path / 'B'}" in err and "Traceback" not in err


def test_loop_options_before_the_command_are_kept(tmp_path: Path) -> None:
    args = cli.parse_args(["--agent", "llm", "--tag", "x", "--max-experiments", "4", "--headless", "run"])
    assert (args.agent, args.tag, args.max_experiments, args.headless) == ("llm", "x", 4, True)
    args = cli.parse_args(["--time-budget", "9", "demo", "--agent", "tuner"])
    assert (args.time_budget, args.agent, args.max_experiments) == (9, "tuner", None)


@pytest.mark.slow
def test_dir_before_the_command_is_where_it_acts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    for name in ("program.md", "train.py"):
        (there / name).write_text("")
    monkeypatch.chdir(here)
    assert cli.main(["--dir", str(there), "init"]) == 0
    assert (there / "arsup.toml").is_file() and not (here / "arsup.toml").exists()
    status = arsup("--dir", str(there), "status", cwd=here)
    assert status.returncode == 3 and f"no arsup loop runs in {there}" in status.stdout, status.stdout


@pytest.mark.slow
def test_dir_before_stop_never_stops_the_loop_of_the_current_folder(tmp_path: Path) -> None:
    from tests.faults.conftest import assert_invariants, fingerprint
    from tests.core.test_service import SLOW, Loop

    mine, other = make_project(tmp_path / "mine"), make_project(tmp_path / "other")
    protected = fingerprint(mine, ["prepare.py"])
    served = Loop(mine, {"hypothesis": "slow", "files": {"train.py": SLOW}})
    try:
        stopped = arsup("--dir", str(other), "stop", cwd=mine)
        assert stopped.returncode == 3 and f"no arsup loop runs in {other}" in stopped.stdout, stopped.stdout
        assert not served.engine.wait(1.5), "the loop of the current folder was stopped"
    finally:
        served.close()
    assert_invariants(mine, protected)
