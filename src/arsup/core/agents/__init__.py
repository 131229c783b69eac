"""Proposal makers behind one protocol (`base.Agent`); `create_agent` picks one from the config.

Agents are imported only when chosen: optuna (the tuner) and litellm (the LLM)
are heavy, and `arsup --help` must stay fast.
"""

from __future__ import annotations

from pathlib import Path

from arsup.config import Config, ConfigError
from arsup.core.agents.base import Agent


def create_agent(config: Config, root: Path) -> Agent:
    kind = config.agent.kind
    if kind == "tuner":
        from arsup.core.agents.tuner import TunerAgent

        try:
            return TunerAgent(space=config.agent.space, seed=config.project.seed)
        except ValueError as exc:
            raise ConfigError(f"[agent.space]: {exc}") from None
    if kind.startswith("script:"):
        from arsup.core.agents.script import ScriptAgent

        try:
            return ScriptAgent(root / config.agent.script_path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    raise ConfigError(f"[agent] kind: {kind!r} is not available in this version of arsup; use tuner or script:FILE")
