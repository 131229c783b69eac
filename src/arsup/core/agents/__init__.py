"""Proposal makers behind one protocol (`base.Agent`); `create_agent` picks one from the config.

Agents are imported only when chosen: optuna (the tuner) and litellm (the LLM)
are heavy, and `arsup --help` must stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from arsup.config import AGENT_KINDS, CLI_AGENT_KINDS, Config, ConfigError
from arsup.core.agents.base import Agent
from arsup.core.agents.roster import Roster


def create_agent(config: Config, root: Path) -> Agent:
    """The night's researcher; several kinds come as one `Roster`, whose proposals alternate between them."""
    kinds = config.agent.kinds
    if len(kinds) == 1:
        return _one(config, root, kinds[0])
    return Roster([_one(config, root, kind) for kind in kinds])


def _one(config: Config, root: Path, kind: str) -> Agent:
    if kind == "external":  # proposals come over the control socket (arsup mcp)
        from arsup.core.agents.external import ExternalAgent

        return ExternalAgent()
    if kind == "tuner":
        from arsup.core.agents.tuner import TunerAgent

        try:
            return TunerAgent(space=config.agent.space, seed=config.project.seed)
        except ValueError as exc:
            raise ConfigError(f"[agent.space]: {exc}") from None
    if kind.startswith("script:"):
        from arsup.core.agents.script import ScriptAgent

        try:
            return ScriptAgent(root / kind.partition(":")[2])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if kind == "llm":
        from arsup.core.agents.llm import LLMAgent
        from arsup.core.agents.llm_client import LLMClient

        agent = config.agent
        model = agent.model_for(kind) or os.environ.get("ARSUP_MODEL", "")
        if not model:
            raise ConfigError(
                "[agent] model: the llm agent needs a model; set it in arsup.toml, with --model "
                "or in ARSUP_MODEL (e.g. anthropic/claude-sonnet-4-5, or openai/NAME with --api-base)"
            )
        client = LLMClient(
            model,
            api_base=agent.api_base,
            temperature=agent.temperature,
            max_tokens=agent.max_tokens,
            deadline_s=agent.timeout_for(kind),
            retries=agent.retries,
            context_tokens=agent.context_tokens,
        )
        return LLMAgent(client, config.project.editable, config.project.protected)
    if kind in CLI_AGENT_KINDS:
        return _cli_agent(config, root, kind)
    raise ConfigError(f"[agent] kind: {kind!r} is unknown; use {', '.join(AGENT_KINDS)}")


def _cli_agent(config: Config, root: Path, kind: str) -> Agent:
    """A coding agent CLI; its command is the command line of kind "command", the CLI's path for the others."""
    from arsup.core.agents.cli_agent import CLIAgent, CLIAgentError, Dialect
    from arsup.core.agents.command import CommandDialect, program_of

    agent, project = config.agent, config.project
    dialect: Dialect
    program, model = agent.command_for(kind), agent.model_for(kind)
    if kind == "claude-code":
        from arsup.core.agents.claude_code import ClaudeCodeDialect

        dialect = ClaudeCodeDialect()
    elif kind == "codex":
        from arsup.core.agents.codex import CodexDialect

        dialect = CodexDialect(model=model)
    else:
        if not program_of(program):
            raise ConfigError(
                '[agent] command: kind "command" needs the command line, e.g. '
                '"aider --yes --message-file {prompt_file} {files}"'
            )
        dialect, program = CommandDialect(program), program_of(program)
    made = CLIAgent(
        dialect, project.editable, project.protected, program=program, model=model,
        timeout=agent.timeout_for(kind), session=agent.session, allow_shell=agent.allow_shell, retries=agent.retries,
        hidden=[root.resolve()],
    )
    try:
        made.find_program()  # a missing CLI is said before the night starts, not after the baseline's runs
    except CLIAgentError as exc:
        raise ConfigError(str(exc)) from None
    return made
