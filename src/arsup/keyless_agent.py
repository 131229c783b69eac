"""`arsup agent claude` / `arsup agent codex`: your own interactive CLI, set up to be the night's researcher.

One folder outside the project holds the agent's configuration and, beside
it, the working copy `arsup mcp` fills from the best commit (the copy is
emptied and refilled after each proposal, so nothing of the CLI's may live
in it). For Claude Code: `.mcp.json` (the arsup server) and
`.claude/settings.json` (edits of the editable files in the copy allowed,
the protected ones denied, no shell unless `[agent] allow_shell`, arsup's
tools allowed, and the Stop hook). For Codex: the MCP server entry with its
tools approved, the Stop hook and the workspace-write sandbox, as options
of its command line. Then the CLI
starts in that folder with a first message that explains the loop.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from arsup.config import Config
from arsup.keyless import default_work

TOOLS = ("brief", "propose", "wait", "history", "log", "status")
FIRST_MESSAGE = """\
You are the researcher of an arsup night on {project}. arsup trains each experiment you propose for a fixed \
budget, keeps it only when it beats the best beyond the noise, and refuses edits of protected files. \
Call the arsup tool brief first: it fills your working copy ({work}) with the best code and tells you the \
instructions, the history and the rule. Then loop, without asking me: edit the editable files in the working \
copy, call propose with your hypothesis, call wait for the verdict (you may prepare the next idea while one \
trains), learn from it, and propose again. Do not train, commit or change seeds: arsup does that. Keep going \
until arsup says the night is over."""


@dataclass
class Setup:
    folder: Path  # the CLI's working directory: its configuration, and the working copy inside
    work: Path  # the working copy arsup mcp fills
    argv: list[str]  # the interactive CLI, ready to start in `folder`


def mcp_command(root: Path, work: Path) -> list[str]:
    """How a CLI starts `arsup mcp` for this project (this interpreter: the CLI's PATH may lack arsup)."""
    return [sys.executable, "-m", "arsup", "mcp", "--dir", str(root), "--work", str(work)]


def hook_command(root: Path) -> str:
    return shlex.join([sys.executable, "-m", "arsup", "hook", "stop", "--dir", str(root)])


def first_message(root: Path, work: Path) -> str:
    return FIRST_MESSAGE.format(project=root.name, work=work)


def prepare(kind: str, root: Path, cfg: Config, program: str = "") -> Setup:
    """Write the agent's configuration for `kind` ("claude" or "codex"); the command that starts it."""
    root = root.resolve()
    work = default_work(root)
    folder = work.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    work.mkdir(exist_ok=True)
    if kind == "claude":
        write_claude(folder, root, work, cfg)
        # named, not only found: Claude Code reads neither file of an untrusted folder unasked (print mode never)
        argv = [program or "claude", "--mcp-config", str(folder / ".mcp.json"),
                "--settings", str(folder / ".claude" / "settings.json"), first_message(root, work)]
    else:
        argv = codex_argv(program or "codex", folder, root, work)
    return Setup(folder, work, argv)


def write_claude(folder: Path, root: Path, work: Path, cfg: Config) -> None:
    """`.mcp.json` and `.claude/settings.json` in `folder` (Claude Code reads both from its working directory)."""
    command = mcp_command(root, work)
    servers = {"mcpServers": {"arsup": {"type": "stdio", "command": command[0], "args": command[1:]}}}
    (folder / ".mcp.json").write_text(json.dumps(servers, indent=2) + "\n", encoding="utf-8")
    copy = work.relative_to(folder).as_posix()
    project = cfg.project
    allow = [f"mcp__arsup__{name}" for name in TOOLS] + ["Read", "Glob", "Grep"]
    allow += [f"{verb}(./{copy}/{pattern})" for pattern in project.editable for verb in ("Edit", "Write")]
    deny = [f"{verb}(./{copy}/{pattern})" for pattern in project.protected for verb in ("Edit", "Write")]
    if not cfg.agent.allow_shell:
        deny.append("Bash")
    settings = {
        "permissions": {"allow": allow, "deny": deny},
        "enabledMcpjsonServers": ["arsup"],
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": hook_command(root), "timeout": 10}]}]},
    }
    (folder / ".claude").mkdir(exist_ok=True)
    (folder / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def codex_argv(program: str, folder: Path, root: Path, work: Path) -> list[str]:
    """Codex with arsup's MCP server, its tools approved (a night asks no one each call), arsup's Stop hook, and
    a sandbox that may write the working copy only (its folder).

    Codex runs a hook only once a person has trusted it in `/hooks`, and says nothing while it does not: the
    night would end at the agent's first "I am out of ideas". arsup passes its own hook here, on the command
    line, so it starts Codex with `--dangerously-bypass-hook-trust` (automation that vets its hook, as the
    flag's help says). `arsup agent codex --no-start` prints the command for anyone who would rather drop
    the flag and trust the hook in `/hooks`."""
    command = mcp_command(root, work)
    stop = json.dumps(hook_command(root))  # a JSON string is a TOML basic string
    return [
        program, "--cd", str(folder), "--sandbox", "workspace-write", "--dangerously-bypass-hook-trust",
        "-c", f"mcp_servers.arsup.command={json.dumps(command[0])}",
        "-c", f"mcp_servers.arsup.args={json.dumps(command[1:])}",
        "-c", 'mcp_servers.arsup.default_tools_approval_mode="approve"',
        "-c", f'hooks.Stop=[{{hooks=[{{type="command", command={stop}, timeout=10}}]}}]',
        first_message(root, work),
    ]


def start(setup: Setup) -> int:
    """Replace this process by the interactive CLI (it owns the terminal from here); 2 when it is not installed."""
    found = shutil.which(setup.argv[0])
    if found is None:
        print(f"arsup: `{setup.argv[0]}` is not installed or not on PATH; the configuration is written in "
              f"{setup.folder}", file=sys.stderr)
        return 2
    os.chdir(setup.folder)
    os.execv(found, [found, *setup.argv[1:]])
    return 0  # not reached
