"""The small frozen result every stage returns.

A stage reports what it did as data; `to_metadata()` turns that into the plain JSON-able dict
that the CLI prints and the Dagster layer wraps as asset metadata, so both say the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any


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
    """Base for stage results: subclasses are frozen dataclasses of counts and figures."""

    def to_metadata(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}
