"""Chat records: {"id", "messages": [...]} (OpenAI-style messages), one LLM span."""

from __future__ import annotations

from collections.abc import Iterator

from topics_assets.ingest.records import (
    Context,
    first,
    id_of,
    optional_dict,
    time_of,
    to_messages,
)
from topics_assets.traces import Span, Trace


def detect(obj: dict) -> bool:
    return "messages" in obj


def parse(obj: dict, ctx: Context) -> Iterator[Trace]:
    yield parse_chat(obj, ctx)


def parse_chat(obj: dict, ctx: Context) -> Trace:
    trace_id = id_of(first(obj, "id", "trace_id"), "'id' (or 'trace_id')")
    messages = to_messages(obj.get("messages"), "messages")
    span = Span(id="llm", type="llm", name="chat", input=messages, metadata=optional_dict(obj, "metadata"))
    return Trace(
        trace_id=trace_id,
        project=ctx.project_for(obj.get("project")),
        started_at=time_of(obj.get("timestamp"), "'timestamp'") or ctx.now,
        spans=[span],
        format="chat",
        labels=optional_dict(obj, "labels"),
    )
