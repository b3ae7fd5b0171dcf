"""The small frozen result every stage returns.

A stage reports what it did as data; `to_metadata()` turns that into the plain JSON-able dict
that the CLI prints and the Dagster layer wraps as asset metadata, so both say the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


@dataclasses.dataclass(frozen=True)
class StageResult:
    """Base for stage results: subclasses are frozen dataclasses of counts and figures.

    A stage whose items can fail names the field counting the items it finished in DONE_FIELD, and
    has `failed` and `failures_by_reason` fields: its metadata then carries a `progress` entry, which
    a run sums over its partitions to tell "failed" (nothing done, something failed) from "nothing to do".
    """

    DONE_FIELD: ClassVar[str | None] = None

    def to_metadata(self) -> dict[str, Any]:
        meta = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}
        if self.DONE_FIELD:
            meta["progress"] = {"done": getattr(self, self.DONE_FIELD), "failed": getattr(self, "failed"),
                                "failures_by_reason": dict(getattr(self, "failures_by_reason"))}
        return meta


def add_progress(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Two `progress` entries summed (the reasons too)."""
    total = total or {"done": 0, "failed": 0, "failures_by_reason": {}}
    reasons = dict(total["failures_by_reason"])
    for reason, n in (more.get("failures_by_reason") or {}).items():
        reasons[reason] = reasons.get(reason, 0) + int(n)
    return {"done": total["done"] + int(more.get("done") or 0), "failed": total["failed"] + int(more.get("failed") or 0),
            "failures_by_reason": reasons}


def stalled(progress: dict[str, Any] | None) -> bool:
    """A stage that finished nothing because every item it tried failed (not one with nothing to do)."""
    return bool(progress) and progress["failed"] > 0 and progress["done"] == 0


def describe_failures(progress: dict[str, Any]) -> str:
    """`40 failed (timeout 30, server_error 10)`, most frequent reason first."""
    reasons = sorted(progress["failures_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    return f"{progress['failed']} failed ({', '.join(f'{r} {n}' for r, n in reasons) or 'no reason recorded'})"
