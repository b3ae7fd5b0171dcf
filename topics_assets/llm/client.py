"""The chat client: litellm (any provider) with our retries, re-ask, breaker and usage counters."""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from typing import Any, Callable, Iterable


from ..config import LLMSettings
from .breaker import CircuitBreaker
from .concurrency import run_bounded
from .errors import BadOutput, LLMError, LLMOutputError, LLMResult
from .output import parse_json_object, reask_message
from .retries import BACKOFF_CAP_S, RetryPolicy

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REASK_MAX_CHARS = 4000  # how much of a bad answer is shown back to the model

_litellm_module = None
_litellm_lock = threading.Lock()


def litellm_module():
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
        max_retry_after_s: float | None = None,  # None: settings.max_retry_after_s
    ):
        if not settings.model:
            raise LLMError("no LLM model is configured (llm.model / TOPICS_LLM_MODEL)", reason="not_configured")
        self.settings = settings
        if api_key is None and settings.api_key_env:
            api_key = os.environ.get(settings.api_key_env)
        self._api_key = api_key
        if backoff_base_s is None:
            backoff_base_s = settings.backoff_base_s
        if max_retry_after_s is None:
            max_retry_after_s = settings.max_retry_after_s
        self.retry = RetryPolicy(settings.max_retries, backoff_base_s, backoff_cap_s, max_retry_after_s,
                                 deadline_s=settings.deadline_s or settings.timeout_s)
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
                try:
                    resp, n = self._complete(messages, schema, schema_name)
                except LLMError as e:
                    if e.reason != "invalid_json":  # an answer whose bytes are not UTF-8 (retries.py)
                        raise
                    attempts += e.attempts
                    bad = BadOutput("invalid_json", "the answer was not valid UTF-8 text")
                    if round_ == 1:
                        raise LLMOutputError(str(bad), bad.reason, attempts) from e
                    self._add(reasks=1)
                    messages = messages + [{"role": "user", "content": reask_message(bad)}]
                    continue
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
                except BadOutput as bad:
                    if round_ == 1:
                        raise LLMOutputError(str(bad), bad.reason, attempts, content=_content_of(resp)) from bad
                    self._add(reasks=1)
                    bad_text = (_content_of(resp) or "")[:REASK_MAX_CHARS]
                    messages = messages + [
                        {"role": "assistant", "content": bad_text},
                        {"role": "user", "content": reask_message(bad)},
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
            raise BadOutput("empty_output", "the response had no choices")
        choice = choices[0]
        refusal = getattr(getattr(choice, "message", None), "refusal", None)
        if refusal:
            raise BadOutput("refusal", f"the model refused: {str(refusal)[:200]}")
        content = _content_of(resp)
        try:
            data = parse_json_object(content)
        except BadOutput as bad:
            if getattr(choice, "finish_reason", None) == "length":
                raise BadOutput("truncated", f"the answer hit the output token limit ({bad})") from bad
            raise
        if validate is not None:
            try:
                validate(data)
            except (ValueError, KeyError, TypeError) as e:
                raise BadOutput("schema_invalid", f"does not match the schema: {e}") from e
        return data

    def _complete(self, messages: list[dict], schema: dict, schema_name: str) -> tuple[Any, int]:
        """One completion with retries; steps down the response_format ladder on a 400 about it."""
        litellm = litellm_module()
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
            cost = litellm_module().completion_cost(completion_response=resp)
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
    litellm = litellm_module()
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
