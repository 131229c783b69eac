"""A real, scripted OpenAI-compatible chat-completions server for tests.

Standard library only. It listens on 127.0.0.1 on an ephemeral port, speaks HTTP/1.1
(``Content-Length`` bodies for plain JSON, ``Transfer-Encoding: chunked`` for SSE
streams) and answers each ``POST .../chat/completions`` with the next scripted
behaviour, in order, across requests::

    with OpenAIServer() as server:
        server.push(reply("hello"), error(429, retry_after=1), stall(5, "partial"))
        litellm.completion(model="openai/test-model", api_base=server.base_url,
                           api_key="sk-test", messages=[...], num_retries=0)
        assert server.requests[0]["body"]["messages"] == [...]

Behaviours:

* ``reply(text)``            a normal completion (JSON, or SSE in ~20-char pieces).
* ``error(status, ...)``     an OpenAI-style error body with that HTTP status.
* ``stall(seconds, text)``   stream ``text`` then go silent, then drop the connection
                             mid-body (no final chunk, no ``[DONE]``). Non-streaming:
                             silent, then close without any response.
* ``trickle(text, delay)``   one small piece every ``delay`` seconds, never silent long.
* ``huge(n_bytes)``          a completion whose content is ``n_bytes`` characters.

With nothing queued the server answers 500 ``{"error": {"message": "no scripted reply
left", ...}}`` so a test sees the unexpected call. It never prints: request logging is
silenced and handler failures (other than a client hanging up, which is expected and
ignored) are collected in ``server.errors`` instead of being printed as tracebacks.
``close()`` (also on ``__exit__``) returns promptly, even during a stall or trickle.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

__all__ = [
    "Behaviour",
    "Error",
    "Huge",
    "OpenAIServer",
    "Reply",
    "Stall",
    "Trickle",
    "error",
    "huge",
    "reply",
    "stall",
    "trickle",
]

STREAM_PIECE_CHARS = 20  # size of the text pieces of a streamed reply
HUGE_PIECE_CHARS = 256 * 1024  # size of the text pieces of a streamed huge reply
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 8192 tokens. However, your messages "
    "resulted in 9000 tokens. Please reduce the length of the messages."
)


# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Error:
    status: int
    message: str = ""
    retry_after: float | None = None
    code: str | None = None  # None: the usual OpenAI code for the status
    type: str | None = None  # None: the usual OpenAI type for the status


@dataclass(frozen=True)
class Stall:
    seconds: float
    text_before: str = ""


@dataclass(frozen=True)
class Trickle:
    text: str
    delay: float
    piece_chars: int = 1


@dataclass(frozen=True)
class Huge:
    n_bytes: int


Behaviour = Union[Reply, Error, Stall, Trickle, Huge]


def reply(text: str, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Reply:
    """A normal completion. Token counts default to len(text)//4 and the prompt's chars//4."""
    return Reply(text, prompt_tokens, completion_tokens)


def error(
    status: int,
    message: str = "",
    retry_after: float | None = None,
    *,
    code: str | None = None,
    type: str | None = None,  # noqa: A002 - mirrors the field of OpenAI's error body
) -> Error:
    """An OpenAI-style error body with HTTP ``status`` (and Retry-After when given).

    Defaults per status: 400 context_length_exceeded (with OpenAI's wording), 401
    invalid_api_key, 403 unsupported_country_region_territory, 404 model_not_found,
    429 rate_limit_exceeded, 5xx server_error. Pass ``code=``/``message=`` to override.
    """
    return Error(status, message, retry_after, code, type)


def stall(seconds: float, text_before: str = "") -> Stall:
    """Stream ``text_before``, go silent for ``seconds``, then drop the connection."""
    return Stall(seconds, text_before)


def trickle(text: str, delay: float, piece_chars: int = 1) -> Trickle:
    """Stream ``text`` ``piece_chars`` characters at a time, one piece every ``delay`` s."""
    if piece_chars < 1:
        raise ValueError("piece_chars must be >= 1")
    return Trickle(text, delay, piece_chars)


def huge(n_bytes: int) -> Huge:
    """A completion whose content is ``n_bytes`` ASCII characters (see ``huge_text``)."""
    return Huge(n_bytes)


def huge_text(n_bytes: int) -> str:
    """The exact content that ``huge(n_bytes)`` sends: a repeated numbered line of ASCII."""
    line = "the quick brown fox jumps over the lazy dog 0123456789\n"
    return (line * (n_bytes // len(line) + 1))[:n_bytes]


_DEFAULT_ERRORS: dict[int, tuple[str, str, str]] = {
    # status: (type, code, message)
    400: ("invalid_request_error", "context_length_exceeded", CONTEXT_LENGTH_MESSAGE),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-test. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `test-model` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for test-model on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 20s.",
    ),
    500: (
        "server_error",
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded, please try again later."),
}


# --------------------------------------------------------------------------- server


class _ClientGone(Exception):
    """The client hung up (or the server is closing); stop answering quietly."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # OpenAIServer.close joins the handler threads itself
    request_queue_size = 64

    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # never print
        exc = sys.exc_info()[1]
        if exc is not None and not _is_disconnect(exc) and not self.owner._closing.is_set():
            self.owner.errors.append(exc)


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, (_ClientGone, ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and exc.errno in (32, 54, 104, 9, 57, 107)
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedOpenAI/1.0"
    sys_version = ""
    endpoint = "/chat/completions"  # the path the scripted behaviours answer (a subclass names its own API's)
    server: _HTTPServer

    # -- plumbing ----------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.owner = self.server.owner
        self.owner._track(self.connection, threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silenced
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - silenced
        pass

    def _write(self, data: bytes) -> None:
        if self.owner._closing.is_set():
            raise _ClientGone
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGone from exc

    def _send_json(self, status: int, payload: Any, extra_headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write(body)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, payload: Any) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _end_stream(self) -> None:
        self._chunk(b"data: [DONE]\n\n")
        self._write(b"0\r\n\r\n")

    # -- dispatch ----------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        self._guard(lambda: self._send_json(404, _error_body(404, "Unknown path", "invalid_request_error", None)))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._record(body)
        if not self.path.split("?")[0].rstrip("/").endswith(self.endpoint):
            self._guard(
                lambda: self._send_json(
                    404, _error_body(404, f"Unknown path {self.path}", "invalid_request_error", None)
                )
            )
            return
        behaviour = self.owner._next()
        self.owner._answering(+1)
        try:
            self._guard(lambda: self._play(behaviour, body if isinstance(body, dict) else {}))
        finally:
            self.owner._answering(-1)

    def _record(self, body: Any) -> None:
        self.owner.requests.append(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )

    def _guard(self, action: Any) -> None:
        try:
            action()
        except _ClientGone:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - recorded for the test, never printed
            self.close_connection = True
            if _is_disconnect(exc) or self.owner._closing.is_set():
                return
            self.owner.errors.append(exc)

    # -- behaviours --------------------------------------------------------------

    def _play(self, behaviour: Behaviour | None, body: dict) -> None:
        streaming = body.get("stream") is True
        if behaviour is None:
            self._send_json(500, _error_body(500, "no scripted reply left", "server_error", "no_scripted_reply"))
        elif isinstance(behaviour, Error):
            self._play_error(behaviour)
        elif isinstance(behaviour, Reply):
            self._play_text(body, streaming, behaviour.text, STREAM_PIECE_CHARS, 0.0, behaviour)
        elif isinstance(behaviour, Huge):
            self._play_text(body, streaming, huge_text(behaviour.n_bytes), HUGE_PIECE_CHARS, 0.0, None)
        elif isinstance(behaviour, Trickle):
            self._play_text(body, streaming, behaviour.text, behaviour.piece_chars, behaviour.delay, None)
        elif isinstance(behaviour, Stall):
            self._play_stall(body, streaming, behaviour)
        else:  # pragma: no cover - push() validates
            raise TypeError(f"unknown behaviour {behaviour!r}")

    def _play_error(self, err: Error) -> None:
        default_type, default_code, default_message = _DEFAULT_ERRORS.get(
            err.status,
            ("server_error" if err.status >= 500 else "invalid_request_error", f"http_{err.status}", f"HTTP {err.status}"),
        )
        headers = {}
        if err.retry_after is not None:
            ra = err.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            headers["Retry-After-Ms"] = str(int(ra * 1000))
        self._send_json(
            err.status,
            _error_body(err.status, err.message or default_message, err.type or default_type, err.code or default_code),
            headers,
        )

    def _play_text(
        self, body: dict, streaming: bool, text: str, piece: int, delay: float, rep: Reply | None
    ) -> None:
        usage = _usage(body, text, rep)
        model = str(body.get("model") or "test-model")
        if not streaming:
            if delay > 0:  # a slow non-streamed body: the JSON bytes dribble out
                data = json.dumps(_completion(model, text, usage)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                pieces = max(1, -(-len(text) // piece))  # as many pauses as a stream would make
                step = -(-len(data) // pieces)
                for i in range(0, len(data), step):
                    self._pause(delay)
                    self._write(data[i : i + step])
                return
            self._send_json(200, _completion(model, text, usage))
            return
        stream = _Stream(model)
        self._start_stream()
        self._event(stream.chunk({"role": "assistant", "content": ""}))
        for i in range(0, len(text), piece):
            if delay > 0:
                self._pause(delay)
            self._event(stream.chunk({"content": text[i : i + piece]}))
        self._event(stream.chunk({}, finish_reason="stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            self._event(stream.usage_chunk(usage))
        self._end_stream()

    def _play_stall(self, body: dict, streaming: bool, st: Stall) -> None:
        self.close_connection = True
        if streaming:
            stream = _Stream(str(body.get("model") or "test-model"))
            self._start_stream()
            self._event(stream.chunk({"role": "assistant", "content": ""}))
            text = st.text_before
            for i in range(0, len(text), STREAM_PIECE_CHARS):
                self._event(stream.chunk({"content": text[i : i + STREAM_PIECE_CHARS]}))
        self._pause(st.seconds)
        # Drop the connection: no final chunk, no [DONE] (streaming), no response at all
        # (non-streaming). A hard close so the client sees it at once.
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _pause(self, seconds: float) -> None:
        if self.owner._closing.wait(seconds):
            raise _ClientGone


class _Stream:
    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{next(_ids)}"
        self.created = int(time.time())
        self.model = model

    def _base(self, choices: list) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return self._base([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def usage_chunk(self, usage: dict) -> dict:
        payload = self._base([])
        payload["usage"] = usage
        return payload


_ids = itertools.count(1)


def _error_body(status: int, message: str, type_: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _prompt_chars(body: dict) -> int:
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total


def _usage(body: dict, text: str, rep: Reply | None) -> dict:
    prompt = rep.prompt_tokens if rep and rep.prompt_tokens is not None else _prompt_chars(body) // 4
    completion = rep.completion_tokens if rep and rep.completion_tokens is not None else len(text) // 4
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(model: str, text: str, usage: dict) -> dict:
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


class OpenAIServer:
    """A scripted OpenAI chat-completions server on 127.0.0.1; see the module docstring.

    A server for another API (tests/agent_servers.py) subclasses it with its own handler and behaviours."""

    handler: type[_Handler] = _Handler
    behaviours: tuple[type, ...] = (Reply, Error, Stall, Trickle, Huge)

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.errors: list[BaseException] = []  # handler failures other than disconnects
        self.in_flight = 0  # scripted requests being answered now
        self.peak_in_flight = 0  # the most answered at once: a client's concurrency, as the server saw it
        self._queue: list[Behaviour] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closed = False
        self._httpd = _HTTPServer(("127.0.0.1", 0), self.handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-server", daemon=True
        )
        self._thread.start()

    # -- script ----------------------------------------------------------------

    def push(self, *behaviours: Behaviour) -> None:
        for b in behaviours:
            if not isinstance(b, self.behaviours):
                raise TypeError(f"not a behaviour: {b!r}")
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """How many pushed behaviours have not been played yet."""
        with self._lock:
            return len(self._queue)

    def _next(self) -> Behaviour | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _answering(self, change: int) -> None:
        with self._lock:
            self.in_flight += change
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    # -- connections -------------------------------------------------------------

    def _track(self, conn: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[conn] = thread
        if self._closing.is_set():
            _hard_close(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()  # wakes stalls and trickles
        self._httpd.shutdown()  # stops accepting (within poll_interval)
        with self._lock:
            live = dict(self._connections)
        for conn in live:  # wake handlers blocked reading the next keep-alive request
            _hard_close(conn)
        self._httpd.server_close()
        deadline = time.monotonic() + 1.0
        for thread in live.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIServer({self.base_url!r}, requests={len(self.requests)}, pending={self.pending})"


def _hard_close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
