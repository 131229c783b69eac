"""The scripted agent API servers over plain HTTP: the shapes the real CLIs read (tests/core/agents/
test_agent_clis.py runs the CLIs themselves), checked without them so a server change fails here first."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.agent_servers import AnthropicServer, ResponsesServer, answer, error, tool


def post(url: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read().decode()


def sse(text: str) -> list[tuple[str, dict]]:
    """(event name, data) of each event of an SSE body."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_anthropic_streams_text_then_a_tool_use_and_stops_for_the_tool() -> None:
    with AnthropicServer() as server:
        server.push(tool("Edit", text="Editing.", file_path="/w/a.py", old_string="1", new_string="2"))
        status, body = post(f"{server.origin}/v1/messages?beta=true", {"model": "m", "stream": True})
        assert status == 200
        names = [name for name, _ in sse(body)]
        block = ["content_block_start", "content_block_delta", "content_block_stop"]
        assert names == ["message_start", *block, *block, "message_delta", "message_stop"]
        events = [data for _, data in sse(body)]
        assert events[1]["content_block"] == {"type": "text", "text": ""}
        assert events[2]["delta"] == {"type": "text_delta", "text": "Editing."}
        assert events[4]["content_block"]["name"] == "Edit" and events[4]["content_block"]["id"].startswith("toolu_")
        arguments = json.loads(events[5]["delta"]["partial_json"])
        assert arguments == {"file_path": "/w/a.py", "old_string": "1", "new_string": "2"}
        assert events[7]["delta"]["stop_reason"] == "tool_use"
        assert server.turns == [{"model": "m", "stream": True}]


def test_anthropic_errors_in_its_own_shape_and_answers_its_hello() -> None:
    with AnthropicServer() as server:
        server.push(error(401))
        assert post(f"{server.origin}/v1/messages", {}) == (
            401,
            json.dumps({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        )
        status, body = post(f"{server.origin}/v1/messages", {})  # nothing queued
        assert status == 500 and json.loads(body)["error"]["type"] == "api_error"
        hello = urllib.request.Request(f"{server.origin}/api/hello", method="HEAD")
        with urllib.request.urlopen(hello, timeout=10) as response:
            assert response.status == 200
        assert len(server.requests) == 3 and len(server.turns) == 2


@pytest.mark.parametrize("turn, stop", [(answer("Done."), "end_turn"), (tool("Read", file_path="/a"), "tool_use")])
def test_anthropic_stop_reason_says_whether_a_tool_waits(turn: object, stop: str) -> None:
    with AnthropicServer() as server:
        server.push(turn)
        _, body = post(f"{server.origin}/v1/messages", {"stream": True})
        assert sse(body)[-2][1]["delta"]["stop_reason"] == stop


def test_responses_streams_a_function_call_and_a_message_with_usage() -> None:
    with ResponsesServer() as server:
        server.push(tool("exec_command", text="Running.", cmd="ls"))
        status, body = post(f"{server.base_url}/responses", {"model": "m", "stream": True})
        assert status == 200
        events = sse(body)
        assert [name for name, _ in events] == [
            "response.created",
            "response.output_item.done",
            "response.output_item.done",
            "response.completed",
        ]
        message, call = events[1][1]["item"], events[2][1]["item"]
        assert message["type"] == "message" and message["content"][0]["text"] == "Running."
        assert call["type"] == "function_call" and call["name"] == "exec_command"
        assert json.loads(call["arguments"]) == {"cmd": "ls"} and call["call_id"].startswith("call_")
        done = events[3][1]["response"]
        assert done["status"] == "completed" and done["output"] == [message, call]
        assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]


def test_responses_errors_as_openai_does() -> None:
    with ResponsesServer() as server:
        server.push(error(401))
        status, body = post(f"{server.base_url}/responses", {})
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        status, body = post(f"{server.base_url}/chat/completions", {})  # not this server's endpoint
        assert status == 404 and server.turns == [{}]
