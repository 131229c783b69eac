"""The real Claude Code and Codex CLIs against the scripted servers, at the CLI level (no arsup agent):
what arsup's agents rely on, proven on the pinned versions (tools/install-agent-clis)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.agent_clis import STREAM_JSON, ClaudeCli, CodexCli, events, find_cli, require_cli, run_cli
from tests.agent_servers import answer, error, hang, tool
from tests.conftest import marked_processes

FILE_TOOLS = ("--tools", "Read,Edit,Write")


def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("LR = 0.1\n")
    return work


@pytest.mark.slow
def test_claude_edits_a_file_through_a_scripted_edit(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    work = workdir(tmp_path)
    edit = tool("Edit", file_path=str(work / "train.py"), old_string="LR = 0.1", new_string="LR = 0.01")
    claude_cli.server.push(edit, answer("HYPOTHESIS: a smaller LR"))
    prompt = ["-p", "lower the LR", *STREAM_JSON, *FILE_TOOLS, "--permission-mode", "acceptEdits"]
    done = run_cli([claude_cli.binary, *prompt], cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "train.py").read_text() == "LR = 0.01\n"
    stream = events(done.stdout)
    assert stream[0]["type"] == "system" and stream[0]["tools"] == ["Edit", "Read", "Write"]
    result = stream[-1]
    assert result["type"] == "result" and not result["is_error"] and result["permission_denials"] == []
    assert result["result"] == "HYPOTHESIS: a smaller LR" and result["total_cost_usd"] > 0
    first, second = claude_cli.server.turns
    offered = sorted(t["name"] for t in first["tools"] if not t.get("defer_loading"))  # a placeholder is deferred
    assert offered == ["Edit", "Read", "Write"]  # only the file tools
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert all(r["path"].startswith("/v1/messages") for r in claude_cli.server.requests)  # nothing else called
    assert not claude_cli.server.errors


@pytest.mark.slow
def test_claude_denies_an_edit_it_was_not_allowed(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    work = workdir(tmp_path)
    claude_cli.server.push(tool("Write", file_path=str(work / "train.py"), content="LR = 9\n"), answer("Tried."))
    done = run_cli([claude_cli.binary, "-p", "go", *STREAM_JSON, *FILE_TOOLS], cwd=work)  # default mode: no writes
    assert (work / "train.py").read_text() == "LR = 0.1\n"
    denials = events(done.stdout)[-1]["permission_denials"]
    assert [(d["tool_name"], d["tool_input"]["file_path"]) for d in denials] == [("Write", str(work / "train.py"))]


@pytest.mark.slow
def test_claude_reports_a_401_and_exits_non_zero(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    claude_cli.server.push(error(401))
    done = run_cli([claude_cli.binary, "-p", "go", *STREAM_JSON], cwd=workdir(tmp_path))
    assert done.returncode != 0
    result = events(done.stdout)[-1]
    assert result["is_error"] and result["api_error_status"] == 401
    assert result["result"] == "Invalid API key · Fix external API key"
    assert len(claude_cli.server.turns) == 1  # the fixture's CLAUDE_CODE_MAX_RETRIES=0


@pytest.mark.slow
def test_claude_hangs_on_a_hanging_server_until_killed(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    claude_cli.server.push(hang(60))
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli([claude_cli.binary, "-p", "go", *STREAM_JSON], cwd=workdir(tmp_path), timeout=5)
    assert time.monotonic() - started < 30  # a child left alive would hold stdout open for the 60 s hang
    assert marked_processes("HOME", str(claude_cli.home)) == []  # run_cli killed its whole group


@pytest.mark.slow
def test_codex_edits_a_file_through_its_shell_tool_in_its_sandbox(codex_cli: CodexCli, tmp_path: Path) -> None:
    # Codex's own sandbox (workspace-write) works here once its helper is on PATH (the codex_cli fixture).
    work = workdir(tmp_path)
    codex_cli.server.push(tool("exec_command", cmd="printf 'LR = 0.01\\n' > train.py"), answer("HYPOTHESIS: lower"))
    command = ["exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "lower the LR"]
    done = run_cli([codex_cli.binary, *command], cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "train.py").read_text() == "LR = 0.01\n"
    stream = events(done.stdout)
    items = [e["item"] for e in stream if e["type"] == "item.completed"]
    messages = [item["text"] for item in items if item["type"] == "agent_message"]
    assert messages == ["HYPOTHESIS: lower"]
    assert stream[-1]["type"] == "turn.completed" and stream[-1]["usage"]["output_tokens"] == 40
    first, second = codex_cli.server.turns
    assert "exec_command" in [t.get("name") for t in first["tools"]]
    output = second["input"][-1]
    assert output["type"] == "function_call_output" and "exited with code 0" in output["output"]


@pytest.mark.slow
def test_codex_sandbox_refuses_a_write_outside_the_workspace(codex_cli: CodexCli, tmp_path: Path) -> None:
    outside = codex_cli.home / "outside.txt"  # /tmp is writable in workspace-write unless excluded
    codex_cli.server.push(tool("exec_command", cmd=f"echo hi > {outside}"), answer("Tried."))
    no_tmp = ["-c", "sandbox_workspace_write.exclude_slash_tmp=true"]
    no_tmp += ["-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
    command = ["exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", *no_tmp, "go"]
    done = run_cli([codex_cli.binary, *command], cwd=workdir(tmp_path))
    assert done.returncode == 0, done.stderr
    assert not outside.exists()
    assert "Read-only file system" in codex_cli.server.turns[1]["input"][-1]["output"]


@pytest.mark.slow
def test_codex_reports_a_401_and_exits_non_zero(codex_cli: CodexCli, tmp_path: Path) -> None:
    codex_cli.server.push(error(401))
    done = run_cli([codex_cli.binary, "exec", "--json", "--skip-git-repo-check", "go"], cwd=workdir(tmp_path))
    assert done.returncode != 0
    failed = [e for e in events(done.stdout) if e["type"] == "turn.failed"]
    assert len(failed) == 1 and "401 Unauthorized: Incorrect API key provided" in failed[0]["error"]["message"]
    assert len(codex_cli.server.turns) == 1  # the fixture's request_max_retries = 0


@pytest.mark.slow
def test_codex_hangs_on_a_hanging_server_until_killed(codex_cli: CodexCli, tmp_path: Path) -> None:
    codex_cli.server.push(hang(60))
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli([codex_cli.binary, "exec", "--json", "--skip-git-repo-check", "go"], cwd=workdir(tmp_path), timeout=5)
    assert time.monotonic() - started < 30  # a child left alive would hold stdout open for the 60 s hang
    assert marked_processes("HOME", str(codex_cli.home)) == []  # the wrapper and its native child


def test_a_missing_cli_skips_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.agent_clis.INSTALLED", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_cli("claude") is None
    with pytest.raises(pytest.skip.Exception, match="tools/install-agent-clis"):
        require_cli("claude")
