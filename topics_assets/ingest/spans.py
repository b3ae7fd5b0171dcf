"""Span-tree records: {"trace_id", "spans": [...]}, the project's own format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from topics_assets.ingest.records import (
    MEMO,
    Context,
    RecordError,
    dump,
    first,
    id_of,
    optional_dict,
    time_of,
    to_message,
    to_messages,
    type_name,
)
from topics_assets.traces import SPAN_TYPES, Message, Span, Trace

_SPAN_TYPE_ALIASES = {
    "eval": "score",
    "scorer": "score",
    "generation": "llm",
    "chat": "llm",
    "completion": "llm",
    "retriever": "retrieval",
}


def detect(obj: dict) -> bool:
    return "spans" in obj


def parse(obj: dict, ctx: Context) -> Iterator[Trace]:
    yield parse_spans(obj, ctx)


def _llm_input(value: Any, where: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("user", value)]
    if isinstance(value, dict) and "messages" in value:
        return to_messages(value["messages"], f"{where}.messages")
    if isinstance(value, list):
        return to_messages(value, where)
    raise RecordError(f"{where}: an llm input must be messages, {{'messages': [...]}} or text, got {type_name(value)}")


def _llm_output(value: Any, where: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("assistant", value)]
    if isinstance(value, list):
        return to_messages(value, where)
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list):
            out = []
            for i, choice in enumerate(value["choices"]):
                if not isinstance(choice, dict):
                    raise RecordError(f"{where}.choices[{i}] must be an object")
                if isinstance(choice.get("message"), dict):
                    out.append(to_message({"role": "assistant", **choice["message"]}, f"{where}.choices[{i}].message"))
                elif isinstance(choice.get("text"), str):
                    out.append(Message("assistant", choice["text"]))
            return out
        if "messages" in value:
            return to_messages(value["messages"], f"{where}.messages")
        if "role" in value or "content" in value or "tool_calls" in value:
            return [to_message({"role": "assistant", **value}, where)]
    raise RecordError(
        f"{where}: an llm output must be a message, messages, {{'choices': [...]}} or text, got {type_name(value)}"
    )


def _error(value: Any) -> str | None:
    if value is None or value is False or value == "":
        return None
    if value is True:
        return "failed"
    return value if isinstance(value, str) else dump(value)


def _span(s: Any, i: int) -> Span:
    where = f"spans[{i}]"
    if not isinstance(s, dict):
        raise RecordError(f"{where} must be an object, got {type_name(s)}")
    raw_type = s.get("type") or s.get("span_type") or "other"
    if not isinstance(raw_type, str):
        raise RecordError(f"{where}: 'type' must be a string, got {type_name(raw_type)}")
    span_type = _SPAN_TYPE_ALIASES.get(raw_type.lower(), raw_type.lower())
    span_type = span_type if span_type in SPAN_TYPES else "other"
    parent = s.get("parent_id")
    name = s.get("name")
    if name is not None and not isinstance(name, str):
        raise RecordError(f"{where}: 'name' must be a string, got {type_name(name)}")
    start, end = (time_of(s.get(k), f"{where}.{k}") for k in ("start_time", "end_time"))
    inp, out = s.get("input"), s.get("output")
    if span_type == "llm":
        inp, out = _llm_input(inp, f"{where}.input"), _llm_output(out, f"{where}.output")
    return Span(
        id=id_of(first(s, "id", "span_id"), f"{where}: 'id'"),
        type=span_type,
        parent_id=None if parent is None else id_of(parent, f"{where}: 'parent_id'"),
        name=name,
        input=inp,
        output=out,
        metadata=optional_dict(s, "metadata", f"{where}: "),
        start_time=start.timestamp() if start else None,
        end_time=end.timestamp() if end else None,
        error=_error(s.get("error")),
    )


def parse_spans(obj: dict, ctx: Context) -> Trace:
    trace_id = id_of(first(obj, "trace_id", "id"), "'trace_id' (or 'id')")
    raw_spans = obj.get("spans")
    if not isinstance(raw_spans, list) or not raw_spans:
        raise RecordError(
            f"'spans' must be a non-empty list, got {type_name(raw_spans) if not isinstance(raw_spans, list) else 'an empty list'}"
        )
    token = MEMO.set({})
    try:
        spans = [_span(s, i) for i, s in enumerate(raw_spans)]
    finally:
        MEMO.reset(token)
    seen: set[str] = set()
    for s in spans:
        if s.id in seen:
            raise RecordError(f"duplicate span id {s.id!r}")
        seen.add(s.id)
    starts = [s.start_time for s in spans if s.start_time is not None]
    started_at = (
        time_of(obj.get("started_at"), "'started_at'")
        or (datetime.fromtimestamp(min(starts), tz=timezone.utc) if starts else None)
        or time_of(obj.get("timestamp"), "'timestamp'")
        or ctx.now
    )
    if isinstance(obj.get("metadata"), dict):
        roots = [s for s in spans if s.parent_id is None] or spans
        roots[0].metadata = {**obj["metadata"], **roots[0].metadata}
    return Trace(
        trace_id, ctx.project_for(obj.get("project")), started_at, spans, "spans", optional_dict(obj, "labels")
    )
