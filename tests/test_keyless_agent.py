"""`arsup agent claude`: the configuration read back, and the real Claude Code CLI driving a night through it.

The CLI runs in print mode against a scripted Anthropic API on 127.0.0.1 whose replies call arsup's tools
and edit the working copy; HOME is a temporary folder (the claude_cli fixture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arsup import config
from arsup.keyless_agent import TOOLS, first_message, prepare
from tests.agent_clis import ClaudeCli, CodexCli, events, run_cli
from tests.agent_servers import answer, tool
from tests.conftest import git, make_project, results_rows
from tests.faults.conftest import fingerprint
from tests.terminal import EXIT_MARK, Tmux
from tests.test_mcp_server import stop_loop

pytestmark = pytest.mark.slow


def test_arsup_agent_claude_writes_a_config_that_allows_the_editable_files_and_arsups_tools_only(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "repo")
    done = subprocess.run([sys.executable, "-m", "arsup", "agent", "claude", "--no-start", "--dir", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    setup = prepare("claude", root, config.load(root))
    assert f"is set up in {setup.folder}" in done.stdout and setup.work.parent == setup.folder
    assert root not in setup.folder.parents
    server = json.loads((setup.folder / ".mcp.json").read_text())["mcpServers"]["arsup"]
    assert server["args"][-5:] == ["mcp", "--dir", str(root.resolve()), "--work", str(setup.work)]
    settings = json.loads((setup.folder / ".claude" / "settings.json").read_text())
    copy = setup.work.name
    assert settings["permissions"]["allow"] == [*(f"mcp__arsup__{name}" for name in TOOLS), "Read", "Glob", "Grep",
                                                f"Edit(./{copy}/train.py)", f"Write(./{copy}/train.py)"]
    assert settings["permissions"]["deny"] == [f"Edit(./{copy}/prepare.py)", f"Write(./{copy}/prepare.py)", "Bash"]
    stop = settings["hooks"]["Stop"][0]["hooks"][0]["command"]
    assert stop.endswith(f"-m arsup hook stop --dir {root.resolve()}")


def test_the_real_claude_code_drives_a_night_through_arsup_mcp(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"}, agent={"max_idle_blocks": 1})
    protected = fingerprint(root, ["prepare.py"])
    setup = prepare("claude", root, config.load(root))
    train, helper = setup.work / "train.py", setup.work / "helper.py"
    claude_cli.server.push(
        tool("mcp__arsup__brief"),
        tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"),
        tool("mcp__arsup__propose", hypothesis="a higher learning rate converges faster"),
        tool("mcp__arsup__wait", id="0002", timeout_s=120),
        tool("Write", file_path=str(helper), content="X = 1\n"),  # not an editable file
        tool("mcp__arsup__propose", hypothesis="a helper module"),
        answer("I am out of ideas."),  # the Stop hook blocks this stop: the night runs
        answer("Still out of ideas."),  # one block without a proposal ([agent] max_idle_blocks = 1): it may stop
    )
    try:
        # the command `arsup agent claude` starts, in print mode
        assert setup.argv[-1] == first_message(root, setup.work)
        done = run_cli([claude_cli.binary, "-p", *setup.argv[1:], "--permission-mode", "acceptEdits",
                        "--output-format", "stream-json", "--verbose"], cwd=setup.folder, timeout=300)
    finally:
        stop_loop(root)
    assert done.returncode == 0, done.stderr[-2000:]
    results = {}
    for event in events(done.stdout):
        for block in event.get("message", {}).get("content", []) if event.get("type") == "user" else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                results[block["tool_use_id"]] = content if isinstance(content, str) else json.dumps(content)
    said = "\n".join(results.values())
    assert "# arsup research brief" in said
    assert "accepted as 0002" in said
    assert "0002 keep, val_bpb 1.000523" in said
    assert "refused: helper.py" in said  # refused through the tool, with the file and the reason
    turns = json.dumps(claude_cli.server.turns[-1]["messages"])
    assert "The arsup night is not over" in turns  # the hook's instruction reached the agent
    rows = results_rows(root)  # judged like any other night: results.tsv's commit, val_bpb, memory, status, text
    assert [row[3] for row in rows] == ["keep", "keep"] and rows[1][4] == "a higher learning rate converges faster"
    assert fingerprint(root, ["prepare.py"]) == protected and not (root / "helper.py").exists()
    assert "LR = 0.003" in git(root, "show", "HEAD:train.py")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_arsup_agent_claude_starts_the_interactive_claude_code_which_researches_until_the_hook_lets_it_stop(
    claude_cli: ClaudeCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command a person types, in a real terminal: the interactive CLI opens on the first message, calls
    arsup's tools, and its stops are blocked until the hook's reminders run out."""
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"}, agent={"max_idle_blocks": 1})
    setup = prepare("claude", root, config.load(root))  # what `arsup agent claude` prepares: to script the edit
    monkeypatch.setenv("PATH", f"{claude_cli.binary.parent}:{os.environ['PATH']}")  # `claude` as installed
    # a person who has used Claude Code before: past its first-run screens, the folder trusted
    seen = {"hasCompletedOnboarding": True, "projects": {str(setup.folder): {"hasTrustDialogAccepted": True}}}
    (claude_cli.home / ".claude.json").write_text(json.dumps(seen))
    claude_cli.server.push(
        tool("mcp__arsup__brief"),
        tool("Edit", file_path=str(setup.work / "train.py"), old_string="LR = 0.0001", new_string="LR = 0.003"),
        tool("mcp__arsup__propose", hypothesis="a higher learning rate converges faster"),
        tool("mcp__arsup__wait", id="0002", timeout_s=120),
        answer("I am out of ideas."),  # blocked by the hook: the night runs
        answer("Still out of ideas."),  # let through: one reminder without a proposal
    )
    tmux = Tmux(f"{sys.executable} -m arsup agent claude --dir {root}; echo {EXIT_MARK}$?; sleep 60", root)
    try:
        tmux.wait_for("Do you want to use this API key?", timeout=60)
        tmux.keys("Up")  # yes: the person's own key
        tmux.keys("Enter")
        screen = tmux.wait_for("the agent stopped after 1 reminder without a new proposal", timeout=180)
        assert "You are the researcher of an arsup night on repo" in screen  # the first message, sent for them
        assert "The arsup night is not over" in screen  # the hook's block, as Claude Code shows it
        assert EXIT_MARK not in screen  # the session is the person's: it stays open after the agent stops
    finally:
        tmux.close()
        stop_loop(root)
    rows = results_rows(root)
    assert [row[3] for row in rows] == ["keep", "keep"] and rows[1][4] == "a higher learning rate converges faster"
    assert "LR = 0.003" in git(root, "show", "HEAD:train.py")


def test_the_real_codex_drives_a_night_through_arsup_mcp_and_its_stop_hook_keeps_it_going(
    codex_cli: CodexCli, tmp_path: Path
) -> None:
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"}, agent={"max_idle_blocks": 1})
    protected = fingerprint(root, ["prepare.py"])
    setup = prepare("codex", root, config.load(root))
    assert setup.argv[-1] == first_message(root, setup.work) and "workspace-write" in setup.argv
    train, split = setup.work / "train.py", setup.work / "prepare.py"
    codex_cli.server.push(
        tool("mcp__arsup/brief"),  # Codex offers an MCP server's tools as one namespace
        tool("exec_command", cmd=f"sed -i 's/LR = 0.0001/LR = 0.003/' {train}"),
        tool("mcp__arsup/propose", hypothesis="a higher learning rate converges faster"),
        tool("mcp__arsup/wait", id="0002", timeout_s=120),
        tool("exec_command", cmd=f"echo 'SPLIT = 0.5' >> {split}"),  # a protected file
        tool("mcp__arsup/propose", hypothesis="a different split"),
        answer("I am out of ideas."),  # the Stop hook blocks this stop: the night runs
        answer("Still out of ideas."),  # one block without a proposal ([agent] max_idle_blocks = 1): it may stop
    )
    try:  # `codex exec`: the interactive command's options, in its non-interactive form
        done = run_cli([codex_cli.binary, "exec", "--skip-git-repo-check", "--json", *setup.argv[1:]],
                       cwd=setup.folder, timeout=300)
    finally:
        stop_loop(root)
    assert done.returncode == 0, done.stderr[-2000:]
    offered = [t for t in codex_cli.server.turns[0]["tools"] if t.get("name") == "mcp__arsup"]
    assert sorted(tool["name"] for tool in offered[0]["tools"]) == sorted(TOOLS)
    calls = [event["item"] for event in events(done.stdout)
             if event.get("type") == "item.completed" and event["item"].get("type") == "mcp_tool_call"]
    assert [call["tool"] for call in calls] == ["brief", "propose", "wait", "propose"]
    assert all(call["error"] is None for call in calls)  # no approval asked: arsup's tools are approved
    said = "\n".join(block["text"] for call in calls for block in call["result"]["content"])
    assert "# arsup research brief" in said and "accepted as 0002" in said
    assert "0002 keep, val_bpb 1.000523" in said
    assert "refused: prepare.py" in said  # refused through the tool, with the file and the reason
    last = json.dumps(codex_cli.server.turns[-1]["input"][-1])
    assert "<hook_prompt" in last and "The arsup night is not over" in last  # the Stop hook's instruction
    assert len(codex_cli.server.turns) == 8  # and the second stop was let through
    rows = results_rows(root)
    assert [row[3] for row in rows] == ["keep", "keep"] and rows[1][4] == "a higher learning rate converges faster"
    assert fingerprint(root, ["prepare.py"]) == protected
    assert "LR = 0.003" in git(root, "show", "HEAD:train.py")
