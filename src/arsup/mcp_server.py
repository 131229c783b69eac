"""`arsup mcp`: the keyless tools over stdio, on the official MCP Python SDK (FastMCP).

The protocol layer only: each tool is a `Keyless` method run on a worker
thread (a wait blocks for minutes; the server's event loop must keep
answering), and a `KeylessError` becomes a tool error with its one sentence.
Any other exception is arsup's own failure: it is said in a sentence too,
never as a traceback, and the server goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field

from arsup.keyless import WAIT_MAX_S, Keyless, KeylessError

INSTRUCTIONS = """\
arsup runs the experiments of this research project and keeps its rules: it trains each proposal for a fixed \
budget, keeps it only when it beats the best beyond the noise, and refuses edits of protected files. Call brief \
first; then edit the working copy it names and call propose; call wait for each verdict; keep proposing until \
arsup says the night is over."""


async def _call(method: Callable[..., str], *args: Any) -> str:
    try:
        return await anyio.to_thread.run_sync(method, *args)
    except KeylessError as exc:
        raise ToolError(str(exc)) from None
    except Exception as exc:  # arsup's own failure: one sentence, the server goes on
        raise ToolError(f"arsup failed: {' '.join(str(exc).split()) or type(exc).__name__}") from None


def build(keyless: Keyless) -> FastMCP:
    server = FastMCP("arsup", instructions=INSTRUCTIONS)

    @server.tool(description="The research brief: the instructions, the editable and protected files, the noise "
                             "floor and the keep rule in numbers, the history, the person's notes, and the working "
                             "copy to edit.")
    async def brief() -> str:
        return await _call(keyless.brief)

    @server.tool(description="Make what you changed in the working copy the next experiment. Returns its id and "
                             "place in the queue, or why it was refused; either way the working copy is reset to "
                             "the best.")
    async def propose(
        hypothesis: Annotated[str, Field(description="what you changed and why it should help, in a sentence")],
    ) -> str:
        return await _call(keyless.propose, hypothesis)

    @server.tool(description="Wait for an experiment's verdict: status, metric, gain in sigma, p-value, reason, "
                             "a crash's log tail; or where it stands (still training, 42%) when the time is up.")
    async def wait(
        id: Annotated[str, Field(description="the experiment's id, e.g. 0004")],
        timeout_s: Annotated[float, Field(description="seconds to wait at most", ge=0, le=WAIT_MAX_S)] = 60.0,
    ) -> str:
        return await _call(keyless.wait, id, timeout_s)

    @server.tool(description="The last experiments as a table (id, status, metric, change, evidence, hypothesis).")
    async def history(last: Annotated[int, Field(description="how many", ge=1, le=1000)] = 20) -> str:
        return await _call(keyless.history, last)

    @server.tool(description="The last lines of an experiment's training log.")
    async def log(
        id: Annotated[str, Field(description="the experiment's id")],
        tail: Annotated[int, Field(description="how many lines", ge=1, le=2000)] = 50,
    ) -> str:
        return await _call(keyless.log, id, tail)

    @server.tool(description="What the loop is doing now: state, what trains, counts, the best.")
    async def status() -> str:
        return await _call(keyless.status)

    return server


def serve(root: Path, work: Path | None = None) -> int:
    """Serve the tools on stdin/stdout until the client goes away."""
    keyless = Keyless(root, work)
    try:
        build(keyless).run("stdio")
    finally:
        keyless.close()
    return 0
