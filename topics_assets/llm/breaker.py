"""Stop sending once the endpoint is plainly down, so an outage costs seconds, not every retry."""

from __future__ import annotations

import threading


from .errors import LLMError

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
