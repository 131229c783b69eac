"""The scripted OpenAI server, driven through litellm the way the LLM agent drives it.

These tests also pin down what litellm (1.110, with openai 3.x underneath) does, so a
litellm upgrade that changes it fails here first:

* Error classes (provider ``openai/``, same for streaming and not): 400 with OpenAI's
  "This model's maximum context length is ..." wording -> ContextWindowExceededError
  (litellm matches the *message*; ``code: context_length_exceeded`` alone gives a plain
  BadRequestError); other 400 -> BadRequestError; 401 -> AuthenticationError; 403 ->
  plain litellm.APIError (not PermissionDeniedError); 404 -> NotFoundError; 429 ->
  RateLimitError (``exc.response.headers["retry-after"]`` carries Retry-After); 500 ->
  InternalServerError; 502 -> BadGatewayError; 503 -> ServiceUnavailableError.
* Retries: by default the openai client inside litellm retries 429/5xx/timeouts/
  connection errors twice (3 requests). ``num_retries=0`` (or ``max_retries=0``) makes
  it one request. ``num_retries=N>0`` also sets the openai client's retries to N and, when
  they fail, litellm tries its own retry loop, which needs ``tenacity``; without it the
  real error is replaced by a bare ``Exception("tenacity import failed ...")``.
* ``timeout=T`` is an httpx timeout per operation, i.e. an *inactivity* limit: a stream
  that goes silent for T raises litellm.Timeout while iterating (after the text already
  sent was delivered), a non-streamed call that gets no answer for T raises it from
  completion(); a stream that trickles (each gap < T) is never cut, however long it takes.
  A stream that is dropped mid-body raises litellm.exceptions.MidStreamFallbackError (a
  litellm.ServiceUnavailableError; not exported at litellm's top level); a non-streamed call whose connection is dropped without an
  answer raises InternalServerError ("Connection error.").
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: no network
os.environ["LITELLM_MODE"] = "PRODUCTION"  # no .env loading

import importlib.util
import json
import threading
import time
from typing import Any

import httpx
import litellm
import pytest
from litellm.exceptions import MidStreamFallbackError  # not exported as litellm.MidStreamFallbackError

from tests.openai_server import (
    CONTEXT_LENGTH_MESSAGE,
    OpenAIServer,
    error,
    huge,
    huge_text,
    reply,
    stall,
    trickle,
)

pytestmark = pytest.mark.slow  # litellm over real HTTP with real timeouts: 5 s to import litellm

litellm.suppress_debug_info = True  # litellm prints "Give Feedback" banners to stdout otherwise

MESSAGES = [
    {"role": "system", "content": "You are a careful ML researcher."},
    {"role": "user", "content": "Propose one change to train.py."},
]


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv
        started = time.monotonic()
    assert time.monotonic() - started < 1.0, "close() must be prompt"
    assert srv.errors == [], f"the server's handlers failed: {srv.errors!r}"


def complete(srv: OpenAIServer, *, stream: bool = False, timeout: float = 5.0, messages=MESSAGES, **extra: Any):
    kwargs: dict[str, Any] = {
        "model": "openai/test-model",
        "api_base": srv.base_url,
        "api_key": "sk-test",
        "messages": messages,
        "num_retries": 0,
        "timeout": timeout,
    }
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    kwargs.update(extra)
    return litellm.completion(**kwargs)


class Collected:
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.usage: Any = None
        self.finish_reasons: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def consume(response: Any, into: Collected | None = None) -> Collected:
    """Iterate a litellm stream; text received before an exception stays in ``into``."""
    got = into if into is not None else Collected()
    for chunk in response:
        if getattr(chunk, "usage", None):
            got.usage = chunk.usage
        if chunk.choices:
            if chunk.choices[0].delta.content:
                got.deltas.append(chunk.choices[0].delta.content)
            if chunk.choices[0].finish_reason:
                got.finish_reasons.append(chunk.choices[0].finish_reason)
    return got


# --------------------------------------------------------------------------- replies


def test_non_streaming_reply_with_usage(server: OpenAIServer) -> None:
    server.push(reply("Lower the learning rate to 3e-3.", prompt_tokens=123, completion_tokens=9))
    response = complete(server)
    assert response.choices[0].message.content == "Lower the learning rate to 3e-3."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (123, 9)
    assert response.usage.total_tokens == 132


def test_default_token_counts_are_rough_estimates(server: OpenAIServer) -> None:
    server.push(reply("x" * 40))
    response = complete(server, messages=[{"role": "user", "content": "y" * 100}])
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (25, 10)


def test_streaming_reply_reassembles_and_carries_usage(server: OpenAIServer) -> None:
    text = "Set WIDTH = 96 and DEPTH = 6; keep the warmup at 5% of the steps.\nThen rerun."
    server.push(reply(text, prompt_tokens=50, completion_tokens=20))
    got = consume(complete(server, stream=True))
    assert got.text == text
    assert len(got.deltas) >= 3, "the text should arrive in several pieces"
    assert got.finish_reasons[-1] == "stop"
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (50, 20)


def test_behaviours_are_played_in_order(server: OpenAIServer) -> None:
    server.push(reply("one"), reply("two"))
    server.push(reply("three"))
    answers = [complete(server).choices[0].message.content for _ in range(2)]
    answers.append(consume(complete(server, stream=True)).text)
    assert answers == ["one", "two", "three"]
    assert server.pending == 0


def test_concurrent_requests_each_take_one_behaviour(server: OpenAIServer) -> None:
    expected = {f"answer {i}" for i in range(12)}
    server.push(*(reply(t) for t in sorted(expected)))
    answers: list[str] = []

    def ask() -> None:
        answers.append(complete(server).choices[0].message.content)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(answers) == sorted(expected)
    assert len(server.requests) == 12


def test_requests_record_messages_and_authorization(server: OpenAIServer) -> None:
    server.push(reply("ok"), reply("ok"))
    complete(server)
    consume(complete(server, stream=True))
    first, second = server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "test-model"
    assert first["body"]["messages"] == MESSAGES
    assert not first["body"].get("stream")
    assert second["body"]["stream"] is True
    assert second["body"]["stream_options"] == {"include_usage": True}
    assert second["body"]["messages"] == MESSAGES


def test_huge_reply_streams_fully(server: OpenAIServer) -> None:
    server.push(huge(5_000_000), huge(5_000_000))
    got = consume(complete(server, stream=True, timeout=10))
    assert len(got.text) == 5_000_000
    assert got.text == huge_text(5_000_000)
    assert complete(server, timeout=10).choices[0].message.content == huge_text(5_000_000)


# --------------------------------------------------------------------------- errors

ERROR_CASES = [
    pytest.param(error(400), litellm.ContextWindowExceededError, id="400-context-length"),
    pytest.param(error(400, "Invalid value for 'temperature'.", code="invalid_value"), litellm.BadRequestError, id="400"),
    # litellm recognises an overflow by OpenAI's wording, not by the code
    pytest.param(error(400, "too big", code="context_length_exceeded"), litellm.BadRequestError, id="400-code-only"),
    pytest.param(error(401), litellm.AuthenticationError, id="401"),
    pytest.param(error(403), litellm.APIError, id="403"),  # not PermissionDeniedError for openai/
    pytest.param(error(404), litellm.NotFoundError, id="404"),
    pytest.param(error(429, retry_after=7), litellm.RateLimitError, id="429"),
    pytest.param(error(500), litellm.InternalServerError, id="500"),
    pytest.param(error(502), litellm.BadGatewayError, id="502"),
    pytest.param(error(503), litellm.ServiceUnavailableError, id="503"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("behaviour", "expected"), ERROR_CASES)
def test_errors_map_to_litellm_exceptions(server: OpenAIServer, behaviour, expected, stream: bool) -> None:
    server.push(behaviour)
    with pytest.raises(Exception) as caught:
        consume(complete(server, stream=stream))
    assert type(caught.value) is expected, f"got {type(caught.value).__name__}: {caught.value}"
    assert len(server.requests) == 1, "num_retries=0 must mean exactly one request"
    if behaviour.status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
    if behaviour.status == 400 and behaviour.code is None:
        assert "maximum context length is 8192 tokens" in str(caught.value)
        assert CONTEXT_LENGTH_MESSAGE.startswith("This model's maximum context length is")


def test_empty_queue_answers_500(server: OpenAIServer) -> None:
    with pytest.raises(litellm.InternalServerError, match="no scripted reply left"):
        complete(server)
    raw = httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert raw.status_code == 500
    assert raw.json()["error"]["message"] == "no scripted reply left"
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("no_retry", [{"num_retries": 0}, {"max_retries": 0}], ids=["num_retries", "max_retries"])
def test_zero_retries_means_one_request(server: OpenAIServer, no_retry: dict) -> None:
    server.push(error(503), reply("too late"))
    kwargs = {"model": "openai/test-model", "api_base": server.base_url, "api_key": "sk-test", "messages": MESSAGES}
    with pytest.raises(litellm.ServiceUnavailableError):
        litellm.completion(**kwargs, timeout=5, **no_retry)
    assert len(server.requests) == 1
    assert server.pending == 1
    assert server.requests[0]["headers"]["x-stainless-retry-count"] == "0"


def test_by_default_the_openai_client_retries_twice(server: OpenAIServer) -> None:
    server.push(error(500, retry_after=0.01), error(429, retry_after=0.01), reply("third time"))
    response = litellm.completion(
        model="openai/test-model", api_base=server.base_url, api_key="sk-test", messages=MESSAGES, timeout=5
    )
    assert response.choices[0].message.content == "third time"
    assert [r["headers"]["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]


@pytest.mark.skipif(importlib.util.find_spec("tenacity") is not None, reason="tenacity is installed")
def test_positive_num_retries_without_tenacity_hides_the_error(server: OpenAIServer) -> None:
    server.push(error(500), error(500))
    with pytest.raises(Exception, match="tenacity") as caught:
        complete(server, num_retries=1)
    assert type(caught.value) is Exception
    assert len(server.requests) == 2  # the openai client did retry once


# --------------------------------------------------------------------------- slow servers


def test_stalled_stream_times_out_while_iterating(server: OpenAIServer) -> None:
    server.push(stall(10, text_before="I will now change "))
    started = time.monotonic()
    response = complete(server, stream=True, timeout=0.5)  # headers arrive: no error yet
    got = Collected()
    with pytest.raises(litellm.Timeout):
        consume(response, got)
    elapsed = time.monotonic() - started
    assert got.text == "I will now change "
    assert 0.4 < elapsed < 3.0


def test_stalled_plain_call_times_out(server: OpenAIServer) -> None:
    server.push(stall(10))
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        complete(server, timeout=0.5)
    assert 0.4 < time.monotonic() - started < 3.0


def test_stream_dropped_mid_body(server: OpenAIServer) -> None:
    server.push(stall(0.1, text_before="half an answ"))
    got = Collected()
    with pytest.raises(MidStreamFallbackError) as caught:
        consume(complete(server, stream=True), got)
    assert isinstance(caught.value, litellm.ServiceUnavailableError)
    assert got.text == "half an answ"


def test_plain_call_dropped_without_answer(server: OpenAIServer) -> None:
    server.push(stall(0.1))
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        complete(server)
    assert len(server.requests) == 1


def test_trickle_is_never_cut_by_the_read_timeout(server: OpenAIServer) -> None:
    server.push(trickle("abcdef", delay=0.08), trickle("abcdef", delay=0.08))
    started = time.monotonic()
    got = consume(complete(server, stream=True, timeout=0.3))
    assert got.text == "abcdef"
    assert got.deltas == list("abcdef")
    assert time.monotonic() - started > 0.4  # longer than the timeout, and still whole
    assert complete(server, timeout=0.3).choices[0].message.content == "abcdef"


def test_trickle_slower_than_the_timeout_times_out(server: OpenAIServer) -> None:
    server.push(trickle("abc", delay=1.0))
    with pytest.raises(litellm.Timeout):
        consume(complete(server, stream=True, timeout=0.3))


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("behaviour", [stall(30, "partial"), trickle("p" * 1000, delay=0.2)], ids=["stall", "trickle"])
def test_close_is_prompt_during_a_slow_reply(behaviour) -> None:
    srv = OpenAIServer()
    srv.push(behaviour)
    outcome: dict[str, Any] = {}
    got = Collected()

    def client() -> None:
        try:
            consume(complete(srv, stream=True, timeout=30), got)
            outcome["result"] = "finished"
        except Exception as exc:
            outcome["result"] = exc

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while not got.deltas and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got.deltas, "the first text should arrive before the server goes slow"
    assert len(srv.requests) == 1  # recorded before (and while) answering
    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 1.0
    worker.join(3)
    assert not worker.is_alive(), "the client should see the connection end"
    assert type(outcome["result"]) is MidStreamFallbackError  # the dropped stream, as in test_stream_dropped_mid_body
    assert srv.errors == []
    srv.close()  # idempotent


def test_client_hanging_up_mid_stream_is_quiet(server: OpenAIServer, capfd: pytest.CaptureFixture) -> None:
    server.push(trickle("z" * 200, delay=0.01), reply("still here"))
    response = complete(server, stream=True)
    for i, _ in enumerate(response):
        if i == 3:
            break
    response.close()
    time.sleep(0.15)  # the server keeps writing into the closed connection
    assert complete(server).choices[0].message.content == "still here"
    out, err = capfd.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert server.errors == []


def test_wire_format_of_a_stream() -> None:
    with OpenAIServer() as srv:
        srv.push(reply("hello world"), reply("hello world"))
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with_usage = httpx.post(f"{srv.base_url}/chat/completions", json={**body, "stream_options": {"include_usage": True}})
        without = httpx.post(f"{srv.base_url}/chat/completions", json=body)
    for response in (with_usage, without):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in with_usage.text.split("\n\n") if line.startswith("data: {")]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 2
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in without.text
