"""The one door to litellm: lazy import, streamed calls with a wall-clock deadline, retries.

litellm is imported here and nowhere else, on first use, with its network and
`.env` behaviour switched off (it otherwise fetches a price map at import and
reads `.env` files). Errors are sorted into three kinds the agent acts on:
fatal (stop the loop and say what to fix), retryable (wait with backoff and
jitter, nothing lost) and context overflow (shrink the prompt and ask again).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_REPLY_CHARS = 200_000  # a reply longer than this is a runaway, not an edit
BACKOFF_CAP_S = 60.0
FALLBACK_CONTEXT_TOKENS = 32_768  # for models litellm has no card for (most local servers)


class LLMError(Exception):
    """Base of the errors the agent distinguishes."""


class LLMFatal(LLMError):
    """The loop cannot go on with this model: bad key, unknown model, bad request."""


class LLMRetryable(LLMError):
    """Worth asking again later: rate limit, timeout, server error, connection refused."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMContextOverflow(LLMError):
    """The prompt does not fit the model's context window."""


class LLMCancelled(LLMError):
    """The loop is stopping; the call was abandoned."""


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd


@dataclass
class Reply:
    text: str
    usage: Usage = field(default_factory=Usage)
    too_long: bool = False  # cut at MAX_REPLY_CHARS


def import_litellm() -> Any:
    """Import litellm offline and quiet; safe to call from any thread, cheap after the first time."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["LITELLM_MODE"] = "PRODUCTION"
    # litellm's pydantic models warn about typing details at import and on first use: not the user's concern.
    warnings.filterwarnings("ignore", message=r".*ReadOnly. qualifier", category=UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # a provider that lacks an option (stream_options...) ignores it
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("retry-after")) if headers.get("retry-after") else None
    except (TypeError, ValueError):
        return None


class LLMClient:
    def __init__(
        self,
        model: str,
        api_base: str = "",
        temperature: float = 0.7,
        max_tokens: int = 4096,
        deadline_s: float = 300.0,
        retries: int = 6,
        backoff_s: float = 1.0,
        context_tokens: int = 0,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._context_tokens = context_tokens
        self.notify = notify

    # -- facts about the model ----------------------------------------------

    def context_tokens(self) -> int:
        """The model's input window: the config's, else litellm's model card, else a safe guess."""
        if self._context_tokens:
            return self._context_tokens
        litellm = import_litellm()
        try:
            info = litellm.get_model_info(self.model)
            self._context_tokens = int(info.get("max_input_tokens") or info.get("max_tokens") or 0)
        except Exception:  # litellm raises for models it has no card for
            self._context_tokens = 0
        self._context_tokens = self._context_tokens or FALLBACK_CONTEXT_TOKENS
        return self._context_tokens

    def count_tokens(self, messages: list[dict[str, str]] | None = None, text: str = "") -> int:
        litellm = import_litellm()
        try:
            if messages is not None:
                return int(litellm.token_counter(model=self.model, messages=messages))
            return int(litellm.token_counter(model=self.model, text=text))
        except Exception:  # no tokenizer for this model: about four characters a token
            chars = sum(len(m["content"]) for m in messages) if messages is not None else len(text)
            return chars // 4 + 1

    def missing_keys(self) -> list[str]:
        litellm = import_litellm()
        try:
            return list(litellm.validate_environment(self.model).get("missing_keys") or [])
        except Exception:
            return []

    def _local_without_key(self) -> bool:
        """A local server needs no key, but the OpenAI client refuses to send a request without one."""
        if self.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            return True
        return bool(self.missing_keys())

    # -- calls ----------------------------------------------------------------

    def complete(
        self, messages: list[dict[str, str]], on_text: Callable[[str], None], cancel: threading.Event,
        notify: Callable[[str], None] | None = None,
    ) -> Reply:
        """One answer, retried with exponential backoff and jitter on transient failures; the retries are told
        to `notify` (the calling proposal's, so calls made at once each tell their own), else to the client's."""
        say = notify or self.notify
        for attempt in range(self.retries + 1):
            try:
                return self._stream(messages, on_text, cancel)
            except LLMRetryable as exc:
                if attempt == self.retries:
                    raise LLMFatal(
                        f"model {self.model}{self._where()}: no answer after {attempt + 1} tries; last error: {exc}"
                    ) from exc
                delay = min(BACKOFF_CAP_S, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, BACKOFF_CAP_S))
                say(f"{self.model}: {exc}; retry {attempt + 1} of {self.retries} in {delay:.1f} s")
                if cancel.wait(delay):
                    raise LLMCancelled("stopped while waiting to retry") from exc
        raise AssertionError("unreachable")

    def _where(self) -> str:
        return f" at {self.api_base}" if self.api_base else ""

    def _stream(
        self, messages: list[dict[str, str]], on_text: Callable[[str], None], cancel: threading.Event
    ) -> Reply:
        """Stream one reply in a worker thread; the deadline holds even when the stream trickles or stalls."""
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.deadline_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
            if self._local_without_key():
                kwargs["api_key"] = "no-key-needed"
        parts: list[str] = []
        usage: dict[str, int] = {}
        state: dict[str, Any] = {"error": None, "too_long": False}
        done, abandon = threading.Event(), threading.Event()

        def consume() -> None:
            try:
                response = litellm.completion(**kwargs)
                size = 0
                for chunk in response:
                    if abandon.is_set():
                        break
                    if getattr(chunk, "usage", None):
                        usage["prompt"] = chunk.usage.prompt_tokens or 0
                        usage["completion"] = chunk.usage.completion_tokens or 0
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        parts.append(delta)
                        size += len(delta)
                        on_text(delta)
                        if size > MAX_REPLY_CHARS:
                            state["too_long"] = True
                            break
                close = getattr(response, "close", None) or getattr(
                    getattr(response, "completion_stream", None), "close", None
                )
                if close is not None and (abandon.is_set() or state["too_long"]):
                    close()
            except Exception as exc:
                state["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=consume, name="arsup-llm-stream", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.deadline_s
        while not done.wait(0.05):
            if cancel.is_set():
                abandon.set()
                raise LLMCancelled("stopped while the model was answering")
            if time.monotonic() > deadline:
                abandon.set()
                raise LLMRetryable(f"no complete reply within {self.deadline_s:g} s")
        if state["error"] is not None:
            raise self._classify(state["error"])
        text = "".join(parts)
        if state["too_long"]:
            text = text[:MAX_REPLY_CHARS]
        return Reply(text, self._usage(messages, text, usage), too_long=state["too_long"])

    def _usage(self, messages: list[dict[str, str]], text: str, reported: dict[str, int]) -> Usage:
        """The provider's token counts when it sent them, litellm's count otherwise; cost 0 when unpriced."""
        prompt = reported.get("prompt") or self.count_tokens(messages)
        completion = reported.get("completion") or self.count_tokens(text=text)
        litellm = import_litellm()
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=self.model, prompt_tokens=prompt, completion_tokens=completion
            )
            cost = float(prompt_cost) + float(completion_cost)
        except Exception:  # no price for this model (local servers): tokens still count
            cost = 0.0
        return Usage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)

    def _classify(self, exc: BaseException) -> LLMError:
        litellm = import_litellm()
        message = " ".join(str(exc).split())[:500]
        if isinstance(exc, litellm.ContextWindowExceededError):
            return LLMContextOverflow(message)
        status = _status(exc)
        if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status in (401, 403):
            missing = self.missing_keys()
            hint = (
                f"set {' and '.join(missing)} in the environment"
                if missing
                else "check the API key in the environment for this provider"
            )
            return LLMFatal(f"model {self.model}{self._where()}: authentication failed; {hint} ({message})")
        if isinstance(exc, litellm.NotFoundError):
            return LLMFatal(
                f"model {self.model}{self._where()}: unknown model or endpoint; check --model / [agent] model ({message})"
            )
        retryable = (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.ServiceUnavailableError,
            litellm.InternalServerError,
        )
        if isinstance(exc, retryable) or (status is not None and status >= 500):
            return LLMRetryable(f"{type(exc).__name__}: {message}", _retry_after(exc))
        if isinstance(exc, litellm.BadRequestError):
            return LLMFatal(f"model {self.model}{self._where()}: the request was refused ({message})")
        return LLMRetryable(f"{type(exc).__name__}: {message}")
