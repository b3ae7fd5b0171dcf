"""Span-format trace records (as `topics demo` generates them) replayed as OpenTelemetry GenAI spans.

Tests and the benchmark feed the real SDK with realistic agent traces this way, so what crosses the
wire is what an instrumented agent would send. Needs opentelemetry-api (it comes with the SDK).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def _ns(stamp: str | None) -> int | None:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e9) if stamp else None


def _dump(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def span_attributes(span: dict) -> dict[str, Any]:
    """GenAI semantic-convention attributes for one span of a span-format record."""
    kind, inp, out = span.get("type"), span.get("input"), span.get("output")
    if kind == "llm":
        messages = inp.get("messages", inp) if isinstance(inp, dict) else inp
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": _dump(messages or [])}
        if out is not None:
            attrs["gen_ai.output.messages"] = _dump([out] if isinstance(out, dict) else out)
        model = (span.get("metadata") or {}).get("model")
        if model:
            attrs["gen_ai.request.model"] = model
        return attrs
    if kind == "tool":
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": span.get("name") or "tool"}
        if inp is not None:
            attrs["gen_ai.tool.call.arguments"] = _dump(inp)
        if out is not None:
            attrs["gen_ai.tool.call.result"] = _dump(out)
        return attrs
    attrs = {"gen_ai.operation.name": "invoke_agent"} if kind == "task" else {}
    if inp is not None:
        attrs["input.value"] = _dump(inp)
    if out is not None:
        attrs["output.value"] = _dump(out)
    return attrs


def emit_trace(tracer, record: dict) -> None:
    """Start and end one OpenTelemetry span per span of the record, with its times, parents and errors."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    spans = record["spans"]
    by_id: dict[str, Any] = {}
    children: dict[str | None, list[dict]] = {}
    for s in spans:
        children.setdefault(s.get("parent_id"), []).append(s)

    def start(s: dict) -> None:
        parent = by_id.get(s.get("parent_id"))
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        otel = tracer.start_span(s.get("name") or s.get("type") or "span", context=ctx,
                                 attributes=span_attributes(s), start_time=_ns(s.get("start_time")))
        by_id[s["id"]] = otel
        for child in children.get(s["id"], []):
            start(child)
        if s.get("error"):
            otel.set_status(Status(StatusCode.ERROR, str(s["error"])))
            otel.add_event("exception", {"exception.message": str(s["error"])})
        otel.end(end_time=_ns(s.get("end_time")))

    for root in children.get(None, []):
        start(root)
