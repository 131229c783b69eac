"""The experiment loop: `Engine` is its façade, the only name the rest of arsup imports from here."""

from arsup.core.loop.engine import KILLED_BY_USER, Engine
from arsup.core.loop.flags import STOPPED_BY_USER
from arsup.core.loop.proposer import AgentFailed

__all__ = ["KILLED_BY_USER", "STOPPED_BY_USER", "AgentFailed", "Engine"]
