"""Scripted API servers that the real Claude Code and Codex CLIs talk to in tests.

Standard library only, built on tests/openai_server.py (its connection handling, recording and
``close``). Each server answers its CLI's turn endpoint with the next scripted behaviour, in order,
and records every request (``server.requests``; ``server.turns`` holds only the turn bodies)::

    with AnthropicServer() as server:
        server.push(tool("Edit", file_path=str(path), old_string="x = 1", new_string="x = 2"), answer("Done."))
        subprocess.run([claude, "-p", "..."], env={..., "ANTHROPIC_BASE_URL": server.origin})
        assert [t["name"] for t in server.turns[0]["tools"]] == ["Edit", "Read", "Write"]

* AnthropicServer: ``POST /v1/messages`` (Claude Code adds ``?beta=true``), answered as an SSE stream of
  the Messages API (``message_start``, content blocks with ``text_delta`` / ``input_json_delta``,
  ``message_delta`` with the stop reason, ``message_stop``). ``HEAD /api/hello``, Claude Code's
  connectivity check, gets a 200.
* ResponsesServer: ``POST /v1/responses``, answered as an SSE stream of the OpenAI Responses API
  (``response.created``, ``response.output_item.done`` per item, ``response.completed`` with usage).

Behaviours, the same for both: ``answer(text)`` a final text turn; ``tool(name, **input)`` a turn that
calls one tool (a ``tool_use`` block; a ``function_call`` whose arguments are ``input`` as JSON, and
whose ``namespace`` is what comes before a ``/`` in the name: Codex offers an MCP server's tools as one
namespace, so ``tool("mcp__arsup/brief")`` calls arsup's ``brief``);
``error(status, message="", retry_after=None)`` that status with the API's own error body (OpenAI's
defaults per status as in tests/openai_server.py; Anthropic's ``{"type": "error", "error": {...}}``);
``hang(seconds)`` silent, then the connection drops (a timeout test kills the CLI long before). With
nothing queued: a 500 in the API's error shape, so the unexpected call shows.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from tests.openai_server import Error, OpenAIServer, Stall, _Handler, error, stall

__all__ = ["AnthropicServer", "ResponsesServer", "Turn", "answer", "error", "hang", "tool"]

_ids = itertools.count(1)


@dataclass(frozen=True)
class Turn:
    """One model turn: optional text, then tool calls (name, input) in order."""

    text: str = ""
    calls: tuple[tuple[str, dict[str, Any]], ...] = field(default_factory=tuple)
    input_tokens: int = 100
    output_tokens: int = 20


def answer(text: str) -> Turn:
    """A final turn: the model says ``text`` and stops."""
    return Turn(text=text)


def tool(name: str, text: str = "", **arguments: Any) -> Turn:
    """A turn that calls tool ``name`` with ``arguments`` (after saying ``text``, if any)."""
    return Turn(text=text, calls=((name, arguments),))


def hang(seconds: float) -> Stall:
    """No answer for ``seconds``, then the connection drops."""
    return stall(seconds)


class _ScriptedHandler(_Handler):
    """Plays Turn, Error and Stall; a subclass writes its API's stream (and error body: OpenAI's by default)."""

    def _play(self, behaviour: Any, body: dict) -> None:
        if behaviour is None:
            self._play_error(Error(500, "no scripted reply left"))
        elif isinstance(behaviour, Error):
            self._play_error(behaviour)
        elif isinstance(behaviour, Stall):
            self._play_stall(body, False, behaviour)
        else:
            self._start_stream()
            self._stream(behaviour, str(body.get("model") or "test-model"))
            self._write(b"0\r\n\r\n")

    def _sse(self, name: str, payload: dict) -> None:
        self._chunk(b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(payload).encode()))

    def _stream(self, turn: Turn, model: str) -> None:
        raise NotImplementedError


_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: test-model"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    529: ("overloaded_error", "Overloaded"),
}


class _AnthropicHandler(_ScriptedHandler):
    endpoint = "/v1/messages"

    def do_HEAD(self) -> None:  # noqa: N802 - Claude Code's connectivity check (HEAD /api/hello)
        self._record(None)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _play_error(self, err: Error) -> None:
        kind, default = _ANTHROPIC_ERRORS.get(err.status, ("api_error", "Internal server error"))
        headers = {} if err.retry_after is None else {"retry-after": str(err.retry_after)}
        body = {"type": "error", "error": {"type": kind, "message": err.message or default}}
        self._send_json(err.status, body, headers)

    def _stream(self, turn: Turn, model: str) -> None:
        message = {"id": f"msg_{next(_ids)}", "type": "message", "role": "assistant", "model": model, "content": []}
        message |= {"stop_reason": None, "stop_sequence": None}
        message["usage"] = {"input_tokens": turn.input_tokens, "output_tokens": 1}
        self._sse("message_start", {"type": "message_start", "message": message})
        blocks: list[tuple[dict, dict]] = []
        if turn.text:
            blocks.append(({"type": "text", "text": ""}, {"type": "text_delta", "text": turn.text}))
        for name, arguments in turn.calls:
            start = {"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": name, "input": {}}
            blocks.append((start, {"type": "input_json_delta", "partial_json": json.dumps(arguments)}))
        for index, (start, delta) in enumerate(blocks):
            self._sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
            self._sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
        stop = {"stop_reason": "tool_use" if turn.calls else "end_turn", "stop_sequence": None}
        usage = {"output_tokens": turn.output_tokens}
        self._sse("message_delta", {"type": "message_delta", "delta": stop, "usage": usage})
        self._sse("message_stop", {"type": "message_stop"})


class _ResponsesHandler(_ScriptedHandler):
    endpoint = "/responses"

    def _stream(self, turn: Turn, model: str) -> None:
        response = {"id": f"resp_{next(_ids)}", "object": "response", "model": model, "status": "in_progress"}
        self._sse("response.created", {"type": "response.created", "response": response})
        items: list[dict] = []
        if turn.text:
            content = [{"type": "output_text", "text": turn.text, "annotations": []}]
            items.append({"type": "message", "id": f"msg_{next(_ids)}", "role": "assistant", "content": content})
        for name, arguments in turn.calls:
            call = {"type": "function_call", "id": f"fc_{next(_ids)}", "call_id": f"call_{next(_ids)}"}
            namespace, _, name = name.rpartition("/")
            call |= {"namespace": namespace} if namespace else {}
            items.append(call | {"name": name, "arguments": json.dumps(arguments)})
        for index, item in enumerate(items):
            done_item = {"type": "response.output_item.done", "output_index": index, "item": item}
            self._sse("response.output_item.done", done_item)
        usage = {"input_tokens": turn.input_tokens, "input_tokens_details": {"cached_tokens": 0}}
        usage |= {"output_tokens": turn.output_tokens, "output_tokens_details": {"reasoning_tokens": 0}}
        usage["total_tokens"] = turn.input_tokens + turn.output_tokens
        done = response | {"status": "completed", "output": items, "usage": usage}
        self._sse("response.completed", {"type": "response.completed", "response": done})


class _ScriptedServer(OpenAIServer):
    behaviours = (Turn, Error, Stall)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without the API's ``/v1``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def turns(self) -> list[dict]:
        """The bodies the CLI posted to the turn endpoint, in order."""
        endpoint = self.handler.endpoint
        return [r["body"] for r in self.requests if r["path"].split("?")[0].rstrip("/").endswith(endpoint)]


class AnthropicServer(_ScriptedServer):
    """The Anthropic Messages API, streamed; point ``ANTHROPIC_BASE_URL`` at ``origin``."""

    handler = _AnthropicHandler


class ResponsesServer(_ScriptedServer):
    """The OpenAI Responses API, streamed; a Codex model provider's ``base_url`` is ``base_url``."""

    handler = _ResponsesHandler
