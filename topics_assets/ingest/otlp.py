"""OpenTelemetry traces exported as OTLP JSON, read into Trace objects.

An OTLP JSON record ({"resourceSpans": [{"resource", "scopeSpans": [{"spans": [...]}]}]})
is one export batch: it holds spans of many traces, and one trace's spans arrive
over many batches (an SDK exports each span when it ends, the root last). So
spans are grouped by traceId across the records of a file, and a trace is
emitted once the last record that mentions it has been read; a cheap byte scan
finds that record up front, so only traces still open are held in memory.

Span attributes follow one of these conventions (all may appear in one trace):
- OpenTelemetry GenAI: gen_ai.input.messages / gen_ai.output.messages /
  gen_ai.system_instructions (JSON with typed parts), gen_ai.operation.name,
  gen_ai.tool.* on execute_tool spans; the older flattened gen_ai.prompt.N.* /
  gen_ai.completion.N.* (OpenLLMetry) and gen_ai.prompt / gen_ai.completion
  JSON on span events.
- OpenInference: openinference.span.kind, llm.input_messages.N.message.* /
  llm.output_messages.N.message.* (role, content, contents, tool calls),
  input.value / output.value, tool.name.

Ids are hex as the OTLP spec says; base64 ids (protobuf's generic JSON mapping,
as Tempo returns them) are accepted too. This module needs no OpenTelemetry
package: it reads the JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from topics_assets.ingest.records import (
    MEMO,
    Context,
    RecordError,
    check_depth,
    dump,
    snippet_of,
    to_message,
    to_messages,
    type_name,
)
from topics_assets.preprocess.attachments import attachment_text
from topics_assets.traces import Message, Quarantined, Span, Trace

OTLP_KEYS = ("resourceSpans", "resource_spans", "batches")  # "batches": Tempo's API
_SCOPE_KEYS = ("scopeSpans", "scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans")
_STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR", "ERROR", "Error")
METADATA_MAX_KEYS = 64
METADATA_MAX_CHARS = 300

# OpenInference span kinds and GenAI operation names -> our span types.
_OI_KINDS = {
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "EMBEDDING": "other",
    "CHAIN": "function",
    "AGENT": "task",
    "EVALUATOR": "score",
    "GUARDRAIL": "other",
}
_GENAI_OPS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "execute_tool": "tool",
    "invoke_agent": "task",
    "create_agent": "task",
    "invoke_workflow": "task",
    "embeddings": "other",
    "evaluate": "score",
}
_TRACELOOP_KINDS = {"workflow": "task", "agent": "task", "task": "function", "tool": "tool"}

# Attributes that carry conversation content: parsed into messages, never kept as metadata.
_CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.tools.",
    "llm.prompts",
    "llm.choices",
)
_CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.definitions",
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "tool.parameters",
    "llm.input_messages",
    "llm.output_messages",
}


def detect(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in OTLP_KEYS)


# ---------------------------------------------------------------------------
# Values and ids



def parse(obj: dict, ctx: Context) -> Iterator[Trace]:
    """One export batch on its own: all of its traces, or RecordError for the first problem."""
    asm = OtlpAssembler(ctx)
    items = [*asm.add(obj, None, ""), *asm.finish()]
    bad = next((q for q in items if isinstance(q, Quarantined)), None)
    if bad is not None:
        raise RecordError(bad.reason)
    yield from items


def any_value(v: Any) -> Any:
    """An OTLP AnyValue ({"stringValue": "x"}, {"intValue": "3"}, arrays, kvlists) as a plain value."""
    if not isinstance(v, dict):
        return v
    for key, x in v.items():
        if key in ("stringValue", "string_value"):
            return x
        if key in ("intValue", "int_value"):
            try:
                return int(x)
            except (TypeError, ValueError):
                return x
        if key in ("doubleValue", "double_value"):
            try:
                return float(x)
            except (TypeError, ValueError):
                return x
        if key in ("boolValue", "bool_value"):
            return x
        if key in ("arrayValue", "array_value"):
            values = x.get("values") if isinstance(x, dict) else None
            return [any_value(i) for i in values] if isinstance(values, list) else []
        if key in ("kvlistValue", "kvlist_value"):
            values = x.get("values") if isinstance(x, dict) else None
            return attributes(values) if isinstance(values, list) else {}
        if key in ("bytesValue", "bytes_value"):
            return x
    return None  # {} is an empty AnyValue


def attributes(raw: Any) -> dict[str, Any]:
    """[{"key", "value": AnyValue}] as a dict (a dict is taken as already flat); odd entries are skipped."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, list):
        return {}
    out: dict[str, Any] = {}
    for kv in raw:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


_HEX = re.compile(r"[0-9a-fA-F]+")


def hex_id(value: Any, n_bytes: int) -> str | None:
    """A trace (16-byte) or span (8-byte) id as lowercase hex; None when it is not one."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if len(v) == 2 * n_bytes and _HEX.fullmatch(v):
        out = v.lower()
    else:
        try:
            raw = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_" if ("-" in v or "_" in v) else None,
                                   validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != n_bytes:
            return None
        out = raw.hex()
    return None if out.strip("0") == "" else out  # all-zero ids are invalid in OTLP


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _nanos(value: Any, what: str) -> float | None:
    if value is None or value == "" or value == 0 or value == "0":
        return None
    try:
        ns = int(value)
    except (TypeError, ValueError):
        raise RecordError(f"{what} must be an integer count of nanoseconds, got {str(value)[:40]!r}") from None
    if ns < 0 or ns > 10**20:
        raise RecordError(f"{what} out of range: {ns}")
    return ns / 1e9


def _json_or_text(value: Any) -> Any:
    """Structured attributes are JSON strings on spans; parse them when they are."""
    if isinstance(value, str):
        s = value.strip()
        if s[:1] in ("[", "{"):
            try:
                return json.loads(s)
            except (ValueError, RecursionError):
                return value
    return value


# ---------------------------------------------------------------------------
# Messages


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened "prefix.N.rest" attributes as [{rest: value}] in N order."""
    groups: dict[int, dict[str, Any]] = {}
    n = len(prefix)
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        idx, _, rest = key[n:].partition(".")
        if idx.isdigit() and rest:
            groups.setdefault(int(idx), {})[rest] = value
    return [groups[i] for i in sorted(groups)]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b.0.c": v} as {"a": {"b": {"0": {"c": v}}}}; a leaf that is also a prefix keeps its value under ""."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        node = root
        *parents, leaf = key.split(".")
        for p in parents:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {} if nxt is None else {"": nxt}
            node = nxt
        if isinstance(node.get(leaf), dict):
            node[leaf][""] = value
        else:
            node[leaf] = value
    return root


def _ordered(d: Any) -> list[Any]:
    """The values of a {"0": x, "1": y} dict in index order."""
    if not isinstance(d, dict):
        return []
    return [d[k] for k in sorted((k for k in d if k.isdigit()), key=int)]


def _content_parts(value: Any) -> Any:
    """Content logged as a JSON list of typed parts (OpenLLMetry does this) becomes that list."""
    parsed = _json_or_text(value)
    if isinstance(parsed, list) and parsed and all(isinstance(p, dict) and "type" in p for p in parsed):
        return parsed
    return value


def _openinference_message(flat: dict[str, Any], where: str) -> Message:
    m = _nest(flat).get("message")
    if not isinstance(m, dict):
        raise RecordError(f"{where}: no message.* attributes")
    content: Any = m.get("content")
    parts = []
    for c in _ordered(m.get("contents")):
        mc = c.get("message_content") if isinstance(c, dict) else None
        if not isinstance(mc, dict):
            continue
        kind = mc.get("type")
        if isinstance(mc.get("text"), str):
            parts.append({"type": "text", "text": mc["text"]})
        elif isinstance(mc.get("image"), dict):
            url = (mc["image"].get("image") or {}).get("url") if isinstance(mc["image"].get("image"), dict) else None
            parts.append({"type": "image_url", "image_url": {"url": url or ""}})
        elif kind in ("image", "audio", "video", "file", "document"):
            parts.append({"type": "text", "text": attachment_text(kind)})
    if parts:
        content = parts if content is None else [{"type": "text", "text": str(content)}, *parts]
    calls = []
    for tc in _ordered(m.get("tool_calls")):
        call = tc.get("tool_call") if isinstance(tc, dict) else None
        if isinstance(call, dict):
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            calls.append({"id": call.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")})
    fc_name = m.get("function_call_name")
    if isinstance(fc_name, str) and fc_name:
        calls.append({"name": fc_name, "arguments": m.get("function_call_arguments_json")})
    role = m.get("role")
    if not isinstance(role, str) or not role:
        role = "tool" if m.get("tool_call_id") is not None else "assistant" if calls else None
    return to_message(
        {"role": role, "content": content, "tool_calls": calls, "tool_call_id": m.get("tool_call_id"),
         "name": m.get("name")},
        where,
    )


def _openllmetry_message(flat: dict[str, Any], where: str, default_role: str) -> Message:
    m = _nest(flat)
    calls = [tc for tc in _ordered(m.get("tool_calls")) if isinstance(tc, dict)]
    fc = m.get("function_call")
    if isinstance(fc, dict) and fc.get("name"):
        calls.append(fc)
    role = m.get("role") if isinstance(m.get("role"), str) and m.get("role") else default_role
    return to_message(
        {"role": role, "content": _content_parts(m.get("content")), "tool_calls": calls,
         "tool_call_id": m.get("tool_call_id"), "name": m.get("name") if isinstance(m.get("name"), str) else None},
        where,
    )


def _genai_part_text(part: dict[str, Any]) -> str | None:
    """Text for a non-text GenAI part: attachments become placeholders; reasoning is left out."""
    kind = part.get("type")
    modality = part.get("modality") if isinstance(part.get("modality"), str) else None
    mime = part.get("mime_type") if isinstance(part.get("mime_type"), str) else None
    if kind == "blob":
        data = part.get("content")
        return attachment_text(modality, mime, data=data if isinstance(data, str) else "")
    if kind == "uri":
        return attachment_text(modality, mime, url=str(part.get("uri") or "uri"))
    if kind == "file":
        return attachment_text(modality, mime, file_id=str(part.get("file_id") or "?"))
    if kind == "reasoning":
        return None  # the model's private reasoning: not what the conversation said
    return json.dumps(part, ensure_ascii=False, separators=(",", ":"), default=str)


def genai_messages(value: Any, where: str, default_role: str = "user") -> list[Message]:
    """gen_ai.input.messages / gen_ai.output.messages (a JSON string or a structured value) as messages.

    Each message has a role and typed parts: text, tool_call, tool_call_response,
    blob / uri / file (attachments), reasoning. Tool responses become tool messages.
    """
    value = _json_or_text(value)
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected a list of messages, got {type_name(value)}")
    out: list[Message] = []
    for i, m in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise RecordError(f"{w}: a message must be an object, got {type_name(m)}")
        role = m.get("role") if isinstance(m.get("role"), str) and m.get("role") else default_role
        parts = m.get("parts")
        if parts is None and "content" in m:  # an OpenAI-style message in the same attribute
            out.append(to_message({**m, "role": role}, w))
            continue
        if not isinstance(parts, list):
            raise RecordError(f"{w}: 'parts' must be a list, got {type_name(parts)}")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[Message] = []
        for j, p in enumerate(parts):
            if isinstance(p, str):
                texts.append(p)
                continue
            if not isinstance(p, dict):
                raise RecordError(f"{w}.parts[{j}]: a part must be an object, got {type_name(p)}")
            kind = p.get("type")
            if kind == "text":
                texts.append(p.get("content") if isinstance(p.get("content"), str) else dump(p.get("content")))
            elif kind in ("tool_call", "server_tool_call"):
                calls.append({"id": p.get("id"), "name": p.get("name"), "arguments": p.get("arguments")})
            elif kind in ("tool_call_response", "server_tool_call_response"):
                resp = p.get("response", p.get("result"))
                results.append(
                    to_message({"role": "tool", "tool_call_id": p.get("id"),
                              "content": resp if isinstance(resp, str) else dump(resp)}, f"{w}.parts[{j}]")
                )
            else:
                text = _genai_part_text(p)
                if text is not None:
                    texts.append(text)
        if texts or calls:
            role_here = role if not (role == "tool" and not texts and calls) else "assistant"
            out.append(to_message({"role": role_here, "content": "\n".join(texts), "tool_calls": calls,
                                 "name": m.get("name") if isinstance(m.get("name"), str) else None}, w))
        out.extend(results)
    return out


def _system_instructions(value: Any, where: str) -> list[Message]:
    value = _json_or_text(value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [Message("system", value)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected a list of parts, got {type_name(value)}")
    texts = []
    for p in value:
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, dict):
            t = p.get("content") if p.get("type", "text") == "text" else _genai_part_text(p)
            if isinstance(t, str):
                texts.append(t)
    return [Message("system", "\n".join(texts))] if texts else []


def _legacy_json_messages(value: Any, where: str, default_role: str) -> list[Message]:
    """gen_ai.prompt / gen_ai.completion as one JSON attribute (semconv before 1.28)."""
    value = _json_or_text(value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [Message(default_role, value)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected messages, got {type_name(value)}")
    return [
        to_message({"role": default_role, **m} if isinstance(m, dict) else m, f"{where}[{i}]")
        for i, m in enumerate(value)
    ]


def _io_messages(value: Any, where: str, default_role: str) -> list[Message]:
    """OpenInference input.value / output.value of an LLM span with no message attributes."""
    value = _json_or_text(value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [Message(default_role, value)]
    if isinstance(value, dict) and isinstance(value.get("messages"), list):  # a chat request body
        return to_messages(value["messages"], f"{where}.messages")
    if isinstance(value, dict) and isinstance(value.get("choices"), list):  # a chat response body
        out = []
        for c in value["choices"]:
            if isinstance(c, dict) and isinstance(c.get("message"), dict):
                out.append(to_message({"role": "assistant", **c["message"]}, f"{where}.choices"))
        return out
    return [Message(default_role, dump(value))]


def _llm_messages(attrs: dict[str, Any], events: list[dict], where: str) -> tuple[list[Message], list[Message], bool]:
    """(input, output, found) for an LLM span, from whichever convention it uses."""
    inp: list[Message] = []
    out: list[Message] = []
    # Content recorded on an event instead of the span (GenAI event mode, older semconv).
    ev_attrs: dict[str, Any] = {}
    for e in events:
        ev_attrs.update({k: v for k, v in e["attributes"].items() if k not in attrs})
    a = {**ev_attrs, **attrs} if ev_attrs else attrs
    found = False
    if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a or "gen_ai.system_instructions" in a:
        inp = _system_instructions(a.get("gen_ai.system_instructions"), f"{where} gen_ai.system_instructions")
        inp += genai_messages(a.get("gen_ai.input.messages"), f"{where} gen_ai.input.messages")
        out = genai_messages(a.get("gen_ai.output.messages"), f"{where} gen_ai.output.messages", "assistant")
        found = True
    elif any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in a):
        inp = [_openllmetry_message(m, f"{where} gen_ai.prompt.{i}", "user")
               for i, m in enumerate(_indexed(a, "gen_ai.prompt."))]
        out = [_openllmetry_message(m, f"{where} gen_ai.completion.{i}", "assistant")
               for i, m in enumerate(_indexed(a, "gen_ai.completion."))]
        found = True
    elif any(k.startswith(("llm.input_messages.", "llm.output_messages.")) for k in a):
        inp = [_openinference_message(m, f"{where} llm.input_messages.{i}")
               for i, m in enumerate(_indexed(a, "llm.input_messages."))]
        out = [_openinference_message(m, f"{where} llm.output_messages.{i}")
               for i, m in enumerate(_indexed(a, "llm.output_messages."))]
        found = True
    elif "gen_ai.prompt" in a or "gen_ai.completion" in a:
        inp = _legacy_json_messages(a.get("gen_ai.prompt"), f"{where} gen_ai.prompt", "user")
        out = _legacy_json_messages(a.get("gen_ai.completion"), f"{where} gen_ai.completion", "assistant")
        found = True
    if not inp and ("input.value" in a or "traceloop.entity.input" in a):
        inp = _io_messages(_get(a, "input.value", "traceloop.entity.input"), f"{where} input.value", "user")
        found = found or bool(inp)
    if not out and ("output.value" in a or "traceloop.entity.output" in a):
        out = _io_messages(_get(a, "output.value", "traceloop.entity.output"), f"{where} output.value", "assistant")
        found = found or bool(out)
    return inp, out, found


# ---------------------------------------------------------------------------
# Spans


def _span_type(attrs: dict[str, Any]) -> str:
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in _OI_KINDS:
        return _OI_KINDS[kind.upper()]
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str) and op.lower() in _GENAI_OPS:
        return _GENAI_OPS[op.lower()]
    tl = attrs.get("traceloop.span.kind")
    if isinstance(tl, str) and tl.lower() in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[tl.lower()]
    for k in attrs:
        if k.startswith(("gen_ai.prompt", "gen_ai.completion", "llm.input_messages", "llm.output_messages")) or k in (
            "gen_ai.input.messages",
            "gen_ai.output.messages",
        ):
            return "llm"
    if "gen_ai.tool.name" in attrs:
        return "tool"
    if "gen_ai.evaluation.name" in attrs or "evaluation.name" in attrs:
        return "score"
    return "other"


def _metadata(attrs: dict[str, Any]) -> dict[str, Any]:
    """Small scalar attributes (model, token usage, ids): kept for SQL, never shown to the facet model."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if len(out) >= METADATA_MAX_KEYS:
            break
        if k in _CONTENT_KEYS or k.startswith(_CONTENT_PREFIXES):
            continue
        if isinstance(v, str):
            out[k] = v if len(v) <= METADATA_MAX_CHARS else v[:METADATA_MAX_CHARS] + "..."
        elif isinstance(v, (bool, int, float)) or v is None:
            out[k] = v
    return out


def _error(status: Any, events: list[dict], attrs: dict[str, Any]) -> str | None:
    if not isinstance(status, dict) or status.get("code") not in _STATUS_ERROR:
        return None
    for e in events:
        if e["name"] == "exception":
            a = e["attributes"]
            typ, msg = a.get("exception.type"), a.get("exception.message")
            text = ": ".join(str(x) for x in (typ, msg) if x)
            if text:
                return text
    msg = status.get("message")
    if isinstance(msg, str) and msg:
        return msg
    return str(attrs.get("error.type") or "failed")


def _events(raw: Any) -> list[dict]:
    if not isinstance(raw, list):
        return []
    return [{"name": e.get("name") or "", "attributes": attributes(e.get("attributes"))}
            for e in raw if isinstance(e, dict)]


def _tool_value(attrs: dict[str, Any], *keys: str) -> Any:
    v = _get(attrs, *keys)
    return _json_or_text(v) if v is not None else None


@dataclass
class _Parsed:
    trace_id: str
    span: Span
    openinference: bool


def parse_span(raw: Any, where: str) -> _Parsed:
    """One OTLP span as our Span, with its (hex) trace id. Raises RecordError naming what is wrong."""
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: a span must be an object, got {type_name(raw)}")
    trace_id = hex_id(_get(raw, "traceId", "trace_id"), 16)
    if trace_id is None:
        raise RecordError(f"{where}: missing or invalid traceId (got {str(_get(raw, 'traceId', 'trace_id'))[:40]!r})")
    span_id = hex_id(_get(raw, "spanId", "span_id"), 8)
    if span_id is None:
        raise RecordError(f"{where}: missing or invalid spanId (got {str(_get(raw, 'spanId', 'span_id'))[:40]!r})")
    raw_parent = _get(raw, "parentSpanId", "parent_span_id")
    parent = None
    if raw_parent not in (None, ""):
        parent = hex_id(raw_parent, 8)
        if parent is None:
            raise RecordError(f"{where}: invalid parentSpanId {str(raw_parent)[:40]!r}")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise RecordError(f"{where}: 'name' must be a string, got {type_name(name)}")
    attrs = attributes(raw.get("attributes"))
    events = _events(raw.get("events"))
    span_type = _span_type(attrs)
    inp: Any = None
    out: Any = None
    meta = _metadata(attrs)
    if span_type == "llm":
        inp, out, _ = _llm_messages(attrs, events, where)
    elif span_type == "tool":
        inp = _tool_value(attrs, "gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
        out = _tool_value(attrs, "gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
        call_id = _get(attrs, "gen_ai.tool.call.id", "tool_call.id", "tool.call.id")
        if call_id is not None:
            meta["tool_call_id"] = str(call_id)
        tool_name = _get(attrs, "gen_ai.tool.name", "tool.name", "traceloop.entity.name")
        if isinstance(tool_name, str) and tool_name:
            name = tool_name
        elif name and name.startswith("execute_tool "):
            name = name[len("execute_tool "):]
    else:
        inp = _tool_value(attrs, "input.value", "traceloop.entity.input")
        out = _tool_value(attrs, "output.value", "traceloop.entity.output")
    span = Span(
        id=span_id,
        type=span_type,
        parent_id=parent,
        name=name,
        input=inp,
        output=out,
        metadata=meta,
        start_time=_nanos(_get(raw, "startTimeUnixNano", "start_time_unix_nano"), f"{where}: startTimeUnixNano"),
        end_time=_nanos(_get(raw, "endTimeUnixNano", "end_time_unix_nano"), f"{where}: endTimeUnixNano"),
        error=_error(raw.get("status"), events, attrs),
    )
    oi = "openinference.span.kind" in attrs or any(k.startswith("llm.input_messages.") for k in attrs)
    return _Parsed(trace_id, span, oi)


def iter_spans(doc: dict, where: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, resource attributes, raw span) for every span of an OTLP record.

    Raises RecordError when the record's own structure is wrong (then no span of it can be trusted).
    """
    groups = _get(doc, *OTLP_KEYS)
    if not isinstance(groups, list):
        raise RecordError(f"'resourceSpans' must be a list, got {type_name(groups)}")
    for i, rs in enumerate(groups):
        w = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise RecordError(f"{w} must be an object, got {type_name(rs)}")
        resource = rs.get("resource")
        res_attrs = attributes(resource.get("attributes")) if isinstance(resource, dict) else {}
        scopes = _get(rs, *_SCOPE_KEYS)
        if scopes is None:
            continue
        if not isinstance(scopes, list):
            raise RecordError(f"{w}.scopeSpans must be a list, got {type_name(scopes)}")
        for j, ss in enumerate(scopes):
            if not isinstance(ss, dict):
                raise RecordError(f"{w}.scopeSpans[{j}] must be an object, got {type_name(ss)}")
            spans = ss.get("spans")
            if spans is None:
                continue
            if not isinstance(spans, list):
                raise RecordError(f"{w}.scopeSpans[{j}].spans must be a list, got {type_name(spans)}")
            for k, raw in enumerate(spans):
                yield f"{w}.scopeSpans[{j}].spans[{k}]", res_attrs, raw


# ---------------------------------------------------------------------------
# Grouping spans into traces, across the records of a file


@dataclass
class _Open:
    """A trace whose spans are still arriving."""

    spans: dict[str, Span] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)  # of the root span, else the first span
    has_root: bool = False
    openinference: bool = False
    problem: tuple[int | None, str, str] | None = None  # (line, reason, snippet) of the first bad span
    line: int | None = None  # the last line that brought spans of it


def _project_hint(res: dict[str, Any]) -> tuple[Any, str | None]:
    """(explicit project, derived project) from resource attributes."""
    explicit = res.get("topics.project")
    derived = res.get("openinference.project.name")
    if not isinstance(derived, str) or not derived.strip():
        svc = res.get("service.name")
        derived = svc if isinstance(svc, str) and svc and not svc.startswith("unknown_service") else None
    return explicit, derived.strip() if isinstance(derived, str) else None


class OtlpAssembler:
    """Collects OTLP spans by trace id; emits each trace once its last record has been read.

    last_lines maps trace id -> the last line of the file that mentions it (from
    last_lines_in()); without it every trace is held until finish().
    """

    def __init__(self, ctx: Context, last_lines: dict[str, int] | None = None):
        self.ctx = ctx
        self.open: dict[str, _Open] = {}
        self.due: dict[int, list[str]] = {}  # line -> traces whose last mention it is
        for tid, line in (last_lines or {}).items():
            self.due.setdefault(line, []).append(tid)
        self.done_through = 0

    def add(self, doc: dict, line: int | None, where: str) -> Iterator[Quarantined]:
        """Take one record's spans; yields a Quarantined for a span that names no valid trace."""
        prefix = f"{where}: " if where else ""
        try:
            items = list(iter_spans(doc, prefix))
        except RecordError as e:
            yield Quarantined(self.ctx.source, line, f"{prefix}{e}", snippet_of(dump(doc)))
            return
        token = MEMO.set({})  # spans of one record share the messages they re-send
        try:  # (no yield while the memo is set: the caller's code would run inside it)
            problems = list(self._add_spans(items, line, prefix))
        finally:
            MEMO.reset(token)
        yield from problems

    def _add_spans(self, items: list, line: int | None, prefix: str) -> Iterator[Quarantined]:
        for w, res, raw in items:
            try:
                parsed = parse_span(raw, w)
            except (RecordError, RecursionError) as e:
                reason = str(e) if isinstance(e, RecordError) else f"{w}: nested too deeply"
                tid = hex_id(_get(raw, "traceId", "trace_id"), 16) if isinstance(raw, dict) else None
                if tid is None:  # cannot be placed in a trace: quarantined alone
                    yield Quarantined(self.ctx.source, line, f"{prefix}{reason}", snippet_of(dump(raw)))
                    continue
                t = self.open.setdefault(tid, _Open())
                if t.problem is None:
                    t.problem = (line, f"{prefix}{reason}", snippet_of(dump(raw)))
                continue
            t = self.open.setdefault(parsed.trace_id, _Open())
            t.line = line
            if t.problem is not None:
                continue  # already quarantined whole; keep no spans of it
            t.spans[parsed.span.id] = parsed.span  # a span exported again replaces its earlier copy
            t.openinference = t.openinference or parsed.openinference
            if parsed.span.parent_id is None and not t.has_root:
                t.resource, t.has_root = res, True
            elif not t.resource:
                t.resource = res

    def ready(self, line: int) -> Iterator[Trace | Quarantined]:
        """Traces no later line mentions (each line's list is looked at once)."""
        for n in range(self.done_through + 1, line + 1):
            for tid in self.due.pop(n, ()):
                if tid in self.open:
                    yield self._emit(tid, self.open.pop(tid))
        self.done_through = max(self.done_through, line)

    def finish(self) -> Iterator[Trace | Quarantined]:
        for tid in list(self.open):
            yield self._emit(tid, self.open.pop(tid))

    def _emit(self, tid: str, t: _Open) -> Trace | Quarantined:
        if t.problem is not None:
            line, reason, snippet = t.problem
            return Quarantined(self.ctx.source, line, f"{reason} (trace {tid} quarantined whole)", snippet, tid)
        where = f"line {t.line}: trace {tid}" if t.line is not None else f"trace {tid}"

        def quarantined(reason: str) -> Quarantined:
            return Quarantined(self.ctx.source, t.line, f"{where}: {reason}", "", tid)

        spans = list(t.spans.values())
        explicit, derived = _project_hint(t.resource)
        try:
            project = self.ctx.project_for(explicit, derived)
        except RecordError as e:
            return quarantined(f"resource attribute topics.project: {e}")
        if not any(_has_content(s) for s in spans):
            return quarantined(
                f"no content to summarise in its {len(spans)} span(s): no messages, inputs, outputs or errors "
                "(turn on content capture, e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)"
            )
        starts = [s.start_time for s in spans if s.start_time is not None]
        started_at = datetime.fromtimestamp(min(starts), tz=timezone.utc) if starts else self.ctx.now
        trace = Trace(tid, project, started_at, spans, "openinference" if t.openinference else "otel")
        try:
            return check_depth(trace)
        except RecordError as e:
            return quarantined(str(e))


SPAN_FORMATS = frozenset({"otel", "openinference"})  # formats whose traces may arrive in several exports


def merge_exports(earlier: Trace, later: Trace) -> Trace:
    """One trace from two exports of its spans (exporter batches, rotated or separate files).

    A span is immutable once ended, so the union is the trace; a span in both comes from the later
    export, so a fuller re-export still replaces everything it re-sends.
    """
    spans = {s.id: s for s in earlier.spans}
    spans.update({s.id: s for s in later.spans})

    def has_root(t: Trace) -> bool:
        return any(s.parent_id is None for s in t.spans)

    # The project comes from the root span's resource: keep the earlier one if only it has the root.
    project = earlier.project if has_root(earlier) and not has_root(later) else later.project
    fmt = "openinference" if "openinference" in (earlier.format, later.format) else later.format
    return Trace(later.trace_id, project, min(earlier.started_at, later.started_at), list(spans.values()), fmt,
                 later.labels or earlier.labels)


def _has_content(s: Span) -> bool:
    if s.type == "score":
        return False  # dropped by the preprocessor anyway
    if s.error:
        return True
    if s.type == "llm":
        return bool(s.input) or bool(s.output)
    return any(v not in (None, "", [], {}) for v in (s.input, s.output))


_TRACE_ID_BYTES = re.compile(rb'"trace(?:Id|_id)"\s*:\s*"([^"\\]{1,64})"')


def last_lines_in(lines: Iterator[tuple[int, bytes | None]]) -> dict[str, int]:
    """For each trace id in an OTLP JSONL file, the last line that mentions it.

    A byte scan, no JSON parsing: cheap next to reading the records, and it lets
    the reader emit (and forget) each trace as soon as it is complete.
    """
    last: dict[str, int] = {}
    for lineno, raw in lines:
        if raw is None or not (b"esourceSpans" in raw or b"esource_spans" in raw or b'"batches"' in raw):
            continue
        for m in _TRACE_ID_BYTES.finditer(raw):
            tid = hex_id(m.group(1).decode("ascii", "replace"), 16)
            if tid is not None:
                last[tid] = lineno
    return last
