"""A kept transcript read back shows what the screen showed live: the real CLIs' agent.jsonl, replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from arsup.core.agents import transcript
from tests.agent_clis import ClaudeCli, CodexCli
from tests.agent_servers import answer, tool
from tests.core.agents.test_cli_agents_real import HYPOTHESIS, night, shown


def kept_lines(root: Path, experiment: object) -> list[str]:
    agent_data = getattr(experiment, "agent_data")
    return transcript.shown_lines(transcript.read(root / agent_data["transcript"]), getattr(experiment, "agent"))


@pytest.mark.slow  # the real CLI
def test_claude_codes_transcript_reads_back_as_it_was_shown(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    engine, agent, events = night(tmp_path, "claude-code", claude_cli.binary)
    root, train = engine.root, agent.workspace.scratch.folder / "train.py"
    claude_cli.server.push(tool("Read", file_path=str(train)),
                           tool("Read", file_path=str(root / ".arsup" / "journal.jsonl")),
                           tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"),
                           answer(f"Done.\n{HYPOTHESIS}"))
    engine.run()
    lines = kept_lines(root, engine.history[1])
    assert lines[0] == "── call 1: a fresh session ──"
    assert lines[1:] == shown(events)  # the same lines, paths relative to the scratch copy as they were
    assert "Edit train.py +1 -1" in lines and f"denied: Read {root}/.arsup/journal.jsonl" in lines


@pytest.mark.slow  # the real CLI
def test_codexs_transcript_reads_back_as_it_was_shown(codex_cli: CodexCli, tmp_path: Path) -> None:
    engine, _, events = night(tmp_path, "codex", codex_cli.binary)
    codex_cli.server.push(tool("exec_command", cmd="sed -i 's/LR = 0.0001/LR = 0.003/' train.py"),
                          answer(f"Done.\n{HYPOTHESIS}"))
    engine.run()
    lines = kept_lines(engine.root, engine.history[1])
    assert lines[1:] == shown(events) and any(line.startswith("Run ") and "sed -i" in line for line in lines)


def test_a_torn_line_is_kept_as_plain_output(tmp_path: Path) -> None:
    path = tmp_path / "agent.jsonl"
    path.write_text('{"type": "arsup.call", "resume": "s1"}\n{"type": "output", "text": "warming up"}\n{"type": "ass')
    assert transcript.shown_lines(transcript.read(path), "claude-code") == [
        "── call 1: resuming session s1 ──", "warming up", '{"type": "ass',
    ]
