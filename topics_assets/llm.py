"""The one place LLM and embedding API calls go through.

Everything here talks to providers through litellm (any provider) or the voyageai SDK, with our own
retry policy on top, so an outage, 429s or malformed output cost retries, not data:

- litellm's and the openai SDK's own retries are off (num_retries=0, max_retries=0): one policy,
  one set of counters, one place that honours Retry-After.
- retryable: 429, 408/409/425, 5xx, timeouts, connection errors (exponential backoff, full
  jitter, never shorter than the server's Retry-After). Other 4xx fail at once.
- output: one JSON object per call; malformed or invalid output is asked for again once.
- outage: after llm.circuit_breaker calls in a row fail for endpoint reasons (5xx, 429, timeouts,
  connection, auth) once their retries are spent, the rest of that map() is not sent; those
  items fail at once with reason circuit_open and are retried on the next run.

litellm is imported lazily (it takes seconds), and with LITELLM_LOCAL_MODEL_COST_MAP set so that
importing it never reaches for the internet.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from topics_assets.config import LLMSettings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
MAX_RETRY_AFTER_S = 60.0  # a Retry-After longer than this is a quota, not a blip: cap the wait
VOYAGE_MAX_TEXTS = 128
VOYAGE_MAX_TOKENS = 120_000
REASK_MAX_CHARS = 4000  # how much of a bad answer is shown back to the model

_litellm_module = None
_litellm_lock = threading.Lock()


def _litellm():
    """Import litellm once, quietly (it prints a 'Give Feedback' banner on every error otherwise)."""
    global _litellm_module
    if _litellm_module is None:
        with _litellm_lock:
            if _litellm_module is None:
                import litellm

                litellm.suppress_debug_info = True
                # litellm 1.110's OpenAI embedding path reads `max_retries or DEFAULT_MAX_RETRIES`,
                # so max_retries=0 silently became 2 and the SDK retried every batch under our
                # own policy (seen against FakeLLMServer: 3 requests for one call). Only the
                # `litellm.DEFAULT_MAX_RETRIES` fallbacks (OpenAI, Azure embeddings) read this.
                litellm.DEFAULT_MAX_RETRIES = 0
                _litellm_module = litellm
    return _litellm_module


# --------------------------------------------------------------------------------------------
# errors and results
# --------------------------------------------------------------------------------------------
class LLMError(RuntimeError):
    """A call that failed for good (retries exhausted or not retryable).

    `reason` is short and machine-friendly (rate_limited, server_error, timeout, connection,
    auth, bad_request, ...), for failure tables and counters.
    """

    def __init__(self, message: str, reason: str = "error", attempts: int = 0, status_code: int | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.attempts = attempts
        self.status_code = status_code


class LLMOutputError(LLMError):
    """The model answered, twice, with something that is not valid JSON for the schema.

    reason: invalid_json, not_an_object, schema_invalid, truncated, empty_output or refusal.
    `content` holds the last answer, for debugging.
    """

    def __init__(self, message: str, reason: str, attempts: int = 0, content: str | None = None):
        super().__init__(message, reason=reason, attempts=attempts)
        self.content = content


@dataclass
class LLMResult:
    data: dict
    input_tokens: int  # summed over every answer paid for, a rejected first answer included
    output_tokens: int
    cost: float | None  # USD from litellm's price map; None when the model is not priced
    attempts: int  # HTTP requests made, retries and the re-ask included
    model: str  # the configured litellm model name


class _BadOutput(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# retry policy (shared by chat and embeddings)
# --------------------------------------------------------------------------------------------
_TIMEOUT_NAMES = {"Timeout", "APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout"}
_CONNECTION_NAMES = {"APIConnectionError", "ConnectError", "RemoteProtocolError", "ServiceUnavailableError"}
_NON_RETRYABLE = {400: "bad_request", 401: "auth", 403: "permission_denied", 404: "not_found", 422: "unprocessable"}


def classify_error(exc: BaseException) -> tuple[bool, str, int | None]:
    """(retryable, reason, HTTP status) for an exception from litellm, openai or voyageai.

    Matched on class names and status codes so the SDKs need not be imported here.
    """
    names = {c.__name__ for c in type(exc).__mro__}
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    try:
        status = int(status) if status is not None else None
    except (TypeError, ValueError):
        status = None
    if names & _TIMEOUT_NAMES or isinstance(exc, TimeoutError):
        return True, "timeout", status
    if status is None or status == 500:
        # litellm reports a dropped connection, and a missing API key, as InternalServerError
        # (500); the cause chain says what really happened (seen against FakeLLMServer).
        causes = _cause_names(exc)
        if causes & _TIMEOUT_NAMES:
            return True, "timeout", status
        if causes & _CONNECTION_NAMES:
            return True, "connection", status
        if "missing credentials" in str(exc).lower():
            return False, "auth", status
    if status is not None:
        if status == 429:
            return True, "rate_limited", status
        if status in (408, 409, 425):
            return True, f"http_{status}", status
        if status >= 500:
            return True, "server_error", status
        if status == 400 and "ContextWindowExceededError" in names:
            return False, "context_window_exceeded", status
        if status == 400 and "ContentPolicyViolationError" in names:
            return False, "content_policy", status
        if 400 <= status < 500:
            return False, _NON_RETRYABLE.get(status, f"http_{status}"), status
    if names & _CONNECTION_NAMES or isinstance(exc, ConnectionError):
        return True, "connection", status
    return False, "unexpected", status


def _cause_names(exc: BaseException, depth: int = 8) -> set[str]:
    """Class names along an exception's __cause__ / __context__ chain (not the exception itself)."""
    names: set[str] = set()
    current = exc.__cause__ or exc.__context__
    while current is not None and depth > 0:
        names.update(c.__name__ for c in type(current).__mro__)
        current = current.__cause__ or current.__context__
        depth -= 1
    return names


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive lookup in httpx.Headers, requests' headers or a plain dict."""
    try:
        items = headers.items()
    except AttributeError:
        return None
    for key, value in items:
        if str(key).lower() == name:
            return str(value)
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, from Retry-After(-Ms), or None.

    litellm attaches the provider's response headers to its exceptions as
    `e.litellm_response_headers` (an httpx.Headers) and keeps the response as `e.response`;
    voyageai errors carry them as `e.headers`. Verified against FakeLLMServer.
    """
    sources = [getattr(exc, "litellm_response_headers", None)]
    try:
        sources.append(exc.response.headers)  # type: ignore[attr-defined]
    except Exception:  # no response (timeouts), or a property that raises
        pass
    sources.append(getattr(exc, "headers", None))
    for headers in sources:
        if not headers:
            continue
        ms = _header(headers, "retry-after-ms")
        if ms:
            try:
                return max(0.0, float(ms) / 1000.0)
            except ValueError:
                pass
        value = _header(headers, "retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
            try:  # an HTTP date
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return None


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def delay(self, retry_index: int, exc: BaseException) -> float:
        """Full jitter (AWS style), but never less than the server's Retry-After."""
        jitter = random.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * (2**retry_index)))
        asked = retry_after_s(exc)
        if asked is None:
            return jitter
        return max(jitter, min(asked, self.max_retry_after_s))

    def run(self, call: Callable[[], Any], on_error: Callable[[str, bool], None] | None = None) -> tuple[Any, int]:
        """(call's result, attempts). Raises LLMError once retries are spent or on a hard error.

        on_error(reason, will_retry) is told about every failed attempt, for counters.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(), attempt
            except Exception as exc:  # noqa: BLE001 (classified right below)
                retryable, reason, status = classify_error(exc)
                will_retry = retryable and attempt <= self.max_retries
                if on_error:
                    on_error(reason, will_retry)
                if not will_retry:
                    detail = f"{type(exc).__name__}: {exc}".strip()
                    if retryable:
                        detail = f"gave up after {attempt} attempts; last error {detail}"
                    raise LLMError(detail[:2000], reason=reason, attempts=attempt, status_code=status) from exc
                time.sleep(self.delay(attempt - 1, exc))


# --------------------------------------------------------------------------------------------
# JSON output
# --------------------------------------------------------------------------------------------
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)


def parse_json_object(text: str | None) -> dict:
    """The JSON object in a model's answer; tolerates ```json fences. Raises ValueError."""
    if text is None or not text.strip():
        raise _BadOutput("empty_output", "the answer was empty")
    stripped = text.strip()
    fenced = _FENCE.search(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    elif stripped.startswith("```"):  # an opening fence with no closing one (cut off)
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    try:
        data = json.loads(stripped)
    except ValueError as e:
        raise _BadOutput("invalid_json", f"not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise _BadOutput("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def _reask_message(problem: _BadOutput) -> str:
    if problem.reason == "truncated":
        return (
            "Your previous answer was cut off at the output length limit. Reply again with a "
            "shorter answer: only the JSON object, matching the schema, with no other text."
        )
    return (
        f"Your previous answer could not be used: {problem}. Reply again with only a JSON object "
        "that matches the schema exactly: no prose, no code fences, no extra keys."
    )


# --------------------------------------------------------------------------------------------
# bounded concurrency
# --------------------------------------------------------------------------------------------
def run_bounded(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    max_in_flight: int,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """fn over items with at most max_in_flight running; results or exceptions, in input order.

    One item's exception is its result, never the whole batch's. on_done(index, result) runs in
    the calling thread as each item finishes (in completion order), so it may write to a
    database or a progress bar without locks.
    """
    items = list(items)
    if not items:
        return []
    results: list[Any] = [None] * len(items)
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_in_flight, len(items))), thread_name_prefix="topics-llm")
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            i = futures[future]
            exc = future.exception()
            results[i] = exc if exc is not None else future.result()
            if on_done is not None:
                on_done(i, results[i])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


# Failures that say the endpoint, not the trace, is the problem: the next call would fail the same way.
_OUTAGE_REASONS = frozenset({"rate_limited", "server_error", "timeout", "connection", "auth",
                             "permission_denied", "not_found"})


class CircuitBreaker:
    """Opens after `threshold` calls in a row fail for outage reasons; any answer closes the count.

    Without it a full outage costs every remaining item all of its retries (minutes per item).
    """

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._lock = threading.Lock()
        self._streak = 0
        self._last: LLMError | None = None
        self.opened = False

    def check(self) -> None:
        if self.opened:
            raise LLMError(f"not sent: {self._streak} calls in a row failed, the endpoint looks down "
                           f"(last: {self._last}); retried on the next run", reason="circuit_open")

    def record(self, error: BaseException | None) -> None:
        with self._lock:
            if isinstance(error, LLMError) and error.reason in _OUTAGE_REASONS:
                self._streak += 1
                self._last = error
                if self.threshold > 0 and self._streak >= self.threshold:
                    self.opened = True
            elif not self.opened:
                self._streak = 0


# --------------------------------------------------------------------------------------------
# the chat client
# --------------------------------------------------------------------------------------------
# How the schema is asked for, strongest first. A provider that rejects one (HTTP 400 naming
# response_format) moves this client to the next for the rest of its life.
_FORMAT_MODES = ("json_schema", "json_object", "prompt")
_FORMAT_COMPLAINT = re.compile(r"response_format|json_schema|json_object|structured output", re.IGNORECASE)


class LLMClient:
    """JSON-out chat completions through litellm with our retries, re-ask and usage counters.

    Thread-safe: one client is shared by the workers of `map`.
    """

    def __init__(
        self,
        settings: LLMSettings,
        api_key: str | None = None,
        *,
        backoff_base_s: float | None = None,  # None: settings.backoff_base_s
        backoff_cap_s: float = BACKOFF_CAP_S,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
    ):
        if not settings.model:
            raise LLMError("no LLM model is configured (llm.model / TOPICS_LLM_MODEL)", reason="not_configured")
        self.settings = settings
        if api_key is None and settings.api_key_env:
            api_key = os.environ.get(settings.api_key_env)
        self._api_key = api_key
        if backoff_base_s is None:
            backoff_base_s = settings.backoff_base_s
        self.retry = RetryPolicy(settings.max_retries, backoff_base_s, backoff_cap_s, max_retry_after_s)
        self._lock = threading.Lock()
        self._format_mode: str | None = None  # decided on first use (needs litellm)
        self._counts: Counter = Counter()
        self._cost = 0.0
        self._failures: Counter = Counter()
        self._errors: Counter = Counter()

    # -- usage ---------------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        """A snapshot: calls (complete_json calls), requests (HTTP requests), retries, reasks,
        input/output tokens, cost (USD, priced models only), cost_unknown (responses with no
        price), failures_by_reason (calls that raised) and errors_by_reason (every failed request,
        retried or not)."""
        with self._lock:
            return {
                "calls": self._counts["calls"],
                "requests": self._counts["requests"],
                "retries": self._counts["retries"],
                "reasks": self._counts["reasks"],
                "input_tokens": self._counts["input_tokens"],
                "output_tokens": self._counts["output_tokens"],
                "cost": self._cost,
                "cost_unknown": self._counts["cost_unknown"],
                "failures": sum(self._failures.values()),
                "failures_by_reason": dict(self._failures),
                "errors_by_reason": dict(self._errors),
            }

    def stats_since(self, before: dict) -> dict:
        """What this client did since the `before` snapshot of `stats` (a shared client serves many runs)."""
        return stats_delta(before, self.stats)

    def _add(self, **counts: int) -> None:
        with self._lock:
            self._counts.update(counts)

    def _on_request_error(self, reason: str, will_retry: bool) -> None:
        with self._lock:
            self._errors[reason] += 1
            self._counts["retries"] += int(will_retry)

    # -- calls -----------------------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], on_done: Callable[[int, Any], None] | None = None) -> list:
        """fn over items, at most settings.max_in_flight at once; see run_bounded.

        A CircuitBreaker (settings.circuit_breaker) watches the calls: once it opens, items not yet
        started fail at once with LLMError(reason="circuit_open") instead of waiting out retries.
        """
        breaker = CircuitBreaker(self.settings.circuit_breaker)

        def guarded(item: Any) -> Any:
            try:
                breaker.check()
            except LLMError:
                with self._lock:
                    self._failures["circuit_open"] += 1
                raise
            try:
                result = fn(item)
            except BaseException as e:
                breaker.record(e)
                raise
            breaker.record(None)
            return result

        return run_bounded(guarded, items, self.settings.max_in_flight, on_done)

    def complete_json(
        self,
        messages: list[dict],
        schema: dict,
        validate: Callable[[dict], None] | None = None,
        schema_name: str = "facets",
    ) -> LLMResult:
        """One JSON object from the model, parsed and validated.

        validate(data) raises ValueError (KeyError and TypeError are taken the same way) when the
        object does not fit. A bad answer is shown back to the model once with a correction;
        a second bad answer raises LLMOutputError. Transport failures raise LLMError.
        """
        self._add(calls=1)
        messages = list(messages)
        attempts = input_tokens = output_tokens = 0
        costs: list[float] = []
        try:
            for round_ in range(2):
                resp, n = self._complete(messages, schema, schema_name)
                attempts += n
                usage = getattr(resp, "usage", None)
                tin = int(getattr(usage, "prompt_tokens", 0) or 0)
                tout = int(getattr(usage, "completion_tokens", 0) or 0)
                input_tokens += tin
                output_tokens += tout
                cost = self._cost_of(resp)
                with self._lock:
                    self._counts.update(input_tokens=tin, output_tokens=tout, cost_unknown=int(cost is None))
                    if cost is not None:
                        costs.append(cost)
                        self._cost += cost
                try:
                    data = self._read(resp, validate)
                except _BadOutput as bad:
                    if round_ == 1:
                        raise LLMOutputError(str(bad), bad.reason, attempts, content=_content_of(resp)) from bad
                    self._add(reasks=1)
                    bad_text = (_content_of(resp) or "")[:REASK_MAX_CHARS]
                    messages = messages + [
                        {"role": "assistant", "content": bad_text},
                        {"role": "user", "content": _reask_message(bad)},
                    ]
                    continue
                return LLMResult(
                    data=data,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost=sum(costs) if costs else None,
                    attempts=attempts,
                    model=self.settings.model,
                )
        except LLMError as e:
            if not isinstance(e, LLMOutputError):
                e.attempts += attempts
            with self._lock:
                self._failures[e.reason] += 1
            raise
        raise AssertionError("unreachable")

    def _read(self, resp: Any, validate: Callable[[dict], None] | None) -> dict:
        choices = getattr(resp, "choices", None) or []
        if not choices:
            raise _BadOutput("empty_output", "the response had no choices")
        choice = choices[0]
        refusal = getattr(getattr(choice, "message", None), "refusal", None)
        if refusal:
            raise _BadOutput("refusal", f"the model refused: {str(refusal)[:200]}")
        content = _content_of(resp)
        try:
            data = parse_json_object(content)
        except _BadOutput as bad:
            if getattr(choice, "finish_reason", None) == "length":
                raise _BadOutput("truncated", f"the answer hit the output token limit ({bad})") from bad
            raise
        if validate is not None:
            try:
                validate(data)
            except (ValueError, KeyError, TypeError) as e:
                raise _BadOutput("schema_invalid", f"does not match the schema: {e}") from e
        return data

    def _complete(self, messages: list[dict], schema: dict, schema_name: str) -> tuple[Any, int]:
        """One completion with retries; steps down the response_format ladder on a 400 about it."""
        litellm = _litellm()
        attempts = 0
        while True:
            mode = self._current_format_mode()
            kwargs = _format_kwargs(mode, messages, schema, schema_name)

            def call() -> Any:
                self._add(requests=1)
                return litellm.completion(
                    model=self.settings.model,
                    api_base=self.settings.api_base,
                    api_key=self._api_key,
                    temperature=self.settings.temperature,
                    max_tokens=self.settings.max_output_tokens,
                    timeout=self.settings.timeout_s,
                    num_retries=0,  # litellm's retries off: ours are the only ones
                    max_retries=0,  # ... and the openai SDK's too
                    **kwargs,
                )

            try:
                resp, n = self.retry.run(call, on_error=self._on_request_error)
                return resp, attempts + n
            except LLMError as e:
                attempts += e.attempts
                if self._step_down(mode, e) is None:
                    e.attempts = attempts
                    raise

    def _current_format_mode(self) -> str:
        with self._lock:
            if self._format_mode is None:
                self._format_mode = _initial_format_mode(self.settings.model)
            return self._format_mode

    def _step_down(self, mode: str, error: LLMError) -> str | None:
        """The next response_format mode when a provider said 400 to this one, else None."""
        if error.reason != "bad_request" or not _FORMAT_COMPLAINT.search(str(error)):
            return None
        i = _FORMAT_MODES.index(mode)
        if i + 1 >= len(_FORMAT_MODES):
            return None
        with self._lock:
            if self._format_mode == mode:
                self._format_mode = _FORMAT_MODES[i + 1]
            return self._format_mode

    @staticmethod
    def _cost_of(resp: Any) -> float | None:
        # litellm has already priced the response during the call; asking completion_cost again
        # cost about 10% of a call's CPU, which matters at 100+ calls/s under the GIL.
        hidden = getattr(resp, "_hidden_params", None)
        if isinstance(hidden, dict) and "response_cost" in hidden:
            cost = hidden["response_cost"]
            return float(cost) if cost is not None else None
        try:
            cost = _litellm().completion_cost(completion_response=resp)
        except Exception:  # noqa: BLE001 (unpriced models raise; cost is best effort)
            return None
        return float(cost) if cost is not None else None


def stats_delta(before: dict, after: dict) -> dict:
    """after - before for LLMClient.stats snapshots: numbers subtract, per-reason counters too."""
    out: dict = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict):
            old = old or {}
            diff = {k: v - old.get(k, 0) for k, v in value.items() if v - old.get(k, 0)}
            out[key] = diff
        elif isinstance(value, (int, float)) and isinstance(old, (int, float)):
            out[key] = value - old
        else:
            out[key] = value
    return out


def _content_of(resp: Any) -> str | None:
    try:
        return resp.choices[0].message.content
    except (AttributeError, IndexError):
        return None


def _initial_format_mode(model: str) -> str:
    """json_schema unless litellm knows this model and knows it lacks structured outputs.

    Unknown models (openai-compatible servers, vLLM, new releases) get json_schema; a 400 about
    it steps down from there.
    """
    litellm = _litellm()
    try:
        litellm.get_model_info(model)
    except Exception:  # noqa: BLE001 (not in litellm's map)
        return "json_schema"
    try:
        return "json_schema" if litellm.supports_response_schema(model=model) else "json_object"
    except Exception:  # noqa: BLE001
        return "json_schema"


def _format_kwargs(mode: str, messages: list[dict], schema: dict, schema_name: str) -> dict:
    if mode == "json_schema":
        return {
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            },
        }
    # Weaker modes carry the schema in the prompt instead.
    instruction = {
        "role": "system",
        "content": "Answer with one JSON object, and nothing else, that conforms to this JSON Schema:\n"
        + json.dumps(schema),
    }
    kwargs: dict = {"messages": [instruction, *messages]}
    if mode == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


# --------------------------------------------------------------------------------------------
# embeddings
# --------------------------------------------------------------------------------------------
def embed_texts(
    texts: list[str],
    model: str,
    api_base: str | None = None,
    api_key: str | None = None,
    batch_size: int = 64,
    max_retries: int = 5,
    *,
    timeout_s: float = 60.0,
    max_in_flight: int = 1,
    input_type: str | None = "document",
    backoff_base_s: float = BACKOFF_BASE_S,
) -> np.ndarray:
    """Embed texts with a remote model: an (n, dim) float32 array in input order.

    "voyage/<model>" goes through the voyageai SDK (batches of at most 128 texts and an estimated
    120k tokens); any other name through litellm.embedding. Batches are retried like chat calls;
    if one batch fails for good the whole call raises LLMError, since a partial matrix is no use.
    input_type is passed to Voyage only (document vs query embeddings differ there).
    """
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"embed_texts needs strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    if model == "local":
        raise ValueError("the 'local' embedding model runs in-process, not through embed_texts")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    policy = RetryPolicy(max_retries=max_retries, backoff_base_s=backoff_base_s)

    if model.startswith("voyage/"):
        batches = _voyage_batches(texts, min(batch_size, VOYAGE_MAX_TEXTS), VOYAGE_MAX_TOKENS)
        client = _voyage_client(api_key, api_base, timeout_s)
        name = model.split("/", 1)[1]

        def embed_batch(batch: list[str]) -> list[list[float]]:
            result = client.embed(batch, model=name, input_type=input_type)
            return list(result.embeddings)

    else:
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), max(1, batch_size))]
        litellm = _litellm()

        def embed_batch(batch: list[str]) -> list[list[float]]:
            resp = litellm.embedding(
                model=model,
                input=batch,
                api_base=api_base,
                api_key=api_key,
                timeout=timeout_s,
                num_retries=0,
                max_retries=0,
            )
            rows = sorted(resp.data, key=lambda d: _get(d, "index", 0))
            return [list(_get(d, "embedding")) for d in rows]

    def with_retries(batch: list[str]) -> list[list[float]]:
        vectors, _ = policy.run(lambda: embed_batch(batch))
        if len(vectors) != len(batch):
            raise LLMError(f"asked for {len(batch)} embeddings, got {len(vectors)}", reason="bad_response")
        return vectors

    results = run_bounded(with_retries, batches, max_in_flight)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    rows = [v for vectors in results for v in vectors]
    dims = {len(v) for v in rows}
    if len(dims) != 1:
        raise LLMError(f"embeddings of different sizes came back: {sorted(dims)}", reason="bad_response")
    return np.asarray(rows, dtype=np.float32)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """litellm returns embedding rows as dicts or objects depending on provider."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate (UTF-8 bytes / 3) for packing batches offline.

    Over-counts English (about 4 characters a token) and is about right for CJK, so batches
    stay under a provider's limit without downloading its tokenizer.
    """
    return len(text.encode("utf-8")) // 3 + 1


def _voyage_batches(texts: list[str], max_texts: int, max_tokens: int) -> list[list[str]]:
    batches: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        t = estimate_tokens(text)
        if current and (len(current) >= max_texts or tokens + t > max_tokens):
            batches.append(current)
            current, tokens = [], 0
        current.append(text)  # a single over-long text goes alone; Voyage truncates it
        tokens += t
    if current:
        batches.append(current)
    return batches


def _voyage_client(api_key: str | None, api_base: str | None, timeout_s: float):
    import voyageai

    # max_retries=0: the SDK's own tenacity retries are off, ours apply.
    return voyageai.Client(api_key=api_key, max_retries=0, timeout=timeout_s, base_url=api_base)
