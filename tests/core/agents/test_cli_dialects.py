"""Each CLI's command line and stream, read without running it: what is shown, kept, counted and refused."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from arsup.core import sandbox
from arsup.core.agents.claude_code import ClaudeCodeDialect, tool_line
from arsup.core.agents.cli_agent import Invocation, Stream
from arsup.core.agents.codex import CodexDialect
from arsup.core.agents.command import CommandDialect, program_of

WORK = Path("/scratch/work")


def call(**given: Any) -> Invocation:
    values: dict[str, Any] = dict(program="/bin/cli", prompt="do it; 'now'", prompt_file=Path("/scratch/prompt.md"),
                                  workdir=WORK, lab=Path("/scratch/lab"), files=["train.py", "my model.py"],
                                  hidden=[Path("/home/me/project")])
    return Invocation(**{**values, **given})


def fed(dialect: Any, *events: Any) -> tuple[Stream, list[str]]:
    shown: list[str] = []
    stream = Stream(show=shown.append, workdir=WORK)
    for event in events:
        dialect.read(event if isinstance(event, str) else json.dumps(event), stream)
    return stream, shown


def test_the_command_template_gets_each_value_as_one_shell_word() -> None:
    dialect = CommandDialect("aider --yes --message-file {prompt_file} {files} --say {prompt} --in {workdir}")
    words = shlex.split(dialect.command(call(prompt="use {files} and 'quotes'")))
    assert words == ["aider", "--yes", "--message-file", "/scratch/prompt.md", "train.py", "my model.py",
                     "--say", "use {files} and 'quotes'", "--in", "/scratch/work"]
    assert program_of(dialect.template) == "aider" and program_of("'unclosed") == ""


def test_claude_code_gets_file_tools_only_and_the_project_denied() -> None:
    words = shlex.split(ClaudeCodeDialect().command(call(model="sonnet", resume="abc")))
    assert words[:3] == ["/bin/cli", "-p", "do it; 'now'"]
    options = dict(zip(words[3::1], words[4::1]))
    assert options["--output-format"] == "stream-json" and "--verbose" in words and "--restricted" in words
    assert options["--tools"] == "Read,Edit,Write,Glob,Grep"
    assert options["--add-dir"] == "/scratch/lab" and options["--model"] == "sonnet" and options["--resume"] == "abc"
    deny = json.loads(options["--settings"])["permissions"]["deny"]
    assert "Read(//home/me/project/**)" in deny and "Edit(//home/me/project/**)" in deny
    shell = shlex.split(ClaudeCodeDialect().command(call(allow_shell=True)))
    assert shell[shell.index("--tools") + 1] == "Read,Edit,Write,Glob,Grep,Bash" and "--resume" not in shell


def test_claude_code_stream_shows_one_line_per_tool_and_counts_its_dollars() -> None:
    stream, shown = fed(
        ClaudeCodeDialect(),
        {"type": "system", "subtype": "init", "session_id": "s-1"},
        {"type": "assistant", "message": {"content": [
            {"type": "text", "text": "Looking at the code."},
            {"type": "tool_use", "name": "Read", "input": {"file_path": f"{WORK}/train.py"}},
            {"type": "tool_use", "name": "Edit", "input": {"file_path": f"{WORK}/train.py", "old_string": "LR = 1",
                                                            "new_string": "LR = 2"}}]}},
        "a warning on stderr",
        {"type": "result", "subtype": "success", "is_error": False, "result": "Done.\nHYPOTHESIS: higher LR",
         "total_cost_usd": 0.25, "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
         "permission_denials": [{"tool_name": "Write", "tool_input": {"file_path": "/etc/passwd", "content": "x"}}]},
    )
    assert shown == ["Looking at the code.", "Read train.py", "Edit train.py +1 -1", "a warning on stderr",
                     "denied: Write /etc/passwd +1"]
    assert stream.session == "s-1" and stream.messages[-1] == "Done.\nHYPOTHESIS: higher LR"
    assert (stream.usage.calls, stream.usage.prompt_tokens, stream.usage.completion_tokens) == (1, 15, 7)
    assert stream.usage.cost_usd == 0.25 and stream.denials == ["Write /etc/passwd +1"] and not stream.failed
    assert len(stream.events) == 4 and stream.events[2] == {"type": "output", "text": "a warning on stderr"}


def test_claude_code_error_result_is_a_failure_with_its_words() -> None:
    stream, _ = fed(ClaudeCodeDialect(), {"type": "result", "subtype": "success", "is_error": True,
                                          "result": "Invalid API key · Please run /login", "total_cost_usd": 0})
    assert stream.failed and stream.errors == ["Invalid API key · Please run /login"]


def test_tool_lines_for_the_other_tools() -> None:
    stream = Stream(show=lambda text: None, workdir=WORK)
    assert tool_line("Write", {"file_path": f"{WORK}/a.py", "content": "x\ny\n"}, stream) == "Write a.py +2"
    assert tool_line("Grep", {"pattern": "LR"}, stream) == "Grep LR"
    assert tool_line("Bash", {"command": "ls  -la"}, stream) == "Bash ls -la"
    edits = {"file_path": f"{WORK}/t.py", "edits": [{"old_string": "a", "new_string": "b\nc"}]}
    assert tool_line("MultiEdit", edits, stream) == "Edit t.py +2 -1"


def test_codex_without_arsups_sandbox_uses_its_own_and_resumes_its_thread() -> None:
    fresh = shlex.split(CodexDialect().command(call(model="gpt-5")))
    assert fresh[:2] == ["/bin/cli", "exec"] and fresh[-1] == "do it; 'now'" and "--json" in fresh
    assert 'sandbox_mode="workspace-write"' in fresh and fresh[fresh.index("-m") + 1] == "gpt-5"
    assert 'sandbox_workspace_write.writable_roots=["/scratch/lab"]' in fresh
    resumed = shlex.split(CodexDialect().command(call(resume="t-9")))
    assert resumed[:3] == ["/bin/cli", "exec", "resume"] and resumed[-2:] == ["t-9", "do it; 'now'"]
    assert 'sandbox_mode="workspace-write"' in resumed and "-m" not in resumed
    inside = shlex.split(CodexDialect().command(call(sandbox=("bwrap", "--"))))
    assert "--dangerously-bypass-approvals-and-sandbox" in inside and 'sandbox_mode="workspace-write"' not in inside


def test_codex_goes_under_arsups_sandbox_where_it_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, work, lab = tmp_path / "project", tmp_path / "work", tmp_path / "lab"
    for folder in (project / ".git", project / ".arsup", work, lab):
        folder.mkdir(parents=True)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.setattr(sandbox, "problem_with", lambda network=True: "")
    monkeypatch.setattr(sandbox, "_tool", lambda settings: "/usr/bin/bwrap")
    fence = CodexDialect().fence(call(workdir=work, lab=lab, hidden=[project]))
    text = " ".join(fence)
    assert f"--tmpfs {project}/.git" in text and f"--tmpfs {project}/.arsup" in text
    assert f"--bind {work} {work}" in text and f"--bind {lab} {lab}" in text
    assert f"--bind {tmp_path}/codex-home {tmp_path}/codex-home" in text and "--unshare-net" not in fence
    monkeypatch.setattr(sandbox, "problem_with", lambda network=True: "bwrap fails here")
    assert CodexDialect().fence(call(workdir=work, lab=lab, hidden=[project])) == ()


@pytest.mark.slow  # litellm's cost map: importing litellm takes seconds, the fast tier stays in seconds
def test_codex_stream_is_shown_and_its_tokens_priced_where_the_model_is_known() -> None:
    events = (
        {"type": "thread.started", "thread_id": "t-1"},
        {"type": "item.completed", "item": {"type": "command_execution", "command": "sed -i s/1/2/ train.py",
                                            "exit_code": 0}},
        {"type": "item.completed", "item": {"type": "file_change", "changes": [{"path": f"{WORK}/train.py",
                                                                                "kind": "update"}]}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "HYPOTHESIS: higher LR"}},
        {"type": "turn.completed", "usage": {"input_tokens": 1000, "cached_input_tokens": 0, "output_tokens": 100}},
    )
    stream, shown = fed(CodexDialect(model="gpt-4o"), *events)
    assert shown == ["Run sed -i s/1/2/ train.py (exit 0)", "Edit train.py", "HYPOTHESIS: higher LR"]
    assert stream.session == "t-1" and stream.messages == ["HYPOTHESIS: higher LR"]
    assert (stream.usage.calls, stream.usage.prompt_tokens, stream.usage.completion_tokens) == (1, 1000, 100)
    assert stream.usage.cost_usd > 0 and not stream.unpriced
    unknown, _ = fed(CodexDialect(), *events)
    assert unknown.usage.cost_usd == 0 and "no [agent] model" in unknown.unpriced


def test_a_failed_codex_turn_is_a_failure_but_a_reconnect_notice_is_not() -> None:
    notice, _ = fed(CodexDialect(), {"type": "error", "message": "Reconnecting... 1/5"})
    assert not notice.failed and notice.errors == ["Reconnecting... 1/5"]
    failed, _ = fed(CodexDialect(), {"type": "turn.failed", "error": {"message": "401 Unauthorized"}})
    assert failed.failed and failed.errors == ["401 Unauthorized"]


def test_codex_runs_from_the_node_modules_that_hold_its_wrapper_and_its_native_binary(tmp_path: Path) -> None:
    from arsup.core.agents.codex import installation

    modules = tmp_path / ".agent-clis" / "node_modules"
    wrapper = modules / "@openai" / "codex" / "bin" / "codex.js"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("// node wrapper\n")
    (modules / ".bin").mkdir()
    (modules / ".bin" / "codex").symlink_to("../@openai/codex/bin/codex.js")
    assert installation(str(modules / ".bin" / "codex")) == modules
    plain = tmp_path / "opt" / "codex"
    plain.parent.mkdir()
    plain.write_text("")
    assert installation(str(plain)) == tmp_path / "opt"  # not from npm: its own folder
