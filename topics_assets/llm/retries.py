"""One retry policy for chat and embeddings: backoff with full jitter, never sooner than Retry-After.

A Retry-After is waited out in full up to a ceiling (llm.max_retry_after_s); past it the call fails at
once, with the reason its error has (rate_limited for a 429), so the run moves on instead of sleeping.
"""

from __future__ import annotations

import contextvars
import email.utils
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


from .errors import LLMError

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
MAX_RETRY_AFTER_S = 60.0  # a Retry-After longer than this is a quota, not a blip: fail the call

_TIMEOUT_NAMES = {"Timeout", "APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout"}
_CONNECTION_NAMES = {"APIConnectionError", "ConnectError", "RemoteProtocolError", "ServiceUnavailableError"}
# The answer's bytes are not UTF-8: the model's output is bad, not the endpoint (re-ask, never retry).
_UNDECODABLE_NAMES = {"UnicodeDecodeError"}
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
    if names & _UNDECODABLE_NAMES:
        return False, "invalid_json", status
    if status is None or status == 500:
        # litellm reports a dropped connection, a missing API key, and a 200 answer that is not
        # UTF-8 as InternalServerError (500); the cause chain says what really happened (seen
        # against FakeLLMServer).
        causes = _cause_names(exc)
        if causes & _UNDECODABLE_NAMES:
            return False, "invalid_json", status
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


class DeadlineExceeded(TimeoutError):
    """A request still unanswered at its total deadline (classified as a retryable `timeout`)."""


def call_with_deadline(fn: Callable[[], Any], deadline_s: float | None) -> Any:
    """fn(), but the caller waits at most `deadline_s` seconds in all, then DeadlineExceeded.

    SDK timeouts (httpx, and so litellm, openai and voyageai) bound each read, not the request:
    a server that trickles a few bytes at a time keeps a call open for ever. fn runs in a daemon
    thread; on the deadline the caller moves on and the abandoned request ends when its own
    per-read timeout or the server does (its answer is dropped). None or 0: no deadline.
    """
    if not deadline_s or deadline_s <= 0:
        return fn()
    done = threading.Event()
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(fn)
        except BaseException as e:  # noqa: BLE001 (handed to the caller below)
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="topics-deadline", daemon=True).start()
    if not done.wait(deadline_s):
        raise DeadlineExceeded(f"no complete answer within the {deadline_s:g} s deadline")
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    deadline_s: float | None = None  # total seconds per attempt (call_with_deadline); None: none

    def delay(self, retry_index: int, exc: BaseException) -> float:
        """Full jitter (AWS style), but never less than the server's Retry-After."""
        jitter = random.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * (2**retry_index)))
        asked = retry_after_s(exc)
        return jitter if asked is None else max(jitter, asked)

    def run(self, call: Callable[[], Any], on_error: Callable[[str, bool], None] | None = None) -> tuple[Any, int]:
        """(call's result, attempts). Raises LLMError once retries are spent or on a hard error.

        on_error(reason, will_retry) is told about every failed attempt, for counters.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return call_with_deadline(call, self.deadline_s), attempt
            except Exception as exc:  # noqa: BLE001 (classified right below)
                retryable, reason, status = classify_error(exc)
                asked = retry_after_s(exc) if retryable else None
                too_long = asked is not None and asked > self.max_retry_after_s
                will_retry = retryable and attempt <= self.max_retries and not too_long
                if on_error:
                    on_error(reason, will_retry)
                if not will_retry:
                    detail = f"{type(exc).__name__}: {exc}".strip()
                    if too_long:
                        detail = (f"the server asked to wait {asked:.0f} s (Retry-After), more than "
                                  f"llm.max_retry_after_s ({self.max_retry_after_s:g} s); {detail}")
                    elif retryable:
                        detail = f"gave up after {attempt} attempts; last error {detail}"
                    raise LLMError(detail[:2000], reason=reason, attempts=attempt, status_code=status) from exc
                time.sleep(self.delay(attempt - 1, exc))
