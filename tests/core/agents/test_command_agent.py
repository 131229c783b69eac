"""The `command` agent (any CLI) driving a real engine night: the CLI is a small Python script of this test's own.

It edits files in its working directory (the scratch copy) and prints a
HYPOTHESIS line, as an aider or opencode call would; what it changed there is
the proposal, which the engine checks like any other.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from arsup import config
from arsup.core.agents import cli_agent, create_agent
from arsup.core.agents.cli_agent import CLIAgent
from arsup.core.events import AgentText, Notice, SessionEnded
from arsup.core.experiment import Status
from arsup.core.loop import Engine
from tests.agent_clis import transcript
from tests.conftest import git, make_project, marked_processes

pytestmark = pytest.mark.slow

AGENT = textwrap.dedent(
    """\
    import os, pathlib, subprocess, sys, time
    mode, workdir, prompt_file, calls = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(calls, "a") as log:
        told = pathlib.Path(prompt_file).read_text()
        log.write(("refused: " + told.split("refused: ")[1].splitlines()[0]) if "refused: " in told else "asked")
        log.write("\\n")
    assert pathlib.Path.cwd() == workdir and not (workdir / ".git").exists() and not (workdir / ".arsup").exists()
    train = workdir / "train.py"
    if mode == "good":
        train.write_text(train.read_text().replace("LR = 0.0001", "LR = 0.003"))
    elif mode == "protected":
        (workdir / "prepare.py").write_text("DATA = 'tampered'\\n")
    elif mode == "hang":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        time.sleep(600)
    elif mode == "limited" and len(open(calls).read().splitlines()) == 1:
        print("Error: 429 Too Many Requests: rate limit reached")
        sys.exit(1)
    elif mode == "limited":
        train.write_text(train.read_text().replace("LR = 0.0001", "LR = 0.003"))
    elif mode == "terse" and len(open(calls).read().splitlines()) == 1:
        train.write_text(train.read_text().replace("LR = 0.0001", "LR = 0.003"))
        sys.exit(0)
    elif mode == "fails":
        print("Error: 401 Unauthorized: invalid api key")
        sys.exit(1)
    print("Editing train.py")
    print("HYPOTHESIS: a higher learning rate converges faster in the budget")
    """
)


def night(tmp_path: Path, mode: str, max_experiments: int = 2, **agent: Any) -> tuple[Engine, list[Any], Path]:
    """A project, and an engine whose agent is the script in `mode`; returns the calls file too."""
    root = make_project(tmp_path / "repo")
    script, calls = tmp_path / "agent.py", tmp_path / "calls.txt"
    script.write_text(AGENT)
    command = f"{sys.executable} {script} {mode} {{workdir}} {{prompt_file}} {calls}"
    overrides = {"budget": {"max_experiments": max_experiments},
                 "agent": {"kind": "command", "command": command, **agent}}
    cfg = config.load(root, overrides)
    engine = Engine(cfg, root, create_agent(cfg, root), tag="t1")
    events: list[Any] = []
    engine.subscribe(events.append)
    engine.prepare()
    return engine, events, calls


def test_a_good_edit_becomes_an_experiment(tmp_path: Path) -> None:
    engine, events, calls = night(tmp_path, "good")
    engine.run()
    baseline, experiment = engine.history
    assert experiment.status == Status.KEEP and experiment.agent == "command"
    assert experiment.hypothesis == "a higher learning rate converges faster in the budget"
    assert "LR = 0.003" in git(engine.root, "show", f"{experiment.commit}:train.py")
    assert len(calls.read_text().splitlines()) == 1  # accepted at once: no correction
    shown = "".join(e.text for e in events if isinstance(e, AgentText)).splitlines()  # as the screen joins them
    assert "Editing train.py" in shown
    data = experiment.agent_data
    assert data["usage"] == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    assert data["corrections"] == 0 and transcript(engine.root, experiment)[0]["type"] == "arsup.call"
    assert 0 < data["calls"][0]["cli_s"] < experiment.propose_s  # the CLI's own time, inside the proposal's
    assert {"type": "output", "text": "Editing train.py"} in transcript(engine.root, experiment)
    assert "arsup.call" not in engine.journal.path.read_text()  # the transcript is not in the journal


def test_an_edit_of_a_protected_file_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    engine, _, calls = night(tmp_path, "protected")
    engine.run()
    invalid = engine.history[1]
    assert invalid.status == Status.INVALID
    assert invalid.reason.startswith("prepare.py: the file is protected")
    # The first call and the two corrections, each told why.
    said = calls.read_text().splitlines()
    assert said[:3] == ["asked", *["refused: prepare.py: the file is protected and may not be edited."] * 2]
    assert said[3] == "asked"  # the next proposal starts afresh
    assert invalid.agent_data["corrections"] == 2
    assert (engine.root / "prepare.py").read_text() == "DATA = 'fixed'\n"
    assert git(engine.root, "status", "--porcelain") == ""


def test_an_answer_without_a_hypothesis_is_given_back(tmp_path: Path) -> None:
    engine, _, calls = night(tmp_path, "terse")
    engine.run()
    assert engine.history[1].status == Status.KEEP
    assert engine.history[1].hypothesis == "a higher learning rate converges faster in the budget"
    assert calls.read_text().splitlines() == ["asked", "refused: your final message has no `HYPOTHESIS:` line"]


def test_an_agent_that_changes_nothing_makes_an_invalid_proposal(tmp_path: Path) -> None:
    engine, events, _ = night(tmp_path, "nothing")
    engine.run()
    # Each proposal is an invalid experiment of a working agent, until the engine's own watchdog ends the night.
    assert [(e.status, e.reason) for e in engine.history[1:]] == [(Status.INVALID, "the edit changes nothing")] * 5
    assert events[-1].reason == "5 invalid edits in a row; check the agent"
    told = [e.text for e in events if isinstance(e, Notice) and "cost" in e.text]
    assert told == ["command: a command agent reports no cost; its calls are recorded with a cost of 0 USD"]  # once


def test_a_hang_is_killed_at_the_timeout_with_no_process_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSUP_TEST_MARK", str(tmp_path))  # the CLI gets the person's environment: its tree is marked
    engine, events, _ = night(tmp_path, "hang", timeout=2)
    started = time.monotonic()
    engine.run()
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.error
    assert end.reason == ("the command agent failed: command: no answer within [agent] timeout = 2 s; "
                          "the CLI and every process it started were killed")
    assert time.monotonic() - started < 30
    assert [e.status for e in engine.history] == [Status.KEEP]
    assert marked_processes("ARSUP_TEST_MARK", str(tmp_path)) == []


def test_a_stop_while_the_agent_works_ends_its_tree_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSUP_TEST_MARK", str(tmp_path))
    engine, events, calls = night(tmp_path, "hang", timeout=300)
    engine.start()
    deadline = time.monotonic() + 30
    while not (calls.exists() and calls.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.stop()
    assert engine.wait(30)
    assert isinstance(events[-1], SessionEnded) and not events[-1].error
    assert [e.status for e in engine.history] == [Status.KEEP]
    assert marked_processes("ARSUP_TEST_MARK", str(tmp_path)) == []


def test_a_refused_key_is_one_line_with_what_to_do(tmp_path: Path) -> None:
    engine, events, _ = night(tmp_path, "fails")
    engine.run()
    assert events[-1].error
    assert events[-1].reason.startswith("the command agent failed: command: not logged in, or the API key was refused")


def test_a_rate_limit_is_retried_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_agent, "RETRY_BASE_S", 0.05)
    engine, events, calls = night(tmp_path, "limited")
    notices = []
    engine.subscribe(lambda event: notices.append(event.text) if isinstance(event, Notice) else None)
    engine.run()
    assert [e.status for e in engine.history] == [Status.KEEP, Status.KEEP]
    assert calls.read_text().splitlines() == ["asked", "asked"]
    assert any(n.startswith("command: rate limited (exit code 1: Error: 429") and n.endswith("trying again in 0.05 s")
               for n in notices)


def test_a_cli_missing_from_path_says_how_to_install_it_before_the_night_starts(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    cfg = config.load(root, {"agent": {"kind": "command", "command": "no-such-agent --message {prompt}"}})
    with pytest.raises(config.ConfigError) as missing:
        create_agent(cfg, root)
    assert str(missing.value) == (
        "command: `no-such-agent` is not installed or not on PATH; install it, or fix the command line in [agent] command"
    )
    assert not (root / ".arsup").exists()  # nothing started, nothing written


def test_the_lab_lies_beside_the_scratch_copy_with_the_history(tmp_path: Path) -> None:
    engine, _, _ = night(tmp_path, "good")
    engine.run()
    agent = engine_agent(engine)
    assert agent.workspace.lab.parent == agent.workspace.scratch.folder.parent and not agent.workspace.lab.is_relative_to(agent.workspace.scratch.folder)
    history = (agent.workspace.lab / "history.md").read_text()
    assert "baseline" in history and "Noise floor" in history
    assert (agent.workspace.lab / "instructions.md").read_text() == "Minimise val_bpb by editing train.py.\n"


def engine_agent(engine: Engine) -> CLIAgent:
    agent = engine.agent
    assert isinstance(agent, CLIAgent)
    return agent


def test_a_command_agent_without_a_command_line_is_a_config_error(project: Path) -> None:
    cfg = config.load(project, {"agent": {"kind": "command"}})
    with pytest.raises(config.ConfigError, match=r'^\[agent\] command: kind "command" needs the command line'):
        create_agent(cfg, project)
