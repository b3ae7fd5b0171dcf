"""Why a call failed for good, and what a good one returned."""

from __future__ import annotations

from dataclasses import dataclass




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


class BadOutput(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
