"""`arsup hook stop`: an agent session's Stop hook, so that a keyless night does not end with the agent's patience.

Claude Code and Codex run it whenever the agent is about to stop, with a
JSON object on stdin; a JSON answer `{"decision": "block", "reason": ...}`
on stdout (the same for both CLIs) sends the reason back to the agent as its
next instruction. The hook asks
the project's loop, over its control socket, whether the night is over:

* No loop runs, the loop has ended (budget spent, `arsup stop`, the
  person's stop on the screen) or is paused: the agent may stop.
* Otherwise the stop is blocked with the next step ("0012 is training: call
  wait('0012'), then propose the next experiment").
* After `[agent] max_idle_blocks` blocks in a row with no new proposal, the
  agent may stop; the person is told (a notice on the loop's screen and log,
  and a message in the agent's session). The count is kept in `.arsup/`,
  as each block is a new process.

It answers in well under 200 ms: no git, no training, one connection.
"""

from __future__ import annotations

import json
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from pathlib import Path
from typing import Any, TextIO

from arsup.core.events import LoopState
from arsup.core.journal import STATE_DIR
from arsup.core.service import ControlClient, ControlRefused, LoopNotRunning
from arsup.view import SessionView

COUNT_FILE = "keyless-stop.json"
CONFIG_NAME = "arsup.toml"  # config.CONFIG_NAME, without importing the config's models
DEFAULT_MAX_IDLE_BLOCKS = 3  # AgentConfig.max_idle_blocks


def max_idle_blocks(root: Path) -> int:
    """`[agent] max_idle_blocks`, read without validating the whole config (the loop did, when it started; the
    validation's imports alone cost more than the hook's budget)."""
    try:
        with open(root / CONFIG_NAME, "rb") as handle:
            value = tomllib.load(handle).get("agent", {}).get("max_idle_blocks", DEFAULT_MAX_IDLE_BLOCKS)
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_MAX_IDLE_BLOCKS
    return value if isinstance(value, int) and value >= 0 else DEFAULT_MAX_IDLE_BLOCKS


def stop_hook(root: Path, max_idle_blocks: int, out: TextIO = sys.stdout) -> int:
    """Answer one Stop hook call for the loop in `root` (the hook's stdin is not needed: the loop decides)."""
    client = ControlClient(root, timeout=2.0)
    view = SessionView()
    try:
        for event in client.connect():
            view.apply(event)
    except (LoopNotRunning, OSError):
        return _allow(out, "")  # no night runs here: nothing to keep going for
    try:
        if view.ended is not None or view.state == LoopState.ENDED:
            return _allow(out, f"arsup: the night is over ({view.ended.reason if view.ended else 'ended'}).")
        if view.paused:
            return _allow(out, "arsup: the loop is paused by the person; stopping is fine.")
        blocks = _count(root, _progress(view))
        if blocks > max_idle_blocks:
            reminders = f"{max_idle_blocks} reminder{'' if max_idle_blocks == 1 else 's'}"
            said = (f"the agent stopped after {reminders} without a new proposal; "
                    "the loop waits for a proposal (arsup mcp) or for `arsup stop`")
            try:
                client.request("tell", text=said)
            except (ControlRefused, OSError):
                pass
            _count(root, _progress(view), reset=True)
            return _allow(out, f"arsup: {said}.")
        json.dump({"decision": "block", "reason": next_step(view)}, out)
        out.write("\n")
        return 0
    finally:
        client.close()


def next_step(view: SessionView) -> str:
    """What the agent should do now, as the instruction that replaces its stop."""
    training = [e.id for e in view.training]
    queued = [e.id for e in view.queued]
    if training:
        first = training[0]
        ahead = f" ({', '.join(queued)} queued)" if queued else ""
        return (f"The arsup night is not over: {first} is training{ahead}. Call the arsup tool wait('{first}'), "
                "then edit the working copy and propose the next experiment.")
    if queued:
        return (f"The arsup night is not over: {queued[0]} is queued. Call wait('{queued[0]}'), then propose the "
                "next experiment.")
    return ("The arsup night is not over and the loop waits for your next proposal: call brief if you need the "
            "history, edit the working copy, then call propose with your hypothesis.")


def _progress(view: SessionView) -> str:
    """What changes when the agent proposes: the experiments known to the loop."""
    ids = [e.id for e in [*view.history, *view.training, *view.queued]]
    return f"{len(ids)}:{max(ids, default='')}"


def _count(root: Path, progress: str, reset: bool = False) -> int:
    """The blocks in a row at this progress, this one included (a new proposal starts the count again)."""
    path = root / STATE_DIR / COUNT_FILE
    try:
        kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    blocks = 0 if reset else (int(kept.get("blocks", 0)) + 1 if kept.get("progress") == progress else 1)
    path.write_text(json.dumps({"progress": progress, "blocks": blocks}), encoding="utf-8")
    return blocks


def _allow(out: TextIO, message: str) -> int:
    if message:
        json.dump({"systemMessage": message}, out)
        out.write("\n")
    return 0
