"""Claude Code and Codex as arsup's researcher, the real CLIs driving a real engine night against scripted APIs.

The fixtures (tests/agent_clis.py) give each test its own HOME and point the
CLI at a server on 127.0.0.1; they skip where the CLI is not installed. The
scripted model's tool calls name the agent's scratch copy, which exists from
the agent's creation on (one folder, emptied for each proposal).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arsup import config
from arsup.core.agents import create_agent
from arsup.core.agents.cli_agent import CLIAgent
from arsup.core.events import AgentText, SessionEnded
from arsup.core.experiment import Status
from arsup.core.loop import Engine
from arsup.core.journal import Journal
from tests.agent_clis import INSTALLED, ClaudeCli, CodexCli, transcript
from tests.agent_servers import answer, error, hang, tool
from tests.conftest import git, make_project, marked_processes

pytestmark = pytest.mark.slow

HYPOTHESIS = "HYPOTHESIS: a higher learning rate converges faster"


def night(
    tmp_path: Path, kind: str, binary: Path, max_experiments: int = 2, **agent: Any
) -> tuple[Engine, CLIAgent, list[Any]]:
    root = make_project(tmp_path / "repo")
    overrides = {"budget": {"max_experiments": max_experiments},
                 "agent": {"kind": kind, "command": str(binary), "timeout": 120, **agent}}
    cfg = config.load(root, overrides)
    agent = create_agent(cfg, root)
    assert isinstance(agent, CLIAgent)
    engine = Engine(cfg, root, agent, tag="t1")
    events: list[Any] = []
    engine.subscribe(events.append)
    engine.prepare()
    return engine, agent, events


def shown(events: list[Any]) -> list[str]:
    """The agent's stream as the screen shows it: the texts joined (as an LLM's tokens are), line by line."""
    return "".join(e.text for e in events if isinstance(e, AgentText)).splitlines()


def test_claude_codes_edit_becomes_a_kept_experiment_with_its_dollars(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    engine, agent, events = night(tmp_path, "claude-code", claude_cli.binary)
    train = agent.workspace.scratch.folder / "train.py"
    claude_cli.server.push(tool("Read", file_path=str(train)),
                           tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"),
                           answer(f"Done.\n{HYPOTHESIS}"))
    engine.run()
    baseline, kept = engine.history
    assert kept.status == Status.KEEP and kept.agent == "claude-code"
    assert kept.hypothesis == "a higher learning rate converges faster"
    assert "LR = 0.003" in git(engine.root, "show", f"{kept.commit}:train.py")
    assert ["Read train.py", "Edit train.py +1 -1"] == [s for s in shown(events) if s.startswith(("Read", "Edit"))]
    usage = kept.agent_data["usage"]
    assert usage["calls"] == 1 and usage["cost_usd"] > 0 and usage["prompt_tokens"] >= 300
    assert kept.agent_data["session"] and transcript(engine.root, kept)[-1]["type"] == "result"
    offered = sorted(t["name"] for t in claude_cli.server.turns[0]["tools"] if not t.get("defer_loading"))
    assert offered == ["Edit", "Glob", "Grep", "Read", "Write"]  # file tools only: no shell


def test_claude_code_outside_its_scratch_copy_is_denied_and_nothing_changes(
    claude_cli: ClaudeCli, tmp_path: Path
) -> None:
    engine, agent, events = night(tmp_path, "claude-code", claude_cli.binary, max_experiments=2)
    root = engine.root
    prepare = agent.workspace.scratch.folder / "prepare.py"
    outside = [tool("Write", file_path=str(root / "train.py"), content="LR = 0.003\n"),  # the project itself
               tool("Read", file_path=str(root / ".arsup" / "journal.jsonl")),  # the journal, with the holdout
               tool("Edit", file_path=str(prepare), old_string="DATA = 'fixed'", new_string="DATA = 'x'"),  # protected
               answer(HYPOTHESIS)]
    corrections = [answer(HYPOTHESIS), answer(HYPOTHESIS)]  # it insists: the refusal twice, then invalid
    claude_cli.server.push(*outside, *corrections)
    engine.run()
    invalid = engine.history[1]
    assert invalid.status == Status.INVALID and invalid.reason.startswith("prepare.py: the file is protected")
    assert invalid.agent_data["corrections"] == 2
    denied = invalid.agent_data["denials"]
    assert any(d.startswith("Write ") and d.endswith("repo/train.py +1") for d in denied)
    assert any(d.startswith("Read ") and d.endswith("journal.jsonl") for d in denied)
    assert any(s.startswith("denied: Read") for s in shown(events))
    assert git(root, "status", "--porcelain") == "" and (root / "prepare.py").read_text() == "DATA = 'fixed'\n"
    refused = claude_cli.server.turns[4]["messages"][-1]["content"]
    assert "prepare.py: the file is protected" in str(refused)  # given back in the same session


def test_claude_code_with_a_refused_key_ends_the_night_in_one_line(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    engine, _, events = night(tmp_path, "claude-code", claude_cli.binary)
    claude_cli.server.push(error(401))
    engine.run()
    assert events[-1].error and events[-1].reason == (
        "the claude-code agent failed: claude-code: not logged in, or the API key was refused (exit code 1: "
        "Invalid API key · Fix external API key); run `claude` once and log in (/login), or set ANTHROPIC_API_KEY"
    )
    assert [e.status for e in engine.history] == [Status.KEEP]


def test_claude_code_hanging_is_killed_at_the_timeout_with_no_process_left(
    claude_cli: ClaudeCli, tmp_path: Path
) -> None:
    engine, _, events = night(tmp_path, "claude-code", claude_cli.binary, timeout=3)
    claude_cli.server.push(hang(60))
    engine.run()
    assert events[-1].reason == ("the claude-code agent failed: claude-code: no answer within [agent] timeout = 3 s; "
                                 "the CLI and every process it started were killed")
    assert marked_processes("HOME", str(claude_cli.home)) == []


def test_claude_code_resumes_its_session_when_told_to(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    engine, agent, _ = night(tmp_path, "claude-code", claude_cli.binary, max_experiments=3, session="resume")
    train = agent.workspace.scratch.folder / "train.py"
    claude_cli.server.push(
        tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"), answer(HYPOTHESIS),
        tool("Edit", file_path=str(train), old_string="WIDTH = 64", new_string="WIDTH = 65"),
        answer("HYPOTHESIS: a wider model"),
    )
    engine.run()
    first, second = engine.history[1:]
    calls = [e for e in transcript(engine.root, second) if e["type"] == "arsup.call"]
    assert calls[0]["resume"] == first.agent_data["session"] != ""
    assert second.agent_data["session"] == first.agent_data["session"]  # one conversation across proposals
    assert len(claude_cli.server.turns[2]["messages"]) > 1  # its memory: the first proposal's messages


def test_claude_code_not_installed_says_how_to_install_it(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as missing:
        night(tmp_path, "claude-code", tmp_path / "nowhere" / "claude")
    assert str(missing.value) == (
        f"claude-code: `{tmp_path}/nowhere/claude` is not installed or not on PATH; "
        "install it with `npm install -g @anthropic-ai/claude-code` (or set [agent] command to its path)"
    )


def test_codexs_shell_edit_becomes_a_kept_experiment(codex_cli: CodexCli, tmp_path: Path) -> None:
    engine, agent, events = night(tmp_path, "codex", codex_cli.binary)
    codex_cli.server.push(tool("exec_command", cmd="sed -i 's/LR = 0.0001/LR = 0.003/' train.py"),
                          answer(f"Done.\n{HYPOTHESIS}"))
    engine.run()
    kept = engine.history[1]
    assert kept.status == Status.KEEP and kept.agent == "codex"
    assert "LR = 0.003" in git(engine.root, "show", f"{kept.commit}:train.py")
    assert any(s.startswith("Run ") and "sed -i" in s and s.endswith("(exit 0)") for s in shown(events))
    usage = kept.agent_data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["cost_usd"] == 0  # no [agent] model: unpriced, and said
    assert any("recorded with a cost of 0 USD" in getattr(e, "text", "") for e in events)


def test_codex_cannot_write_outside_its_scratch_copy(codex_cli: CodexCli, tmp_path: Path) -> None:
    engine, _, _ = night(tmp_path, "codex", codex_cli.binary)
    root = engine.root
    escape = f"echo tampered > {root}/prepare.py; cat {root}/.arsup/journal.jsonl"
    codex_cli.server.push(tool("exec_command", cmd=escape), *[answer(HYPOTHESIS)] * 3)
    engine.run()
    assert engine.history[1].status == Status.INVALID
    assert engine.history[1].reason == "the edit changes nothing"
    assert (root / "prepare.py").read_text() == "DATA = 'fixed'\n" and git(root, "status", "--porcelain") == ""
    said = str(codex_cli.server.turns[1]["input"])  # the command's output, as the model got it back
    assert "journal.jsonl" in said and "baseline" not in said


def test_codex_with_a_refused_key_ends_the_night_in_one_line(codex_cli: CodexCli, tmp_path: Path) -> None:
    engine, _, events = night(tmp_path, "codex", codex_cli.binary)
    codex_cli.server.push(error(401))
    engine.run()
    assert events[-1].error
    assert events[-1].reason.startswith("the codex agent failed: codex: not logged in, or the API key was refused")
    assert events[-1].reason.endswith("run `codex login`, or set OPENAI_API_KEY")


def test_claude_code_and_codex_propose_at_once_for_two_slots_and_take_turns(
    claude_cli: ClaudeCli, codex_cli: CodexCli, tmp_path: Path
) -> None:
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    cfg = config.load(root, {
        "budget": {"max_experiments": 3}, "slots": {"cpu": 2, "queue": 0},
        "agent": {"kind": ["claude-code", "codex"], "timeout": 120,
                  "claude-code": {"command": str(claude_cli.binary)}, "codex": {"command": str(codex_cli.binary)}},
    })
    roster = create_agent(cfg, root)
    claude, _ = roster.agents
    train = claude.workspace.scratch.folder / "train.py"  # its first workspace: it makes one proposal here
    claude_cli.server.push(tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"),
                           answer(HYPOTHESIS))
    codex_cli.server.push(tool("exec_command", cmd="sed -i 's/WIDTH = 64/WIDTH = 65/' train.py"),
                          answer("HYPOTHESIS: a wider model"))
    engine = Engine(cfg, root, roster, tag="t1")
    ended: list[Any] = []
    engine.subscribe(lambda event: ended.append(event) if isinstance(event, SessionEnded) else None)
    engine.prepare()
    engine.run()
    assert not ended[-1].error, ended[-1].reason
    baseline, *proposed = engine.history
    by = {e.agent: e for e in proposed}
    assert sorted(by) == ["claude-code", "codex"] and all(e.status in Status.TRAINED for e in proposed)
    assert by["claude-code"].agent_data["usage"]["cost_usd"] > 0 and "LR = 0.003" in by["claude-code"].diff
    assert "WIDTH = 65" in by["codex"].diff
    spans = [(e.proposed_at - e.propose_s, e.proposed_at) for e in proposed]
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # both CLIs were at work together
    assert (root / "prepare.py").read_text() == "DATA = 'fixed'\n" and git(root, "status", "--porcelain") == ""


def test_claude_code_with_a_model_that_does_not_exist_ends_the_night_saying_so(
    claude_cli: ClaudeCli, tmp_path: Path
) -> None:
    engine, _, events = night(tmp_path, "claude-code", claude_cli.binary, model="claude-nonexistent-9")
    claude_cli.server.push(*[error(404, "model: claude-nonexistent-9")] * 4)
    engine.run()
    assert events[-1].error
    assert events[-1].reason.startswith("the claude-code agent failed: claude-code: the model 'claude-nonexistent-9' "
                                        "does not exist or is not available")
    assert events[-1].reason.endswith("check [agent] model")
    assert [e.status for e in engine.history] == [Status.KEEP]  # the baseline, and nothing half-made


def test_claude_code_rate_limited_is_tried_again_and_its_edit_is_kept(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    engine, agent, events = night(tmp_path, "claude-code", claude_cli.binary)
    train = agent.workspace.scratch.folder / "train.py"
    claude_cli.server.push(error(429), tool("Edit", file_path=str(train), old_string="LR = 0.0001",
                                            new_string="LR = 0.003"), answer(HYPOTHESIS))
    engine.run()
    kept = engine.history[1]
    assert kept.status == Status.KEEP and "LR = 0.003" in kept.diff
    assert any("rate limited" in getattr(e, "text", "") and "trying again in 2 s" in getattr(e, "text", "")
               for e in events)
    assert [c["purpose"] for c in kept.agent_data["calls"]] == ["proposal"]  # the retry is the same call, again


def test_codex_with_a_model_that_does_not_exist_ends_the_night_saying_so(codex_cli: CodexCli, tmp_path: Path) -> None:
    engine, _, events = night(tmp_path, "codex", codex_cli.binary, model="gpt-nonexistent-9")
    codex_cli.server.push(*[error(404, "The model `gpt-nonexistent-9` does not exist", code="model_not_found")] * 4)
    engine.run()
    assert events[-1].error and "codex: the model 'gpt-nonexistent-9' does not exist" in events[-1].reason
    assert [e.status for e in engine.history] == [Status.KEEP]


def _arsup_headless(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`arsup run --headless ...` as a person types it, the CLIs found on PATH (the fixtures' environment)."""
    env = {**os.environ, "PATH": f"{INSTALLED}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "arsup", "run", "--headless", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_arsup_run_headless_agent_claude_code_runs_a_night_of_its_edits(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    claude_cli.server.push(tool("Edit", file_path="train.py", old_string="LR = 0.0001", new_string="LR = 0.003"),
                           answer(HYPOTHESIS))
    done = _arsup_headless(root, "--agent", "claude-code", "--max-experiments", "2", "--max-cost", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    [record] = [e for e in Journal(root).experiments() if e.agent == "claude-code"]
    assert record.status == Status.KEEP and record.hypothesis == "a higher learning rate converges faster"
    assert record.agent_data["usage"]["cost_usd"] > 0 and "a higher learning rate" in done.stdout
    assert (root / "prepare.py").read_text() == "DATA = 'fixed'\n" and git(root, "status", "--porcelain") == ""


def test_arsup_run_headless_agent_codex_runs_a_night_of_its_edits(codex_cli: CodexCli, tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo")
    codex_cli.server.push(tool("exec_command", cmd="sed -i 's/LR = 0.0001/LR = 0.003/' train.py"), answer(HYPOTHESIS))
    done = _arsup_headless(root, "--agent", "codex", "--max-experiments", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    [record] = [e for e in Journal(root).experiments() if e.agent == "codex"]
    assert record.status == Status.KEEP and "LR = 0.003" in record.diff
    assert (root / "prepare.py").read_text() == "DATA = 'fixed'\n" and git(root, "status", "--porcelain") == ""
