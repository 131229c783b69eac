"""The agent's transcript opened from the history: a real Claude Code night's agent.jsonl, live and browsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from arsup import config
from arsup.core.agents import create_agent
from arsup.core.agents.cli_agent import CLIAgent
from arsup.core.experiment import Experiment, Status
from arsup.core.loop import Engine
from arsup.tui.app import SupervisorApp
from arsup.tui.bridge import Bridge
from arsup.tui.launch import browse_app
from arsup.tui.lines import LinesView
from arsup.tui.panes.history import HistoryPane
from arsup.tui.screens import HelpScreen
from arsup.tui.transcript import TranscriptScreen, transcript_lines
from tests.agent_clis import ClaudeCli
from tests.agent_servers import answer, tool
from tests.conftest import make_project
from tests.core.agents.test_cli_agents_real import HYPOTHESIS
from tests.tui.conftest import drive, quiet_monitor, until

pytestmark = pytest.mark.slow  # the real Claude Code CLI, and Textual apps

AGENT = {"kind": "claude-code", "timeout": 120}


def claude_night(claude_cli: ClaudeCli, tmp_path: Path, bridge: Bridge | None = None) -> tuple[Path, Engine]:
    """A night whose second experiment is Claude Code's edit, after a read of the journal it was refused; prepared,
    its events sent to `bridge` from the start."""
    root = make_project(tmp_path / "repo")
    cfg = config.load(root, {"budget": {"max_experiments": 2}, "agent": AGENT | {"command": str(claude_cli.binary)}})
    agent = create_agent(cfg, root)
    assert isinstance(agent, CLIAgent)
    engine = Engine(cfg, root, agent, tag="t1")
    if bridge is not None:
        engine.subscribe(bridge)
    engine.prepare()
    train = agent.workspace.scratch.folder / "train.py"
    claude_cli.server.push(tool("Read", file_path=str(train)),
                           tool("Read", file_path=str(root / ".arsup" / "journal.jsonl")),
                           tool("Edit", file_path=str(train), old_string="LR = 0.0001", new_string="LR = 0.003"),
                           answer(f"Done.\n{HYPOTHESIS}"))
    return root, engine


def shown(app: SupervisorApp) -> list[str]:
    screen = app.screen
    return screen.query_one(LinesView).plain_lines if isinstance(screen, TranscriptScreen) else []


async def open_transcript(pilot: Pilot[Any], app: SupervisorApp, last: str) -> None:
    await pilot.press("T")
    await until(pilot, lambda: last in shown(app), what=f"the transcript to show {last!r}")


def test_the_transcript_of_a_browsed_experiment_shows_each_tool_call_and_the_refused_one(
    claude_cli: ClaudeCli, tmp_path: Path
) -> None:
    root, engine = claude_night(claude_cli, tmp_path)
    engine.run()
    baseline, kept = engine.history
    assert kept.status == Status.KEEP
    app = browse_app(engine.config, root, "t1", monitor=quiet_monitor())

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.selected is not None and app.selected.id == kept.id, what="the last one")
        assert any(b.binding.action == "transcript" and b.enabled for b in app.screen.active_bindings.values())
        await open_transcript(pilot, app, "Edit train.py +1 -1")
        lines = shown(app)
        assert lines[:3] == ["── call 1: a fresh session ──", "Read train.py", f"Read {root}/.arsup/journal.jsonl"]
        assert f"denied: Read {root}/.arsup/journal.jsonl" in lines and "Done." in lines and HYPOTHESIS in lines
        await pilot.press("end")
        await pilot.press("q")  # closes the transcript, not the screen
        await until(pilot, lambda: app.screen is app.main, what="the transcript to close")
        app.main.query_one(HistoryPane).post_message(HistoryPane.Picked(baseline))  # as choosing it in the tree
        await until(pilot, lambda: app.selected is not None and app.selected.id == baseline.id, what="the baseline")
        await open_transcript(pilot, app, f"{baseline.id} has no agent transcript: it is the baseline, the unmodified code")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, what="the transcript to close")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        assert "T  the coding agent's transcript of the experiment in view" in str(app.screen.query_one("Static").render())

    drive(app, go, size=(120, 40))


def test_the_transcript_opens_on_the_live_screen(claude_cli: ClaudeCli, tmp_path: Path) -> None:
    bridge = Bridge()
    root, engine = claude_night(claude_cli, tmp_path, bridge)
    app = SupervisorApp(engine, bridge, on_ready=engine.start, owns_loop=True, monitor=quiet_monitor())

    async def go(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.ended is not None, 60, "the night to end")
        live = "".join(app.view.agent_text).splitlines()  # the hypothesis pane's stream, one line each
        assert "Read train.py" in live and "Edit train.py +1 -1" in live
        await open_transcript(pilot, app, "Edit train.py +1 -1")
        assert all(line in shown(app) for line in live)  # what the pane showed live, kept
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, what="the transcript to close")

    try:
        drive(app, go, size=(120, 40))
    finally:
        engine.stop()
        engine.wait(60)


def test_an_experiment_of_an_agent_without_transcripts_says_so_in_one_line() -> None:
    made = Experiment(id="0004", tag="t", parent="", commit="", hypothesis="wider", agent="llm")
    assert transcript_lines(made, "/nowhere") == ([], "0004 has no agent transcript: the llm agent keeps none")
    made.agent, made.agent_data = "claude-code", {"transcript": ".arsup/runs/0004/agent.jsonl"}
    lines, why = transcript_lines(made, "/nowhere")
    assert lines == [] and why == ("cannot read the transcript of 0004, /nowhere/.arsup/runs/0004/agent.jsonl: "
                                   "No such file or directory")


SESSION = [  # a Claude Code call as stream-json prints it (paths under the scratch copy, one denied read)
    {"type": "arsup.call", "command": "claude -p ...", "resume": "", "workdir": "/tmp/arsup-agent-x/work"},
    {"type": "system", "subtype": "init", "session_id": "s1", "cwd": "/tmp/arsup-agent-x/work"},
    {"type": "assistant", "message": {"content": [
        {"type": "text", "text": "I will read the training script and the last run's loss curve first."},
        {"type": "tool_use", "name": "Read", "input": {"file_path": "/tmp/arsup-agent-x/work/train.py"}}]}},
    {"type": "user", "message": {"content": [{"type": "tool_result", "content": "LR = 0.0005 [/usr/bin]"}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "name": "Read", "input": {"file_path": "/home/me/tinylm/.arsup/journal.jsonl"}}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "name": "Edit", "input": {"file_path": "/tmp/arsup-agent-x/work/train.py",
                                                      "old_string": "LR = 0.0005", "new_string": "LR = 0.0012"}}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "text", "text": "Done.\nHYPOTHESIS: a 2.4x higher peak LR fits more steps in the budget"}]}},
    {"type": "result", "subtype": "success", "session_id": "s1", "total_cost_usd": 0.0123, "result": "Done.",
     "permission_denials": [{"tool_name": "Read", "tool_input": {"file_path": "/home/me/tinylm/.arsup/journal.jsonl"}}]},
]


def test_transcript_screen(snap_compare: Any, tmp_path: Path) -> None:
    kept = tmp_path / ".arsup" / "runs" / "0008" / "agent.jsonl"
    kept.parent.mkdir(parents=True)
    kept.write_text("".join(json.dumps(event) + "\n" for event in SESSION))
    made = Experiment(id="0008", tag="nov28", parent="", commit="", agent="claude-code",
                      hypothesis="a 2.4x higher peak LR fits more steps in the budget",
                      agent_data={"transcript": ".arsup/runs/0008/agent.jsonl"})
    app = SupervisorApp(None, Bridge())

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await app.push_screen(TranscriptScreen(made, str(tmp_path), app.palette))
        await until(pilot, lambda: "Done." in shown(app), what="the transcript")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 24), run_before=run_before)
