"""The reader registry: each record goes to the first format whose detect() accepts it.

A format is a module with `detect(obj) -> bool` and `parse(obj, ctx) -> Iterator[Trace]`;
adding one is a new module and an entry in READERS.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from topics_assets.ingest import chat, otlp, spans, tau2_bench, tau_bench
from topics_assets.ingest.records import (
    Context,
    RecordError,
    check_depth,
    dump,
    first,
    snippet_of,
    type_name,
)
from topics_assets.traces import Quarantined, Trace

READERS = (otlp, tau2_bench, tau_bench, spans, chat)  # auto-detection tries them in this order


def parse_or_quarantine(
    obj: Any, ctx: Context, line: int | None, where: str, raw: str | None
) -> Iterator[Trace | Quarantined]:
    try:
        traces = list(_parse(obj, ctx))
    except (RecordError, RecursionError) as e:
        reason = str(e) if isinstance(e, RecordError) else "nested too deeply"
        tid = first(obj, "trace_id", "id") if isinstance(obj, dict) else None
        trace_id = str(tid) if isinstance(tid, (str, int)) and not isinstance(tid, bool) else None
        yield Quarantined(
            ctx.source, line, f"{where}: {reason}", snippet_of(raw if raw is not None else dump(obj)), trace_id
        )
        return
    yield from traces


def parse_record(
    obj: Any,
    source: str,
    line: int | None,
    project: str | None = None,
    default_project: str = "default",
    now: datetime | None = None,
) -> list[Trace]:
    """The traces in one decoded record (a tau2-bench results object holds many).

    Raises RecordError naming the problem (prefixed with the line, when given)
    when the record is not a trace. The record's shape decides its format.
    """
    ctx = Context(source, project, default_project, now or datetime.now(timezone.utc))
    try:
        return list(_parse(obj, ctx))
    except RecordError as e:
        raise RecordError(f"line {line}: {e}" if line is not None else str(e)) from e


def _parse(obj: Any, ctx: Context) -> Iterator[Trace]:
    for trace in _parse_unchecked(obj, ctx):
        yield check_depth(trace)


def _parse_unchecked(obj: Any, ctx: Context) -> Iterator[Trace]:
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type_name(obj)}")
    reader = next((r for r in READERS if r.detect(obj)), None)
    if reader is None:
        keys = ", ".join(sorted(map(str, obj))[:10]) or "none"
        raise RecordError(
            "unknown record shape: expected 'messages' (chat), 'spans' (span tree), 'traj' (tau-bench), "
            f"'simulations' (tau2-bench) or 'resourceSpans' (OpenTelemetry OTLP JSON); keys: {keys}"
        )
    yield from reader.parse(obj, ctx)
