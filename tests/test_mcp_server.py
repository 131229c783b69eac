"""`arsup mcp` as a real subprocess, driven by the MCP SDK's own stdio client on a real project.

The server starts the loop in the background with the external agent; the
client edits the working copy and proposes, as an interactive agent would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from arsup.background import running_loop
from tests.conftest import TOY_TRAIN, git, make_project
from tests.faults.conftest import fingerprint

pytestmark = pytest.mark.slow

ARSUP = [sys.executable, "-m", "arsup"]


def stop_loop(root: Path) -> None:
    """End the loop `arsup mcp` started in the background: `arsup stop`, and a kill if that did not end it."""
    pid = running_loop(root)
    subprocess.run([*ARSUP, "stop", "--dir", str(root)], capture_output=True, timeout=60)
    if pid and psutil.pid_exists(pid):
        try:
            psutil.Process(pid).wait(30)
        except psutil.TimeoutExpired:
            psutil.Process(pid).kill()


class Tools:
    """The tools of one `arsup mcp` session: call(name, **arguments) -> (is_error, text)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, name: str, **arguments: Any) -> tuple[bool, str]:
        result = await self.session.call_tool(name, arguments)
        return bool(result.isError), "".join(getattr(part, "text", "") for part in result.content)


async def night(root: Path, work: Path) -> dict[str, tuple[bool, str]]:
    """One short night through the tools; what each step answered."""
    params = StdioServerParameters(command=ARSUP[0], args=[*ARSUP[1:], "mcp", "--dir", str(root), "--work", str(work)],
                                   env=dict(os.environ), cwd=str(root))  # HOME: the fixture's temporary one
    said: dict[str, tuple[bool, str]] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        said["tools"] = (False, " ".join(sorted(tool.name for tool in (await session.list_tools()).tools)))
        tools = Tools(session)
        said["brief"] = await tools.call("brief")
        said["nothing"] = await tools.call("propose", hypothesis="nothing changed yet")
        said["baseline"] = await tools.call("wait", id="0001", timeout_s=60)
        (work / "train.py").write_text(TOY_TRAIN.replace("LR = 0.0001", "LR = 0.003"))
        said["propose"] = await tools.call("propose", hypothesis="raise LR towards its optimum")
        (work / "prepare.py").write_text("DATA = 'mine'\n")
        said["cheat"] = await tools.call("propose", hypothesis="use my own data")
        said["copy after refusal"] = (False, (work / "prepare.py").read_text())
        said["verdict"] = await tools.call("wait", id="0002", timeout_s=60)
        said["history"] = await tools.call("history", last=5)
        said["log"] = await tools.call("log", id="0002", tail=3)
        said["unknown"] = await tools.call("wait", id="0099")
        said["status"] = await tools.call("status")
        note = subprocess.run([*ARSUP, "note", "--dir", str(root), "try", "a", "wider", "model"], capture_output=True,
                              text=True, timeout=60)  # a person's note, from another terminal
        said["note"] = (note.returncode != 0, note.stdout + note.stderr)
        said["brief with a note"] = await tools.call("brief")
    return said


def test_a_night_through_the_mcp_tools_is_judged_and_a_protected_edit_is_refused(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", acceptance={"mode": "greedy"})
    protected = fingerprint(root, ["prepare.py"])
    work = tmp_path / "work"
    try:
        said = asyncio.run(asyncio.wait_for(night(root, work), 240))
    finally:
        stop_loop(root)
    assert said["tools"][1] == "brief history log propose status wait"
    error, brief = said["brief"]
    assert not error
    assert f"Working copy (edit the files here, nowhere else): {work.resolve()}" in brief
    assert "Editable files: train.py" in brief
    assert "Protected files (a proposal that changes one is refused): prepare.py" in brief
    assert "Minimise val_bpb by editing train.py." in brief and "Noise floor:" in brief
    assert said["nothing"] == (True, said["nothing"][1]) and "holds no change yet" in said["nothing"][1]
    assert said["baseline"][1].startswith("0001 keep, val_bpb 3.250000, 1 run.")
    error, accepted = said["propose"]
    assert not error and accepted.startswith("accepted as 0002: ")
    assert "reset to the best (0001, val_bpb 3.250000)" in accepted
    error, refused = said["cheat"]
    assert not error and refused.startswith("refused: prepare.py: ") and "protected" in refused
    assert "was reset" in refused
    assert said["copy after refusal"][1] == "DATA = 'fixed'\n"  # the copy is the best again
    error, verdict = said["verdict"]
    assert not error and verdict.startswith("0002 keep, val_bpb 1.000523") and "reset to the best (0002" in verdict
    assert "raise LR towards its optimum" in said["history"][1] and "0002  keep" in said["history"][1]
    assert "val_bpb:          1.000523" in said["log"][1]
    error, unknown = said["unknown"]
    assert error and "no experiment '0099' in this night" in unknown and "Traceback" not in unknown
    assert "agent external" in said["status"][1]
    assert "## Notes from the person supervising you\n\n(none)" in brief
    assert not said["note"][0], said["note"][1]
    assert "## Notes from the person supervising you\n\n- try a wider model" in said["brief with a note"][1]
    assert fingerprint(root, ["prepare.py"]) == protected
    assert "LR = 0.003" in git(root, "show", "HEAD:train.py")  # the run branch holds the keep



async def not_asking(root: Path, work: Path) -> dict[str, tuple[bool, str]]:
    params = StdioServerParameters(command=ARSUP[0], args=[*ARSUP[1:], "mcp", "--dir", str(root), "--work", str(work)],
                                   env=dict(os.environ), cwd=str(root))
    said: dict[str, tuple[bool, str]] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = Tools(session)
        said["brief"] = await tools.call("brief")
        (work / "train.py").write_text(TOY_TRAIN.replace("WIDTH = 64", "WIDTH = 65"))
        said["propose"] = await tools.call("propose", hypothesis="wider")
        said["copy"] = (False, (work / "train.py").read_text())
        said["training"] = await tools.call("wait", id="0001", timeout_s=0)
    return said


def test_a_proposal_the_loop_cannot_take_now_is_a_tool_error_and_the_copy_is_kept(tmp_path: Path) -> None:
    slow = TOY_TRAIN + "import time\ntime.sleep(30)\n"  # the baseline trains first; the loop asks for nothing meanwhile
    root = make_project(tmp_path / "repo", train=slow, project={"time_budget": 60, "timeout": 120})
    work = tmp_path / "work"
    try:
        said = asyncio.run(asyncio.wait_for(not_asking(root, work), 120))
    finally:
        stop_loop(root)
    assert "Now: 0001 training." in said["brief"][1]
    error, busy = said["propose"]
    assert error and "the loop takes no proposal now (0001 training); your working copy is kept" in busy
    assert "WIDTH = 65" in said["copy"][1]
    error, training = said["training"]
    assert not error and training.startswith("0001 is still training, ") and "% through run 1" in training
