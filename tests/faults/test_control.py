"""Hostile clients and a planted socket: each gets one clear refusal, and the loop goes on untouched.

The loops here are real engines served on real sockets in this process; the
commands are real `arsup` processes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from arsup.core import wire
from arsup.core.controls import NOTE_MAX_CHARS
from arsup.core.service import ControlClient, ControlRefused, LoopNotRunning, socket_path
from tests.conftest import git, make_project
from tests.core.test_service import Loop
from tests.faults.conftest import assert_invariants, fingerprint

pytestmark = pytest.mark.slow  # the fault cases run real loops on real repositories


def arsup(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arsup", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def _reply(lines: BinaryIO) -> dict[str, Any]:
    """The next reply on a raw connection (events may come between)."""
    while True:
        line = lines.readline()
        assert line, "the loop closed the connection"
        message = json.loads(line)
        if "reply" in message:
            return message["reply"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # nothing raised in the loop
def test_a_control_line_nested_100000_deep_gets_one_error_reply_and_the_client_stays(project: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    served = Loop(project, approve="runs")  # it waits on the first question: nothing trains meanwhile
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(str(socket_path(project)))
            lines = sock.makefile("rb")
            while not json.loads(lines.readline()).get("live"):
                pass
            sock.sendall(b"[" * 100_000 + b"]" * 100_000 + b"\n")
            refused = _reply(lines)
            assert refused["ok"] is False and "nested too deep" in refused["error"], refused
            sock.sendall(wire.dumps({"control": "note", "id": 2, "text": ["not", "text"]}))
            assert _reply(lines) == {"id": 2, "control": "note", "ok": False, "error": "a note must be text"}
            sock.sendall(wire.dumps({"control": "pause", "id": 3}))
            assert _reply(lines)["ok"] is True  # the same client, still served
        assert served.engine.notes == []
    finally:
        served.close()
    assert_invariants(project, protected)


def test_a_100_kb_note_is_refused_at_the_socket_and_by_the_command(project: Path, tmp_path: Path) -> None:
    protected = fingerprint(project, ["prepare.py"])
    served = Loop(project, approve="runs")
    try:
        client = ControlClient(project)
        client.connect()
        with pytest.raises(ControlRefused, match=f"a note is at most {NOTE_MAX_CHARS:,} characters"):
            client.add_note("x" * 100_000)
        client.close()
        said = arsup("--dir", str(project), "note", "y" * (NOTE_MAX_CHARS + 1), cwd=tmp_path)
        assert said.returncode == 1, said.stdout + said.stderr
        assert f"a note is at most {NOTE_MAX_CHARS:,} characters" in said.stdout and "Traceback" not in said.stderr
        assert arsup("--dir", str(project), "note", "z" * NOTE_MAX_CHARS, cwd=tmp_path).returncode == 0
        assert served.engine.notes == ["z" * NOTE_MAX_CHARS]
    finally:
        served.close()
    assert_invariants(project, protected)


def test_a_socket_that_leads_to_another_repos_loop_is_refused(tmp_path: Path) -> None:
    mine, other = make_project(tmp_path / "mine"), make_project(tmp_path / "other")
    protected = fingerprint(other, ["prepare.py"])
    served = Loop(other, approve="runs")
    planted = socket_path(mine)
    try:
        planted.parent.mkdir()
        planted.symlink_to(socket_path(other))  # a link at the socket itself
        with pytest.raises(LoopNotRunning, match=f"no arsup loop runs in {mine}: {planted} is a symbolic link"):
            ControlClient(mine).connect()
        stopped = arsup("stop", cwd=mine)
        assert stopped.returncode == 3 and f"no arsup loop runs in {mine}" in stopped.stdout, stopped.stdout
        shutil.rmtree(planted.parent)
        planted.parent.symlink_to(other / ".arsup")  # a link above it: only the loop's own word tells
        with pytest.raises(LoopNotRunning, match=f"no arsup loop runs in {mine}: {planted} leads to the loop "
                                                 f"of {other}"):
            ControlClient(mine).connect()
        assert arsup("--dir", str(mine), "kill", cwd=tmp_path).returncode == 3
        assert not served.engine.wait(1.5) and served.server.clients == 0  # not stopped: still running
        planted.parent.unlink()
    finally:
        served.close()
    assert_invariants(other, protected)
    assert git(mine, "status", "--porcelain") == ""
