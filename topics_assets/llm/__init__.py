"""The one place LLM calls go through: litellm (any provider) with our own retries on top.

An outage, 429s or malformed output cost retries, not data:

- litellm's and the openai SDK's own retries are off (num_retries=0, max_retries=0): one policy,
  one set of counters, one place that honours Retry-After (retries.py).
- retryable: 429, 408/409/425, 5xx, timeouts, connection errors (exponential backoff, full
  jitter, never shorter than the server's Retry-After). Other 4xx fail at once.
- output: one JSON object per call; malformed or invalid output is asked for again once (output.py).
- outage: after llm.circuit_breaker calls in a row fail for endpoint reasons (5xx, 429, timeouts,
  connection, auth) once their retries are spent, the rest of that map() is not sent; those
  items fail at once with reason circuit_open and are retried on the next run (breaker.py).

litellm is imported lazily (it takes seconds), and with LITELLM_LOCAL_MODEL_COST_MAP set so that
importing it never reaches for the internet. Remote embeddings live in topics_assets.embed.remote.
"""

from .breaker import CircuitBreaker
from .client import LLMClient, stats_delta
from .concurrency import run_bounded
from .errors import LLMError, LLMOutputError, LLMResult
from .output import parse_json_object
from .retries import RetryPolicy, classify_error, retry_after_s

__all__ = ["CircuitBreaker", "LLMClient", "LLMError", "LLMOutputError", "LLMResult", "RetryPolicy",
           "classify_error", "parse_json_object", "retry_after_s", "run_bounded", "stats_delta"]
