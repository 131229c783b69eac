"""The real Claude Code and Codex CLIs, run offline against the scripted servers of tests/agent_servers.py.

Invariant: no test reaches the network, a real account, or a real ``~/.claude`` / ``~/.codex``. The
fixtures below give each test its own HOME (and CODEX_HOME) in its temp folder, drop every
``ANTHROPIC_*``, ``CLAUDE*``, ``OPENAI_*`` and ``CODEX_*`` variable of the caller (a developer's key, or
the variables Claude Code sets when the tests run inside it), and point the CLI at a server on 127.0.0.1.

The CLIs come from ``tools/install-agent-clis`` (``<checkout>/.agent-clis``, what CI uses) or else from
PATH; where neither has one, the test is skipped with the install command. Use::

    @pytest.mark.slow
    def test_something(claude_cli: ClaudeCli, tmp_path: Path) -> None:
        claude_cli.server.push(tool("Edit", file_path=..., old_string=..., new_string=...), answer("Done."))
        done = run_cli([claude_cli.binary, "-p", "...", *STREAM_JSON], cwd=tmp_path)
        assert events(done.stdout)[-1]["total_cost_usd"] > 0

The fixtures set the environment in ``os.environ`` (monkeypatched), so code under test that starts
the CLI with the caller's environment, as arsup's agents do, gets the offline one. ``codex_cli`` also
writes ``$CODEX_HOME/config.toml`` (a model provider ``scripted`` whose ``base_url`` is the server,
``wire_api = "responses"``) and puts Codex's sandbox helper on PATH: Codex makes that helper itself
under CODEX_HOME, but not under /tmp, where pytest's temp folders are.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent_servers import AnthropicServer, ResponsesServer

CHECKOUT = Path(__file__).resolve().parents[1]
INSTALLED = CHECKOUT / ".agent-clis" / "node_modules" / ".bin"
INSTALL_HINT = "install the pinned CLIs with tools/install-agent-clis (npm, into .agent-clis/)"
STREAM_JSON = ("--output-format", "stream-json", "--verbose")  # claude -p: one JSON event a line
CODEX_MODEL = "test-model"
CODEX_KEY_VAR = "SCRIPTED_API_KEY"  # the scripted provider's env_key
_CALLERS_VARS = ("ANTHROPIC_", "CLAUDE", "OPENAI_", "CODEX_")


def find_cli(name: str) -> Path | None:
    """The checkout's installed ``name`` (``claude``, ``codex``), else the one on PATH, else None."""
    local = INSTALLED / name
    if local.exists():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def require_cli(name: str) -> Path:
    """``find_cli(name)``, or skip the test saying how to install it."""
    found = find_cli(name)
    if found is None:
        pytest.skip(f"the {name} CLI is not installed (no .agent-clis/, none on PATH): {INSTALL_HINT}")
    return found


def codex_native(codex: Path) -> Path | None:
    """The native binary behind the ``codex`` node wrapper (``bin/codex.js``), or None if not found."""
    package = codex.resolve().parents[1]  # .../@openai/codex
    scopes = (package.parent, package / "node_modules" / "@openai")  # npm's flat layout, or nested
    for scope in scopes:
        for binary in sorted(scope.glob("codex-linux-*/vendor/*/bin/codex")):
            return binary
    return None


def offline_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Clear the caller's agent variables and give the CLIs ``home`` as HOME; 127.0.0.1 bypasses proxies. Once per
    test: a second CLI's fixture in the same test (both CLIs at once) must not clear what the first one set."""
    if os.environ.get("HOME") == str(home):
        return
    for name in list(os.environ):
        if name.startswith(_CALLERS_VARS):
            monkeypatch.delenv(name)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@dataclass(frozen=True)
class ClaudeCli:
    binary: Path
    server: AnthropicServer
    home: Path


@dataclass(frozen=True)
class CodexCli:
    binary: Path
    server: ResponsesServer
    home: Path  # CODEX_HOME is home / ".codex"


@pytest.fixture
def claude_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClaudeCli]:
    """Claude Code with a fake key, talking only to a scripted AnthropicServer (no other traffic), and
    no retries of a failed request (a test that wants them sets CLAUDE_CODE_MAX_RETRIES itself)."""
    binary = require_cli("claude")
    home = tmp_path / "agent-home"
    offline_env(monkeypatch, home)
    with AnthropicServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "fake")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.origin)
        monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")  # no telemetry, update or hello
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")  # else a 401 or 500 is retried 10 times, for minutes
        yield ClaudeCli(binary, server, home)


@pytest.fixture
def codex_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CodexCli]:
    """Codex with a scripted ResponsesServer as its model provider (no retries of a failed request: else
    each is tried 5 times more) and its sandbox helper on PATH."""
    binary = require_cli("codex")
    home = tmp_path / "agent-home"
    offline_env(monkeypatch, home)
    codex_home = home / ".codex"
    codex_home.mkdir()
    native = codex_native(binary)
    if native is not None:
        helpers = tmp_path / "codex-helpers"
        helpers.mkdir()
        (helpers / "codex-linux-sandbox").symlink_to(native)  # Codex picks its role from argv[0]
        monkeypatch.setenv("PATH", f"{helpers}{os.pathsep}{os.environ.get('PATH', '')}")
    with ResponsesServer() as server:
        (codex_home / "config.toml").write_text(
            f'model = "{CODEX_MODEL}"\nmodel_provider = "scripted"\n\n[model_providers.scripted]\n'
            f'name = "scripted"\nbase_url = "{server.base_url}"\nwire_api = "responses"\n'
            f'env_key = "{CODEX_KEY_VAR}"\nrequest_max_retries = 0\nstream_max_retries = 0\n'
        )
        monkeypatch.setenv("CODEX_HOME", str(codex_home))
        monkeypatch.setenv(CODEX_KEY_VAR, "fake")
        yield CodexCli(binary, server, home)


def run_cli(command: Sequence[str | Path], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a CLI with no stdin (Codex waits on an open one) in its own process group; at the timeout the
    whole group is killed (the ``codex`` wrapper's native child too) and TimeoutExpired raised."""
    proc = subprocess.Popen(
        [str(part) for part in command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def events(stdout: str) -> list[dict[str, Any]]:
    """The JSON events of a ``--output-format stream-json`` / ``--json`` stdout, one a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def transcript(root: Path, experiment: Any) -> list[dict[str, Any]]:
    """A coding agent's transcript as the engine keeps it: `agent.jsonl` beside the experiment's runs (the journal
    records where), one event a line, and only under the project's state folder."""
    path = root / experiment.agent_data["transcript"]
    assert path.parent == root / ".arsup" / "runs" / experiment.id, path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
