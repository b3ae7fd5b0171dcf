"""Read trace files of any supported shape into Trace objects, auto-detected per record.

Shapes: generic chat logs ({"messages": [...]}), span trees ({"spans": [...]}),
tau-bench run files (records with "traj"), tau2-bench results ({"simulations": [...]})
and OpenTelemetry OTLP JSON ({"resourceSpans": [...]}, GenAI or OpenInference
attributes; see otel.py). A record that cannot be parsed becomes a Quarantined
with a reason that names the problem; it never stops the rest of the file from
landing. Memory stays bounded by the largest record: JSONL is streamed, and a
line over MAX_RECORD_BYTES is skipped without being read whole.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topics_assets.preprocess.attachments import attachment_placeholder, is_attachment_part
from topics_assets.traces import SPAN_TYPES, Message, Quarantined, Span, Trace

SNIPPET_CHARS = 200
MAX_RECORD_BYTES = 256 * 1024 * 1024  # a line (or .json file) above this is quarantined unread
# Raw values (tool inputs and outputs, metadata, labels) nested deeper than this are
# quarantined: storing them (dataclasses.asdict, json.dumps) would overflow the stack.
MAX_VALUE_DEPTH = 64
_SKIP_CHUNK = 1 << 20
READ_ONLY_PREFIXES = ("get_", "search_", "list_", "find_", "calculate", "think")
TAU_BENCH_DOMAINS = ("airline", "retail")

_SPAN_TYPE_ALIASES = {
    "eval": "score",
    "scorer": "score",
    "generation": "llm",
    "chat": "llm",
    "completion": "llm",
    "retriever": "retrieval",
}
_ROLE_ALIASES = {"developer": "system", "function": "tool", "human": "user", "ai": "assistant", "model": "assistant"}


class RecordError(ValueError):
    """Why one record cannot become a trace: the reason a quarantine shows."""


@dataclass
class _Context:
    source: str
    project: str | None  # the CLI's --project: overrides everything
    default_project: str
    now: datetime

    def project_for(self, record_project: Any, derived: str | None = None) -> str:
        if self.project:
            return self.project
        if record_project is not None:
            if not isinstance(record_project, str) or not record_project.strip():
                raise RecordError(f"'project' must be a non-empty string, got {_type(record_project)}")
            return record_project.strip()
        return derived or self.default_project


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _snippet(text: str) -> str:
    return text[:SNIPPET_CHARS]


# ---------------------------------------------------------------------------
# Files


def read_file(
    path: str | Path,
    project: str | None = None,
    default_project: str = "default",
    now: datetime | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Trace | Quarantined]:
    """Every trace in the file, and a Quarantined for every record that is not one.

    .jsonl/.ndjson files are streamed line by line (memory stays bounded by the
    largest line, and lines over max_record_bytes are skipped unread); .json
    files hold one document: a list of records, a tau2-bench results object,
    an OTLP export, or a single record.
    """
    path = Path(path)
    ctx = _Context(str(path), project, default_project, now or datetime.now(timezone.utc))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path, ctx, max_record_bytes)
    elif suffix == ".json":
        yield from _read_json(path, ctx, max_record_bytes)
    else:
        yield Quarantined(
            ctx.source, None, f"unsupported file type {suffix or '(none)'!r}: expected .json, .jsonl or .ndjson"
        )


class iter_lines:  # noqa: N801 - used like a generator function
    """(line number, bytes with their newline, size) for each line of a binary file.

    A line longer than max_bytes comes back as None (with its size), read past
    in 1 MB chunks: one huge line costs neither the memory to hold it nor the
    rest of the file. A class, not a generator, so that it keeps no reference
    to the line it handed out (the caller frees it before parsing).
    """

    def __init__(self, f: Any, max_bytes: int = MAX_RECORD_BYTES):
        self.f, self.max_bytes, self.lineno = f, max_bytes, 0

    def __iter__(self) -> iter_lines:
        return self

    def __next__(self) -> tuple[int, bytes | None, int]:
        raw = self.f.readline(self.max_bytes + 1)
        if not raw:
            raise StopIteration
        self.lineno += 1
        if len(raw) > self.max_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            del raw
            while True:
                chunk = self.f.readline(_SKIP_CHUNK)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            return self.lineno, None, size
        return self.lineno, raw, len(raw)


def _line_text(raw: bytes, lineno: int) -> str:
    """The line as text without its newline (or a BOM on line 1), decoded without copying the bytes first."""
    end = len(raw) - (2 if raw.endswith(b"\r\n") else 1 if raw.endswith((b"\n", b"\r")) else 0)
    start = 3 if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
    with memoryview(raw)[start:end] as view:
        return str(view, "utf-8")


def _too_large(where: str, size: int, limit: int) -> str:
    return f"{where}: record too large ({size:,} bytes, limit {limit:,}); skipped unread"


def _read_jsonl(path: Path, ctx: _Context, max_bytes: int) -> Iterator[Trace | Quarantined]:
    from topics_assets.otel import OtlpAssembler, is_otlp, last_lines_in

    otlp: OtlpAssembler | None = None
    with path.open("rb") as f:
        for lineno, raw, size in iter_lines(f, max_bytes):
            if raw is None:
                yield Quarantined(ctx.source, lineno, _too_large(f"line {lineno}", size, max_bytes))
            elif raw and not raw.isspace():  # (no copy: the line may be huge)
                obj: Any = _FAILED
                try:
                    line = _line_text(raw, lineno)
                except UnicodeDecodeError as e:
                    snippet = _snippet(raw[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace").rstrip("\r\n"))
                    yield Quarantined(ctx.source, lineno, f"line {lineno}: not valid UTF-8 (byte {e.start})", snippet)
                    line = ""
                del raw
                if line:
                    try:
                        obj = _loads(line)
                    except ValueError as e:
                        reason = (
                            f"line {lineno}: not valid JSON: {getattr(e, 'msg', e)} "
                            f"at column {getattr(e, 'colno', '?')}"
                        )
                        yield Quarantined(ctx.source, lineno, reason, _snippet(line))
                    except RecursionError:
                        reason = f"line {lineno}: not valid JSON: nested too deeply"
                        yield Quarantined(ctx.source, lineno, reason, _snippet(line))
                if obj is not _FAILED and is_otlp(obj):
                    if otlp is None:  # one extra byte scan, only for files that hold OTLP
                        with path.open("rb") as g:
                            last = last_lines_in((n, r) for n, r, _ in iter_lines(g, max_bytes))
                        otlp = OtlpAssembler(ctx, last)
                    yield from otlp.add(obj, lineno, f"line {lineno}")
                elif obj is not _FAILED:
                    yield from _parse_or_quarantine(obj, ctx, lineno, f"line {lineno}", line)
                del line, obj
            if otlp is not None:
                yield from otlp.ready(lineno)
    if otlp is not None:
        yield from otlp.finish()


_FAILED = object()  # a line that did not decode


def _loads(text: str) -> Any:
    """json.loads, with lone UTF-16 surrogates ("\\ud800" escapes) replaced by U+FFFD.

    Python accepts them, but no UTF-8 store can hold them: one such escape would
    otherwise fail a whole ingest batch later.
    """
    obj = json.loads(text)
    if "\\ud" in text or "\\uD" in text:
        obj = _clean_surrogates(obj)
    return obj


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_str(s: str) -> str:
    return s if s.isascii() or not _SURROGATE.search(s) else _SURROGATE.sub("\ufffd", s)


def _clean_surrogates(obj: Any) -> Any:
    """Walks without recursion: a record may be nested as deep as the JSON parser allows."""
    if isinstance(obj, str):
        return _clean_str(obj)
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k in list(node):
                v = node[k]
                if isinstance(v, str):
                    v = _clean_str(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
                ck = _clean_str(k)
                if ck is not k:
                    del node[k]
                node[ck] = v
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = _clean_str(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
    return obj


def _read_json(path: Path, ctx: _Context, max_bytes: int) -> Iterator[Trace | Quarantined]:
    size = path.stat().st_size
    if size > max_bytes:
        yield Quarantined(ctx.source, None, _too_large(path.name, size, max_bytes) + " (split it into JSONL)")
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        snippet = _snippet(raw[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace"))
        yield Quarantined(ctx.source, None, f"{path.name}: not valid UTF-8 (byte {e.start})", snippet)
        return
    del raw
    try:
        doc = _loads(text)
    except RecursionError:
        yield Quarantined(ctx.source, None, f"{path.name}: not valid JSON: nested too deeply", _snippet(text))
        return
    except ValueError as e:
        where = f"line {e.lineno} column {e.colno}" if hasattr(e, "lineno") else "?"
        yield Quarantined(
            ctx.source,
            getattr(e, "lineno", None),
            f"{path.name}: not valid JSON: {getattr(e, 'msg', e)} at {where}",
            _snippet(text),
        )
        return
    from topics_assets.otel import OtlpAssembler, is_otlp

    if isinstance(doc, list):
        otlp = None
        for i, obj in enumerate(doc):
            if is_otlp(obj):
                otlp = otlp or OtlpAssembler(ctx)
                yield from otlp.add(obj, None, f"record {i}")
            else:
                yield from _parse_or_quarantine(obj, ctx, None, f"record {i}", None)
        if otlp is not None:
            yield from otlp.finish()
    elif is_otlp(doc):
        otlp = OtlpAssembler(ctx)
        yield from otlp.add(doc, None, path.name)
        yield from otlp.finish()
    elif isinstance(doc, dict) and "simulations" in doc:
        # One quarantine per bad simulation, not one for the whole results file.
        try:
            for i, sim, result in _tau2_results(doc, ctx):
                if isinstance(result, Trace):
                    yield result
                else:
                    sim_id = _first(sim, "id") if isinstance(sim, dict) else None
                    yield Quarantined(
                        ctx.source,
                        None,
                        f"simulation {i}: {result}",
                        _snippet(_dump(sim)),
                        str(sim_id) if sim_id else None,
                    )
        except RecordError as e:  # the results file itself is malformed
            yield Quarantined(ctx.source, None, f"{path.name}: {e}", _snippet(text))
    else:
        yield from _parse_or_quarantine(doc, ctx, None, path.name, None)


def _dump(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return repr(obj)[:SNIPPET_CHARS]


def _parse_or_quarantine(
    obj: Any, ctx: _Context, line: int | None, where: str, raw: str | None
) -> Iterator[Trace | Quarantined]:
    try:
        traces = list(_parse(obj, ctx))
    except (RecordError, RecursionError) as e:
        reason = str(e) if isinstance(e, RecordError) else "nested too deeply"
        tid = _first(obj, "trace_id", "id") if isinstance(obj, dict) else None
        trace_id = str(tid) if isinstance(tid, (str, int)) and not isinstance(tid, bool) else None
        yield Quarantined(
            ctx.source, line, f"{where}: {reason}", _snippet(raw if raw is not None else _dump(obj)), trace_id
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
    ctx = _Context(source, project, default_project, now or datetime.now(timezone.utc))
    try:
        return list(_parse(obj, ctx))
    except RecordError as e:
        raise RecordError(f"line {line}: {e}" if line is not None else str(e)) from e


def _too_deep(value: Any, limit: int = MAX_VALUE_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def check_depth(trace: Trace) -> Trace:
    """The trace, if every raw value in it nests at most MAX_VALUE_DEPTH deep; else RecordError saying where."""
    if _too_deep(trace.labels):
        raise RecordError(f"'labels' nested deeper than {MAX_VALUE_DEPTH} levels")
    for i, s in enumerate(trace.spans):
        for name in ("input", "output", "metadata"):
            if _too_deep(getattr(s, name)):
                raise RecordError(f"span {s.id!r} (spans[{i}]): '{name}' nested deeper than {MAX_VALUE_DEPTH} levels")
    return trace


def _parse(obj: Any, ctx: _Context) -> Iterator[Trace]:
    for trace in _parse_unchecked(obj, ctx):
        yield check_depth(trace)


def _parse_unchecked(obj: Any, ctx: _Context) -> Iterator[Trace]:
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_type(obj)}")
    from topics_assets.otel import OtlpAssembler, is_otlp

    if is_otlp(obj):  # one export batch: all of its traces, or the first problem
        asm = OtlpAssembler(ctx)
        items = [*asm.add(obj, None, ""), *asm.finish()]
        bad = next((q for q in items if isinstance(q, Quarantined)), None)
        if bad is not None:
            raise RecordError(bad.reason)
        yield from items
    elif "simulations" in obj:
        for i, _, result in _tau2_results(obj, ctx):
            if isinstance(result, RecordError):
                raise RecordError(f"simulation {i}: {result}")
            yield result
    elif "traj" in obj:
        yield _tau_bench_trace(obj, ctx)
    elif "spans" in obj:
        yield _span_trace(obj, ctx)
    elif "messages" in obj:
        yield _chat_trace(obj, ctx)
    else:
        keys = ", ".join(sorted(map(str, obj))[:10]) or "none"
        raise RecordError(
            "unknown record shape: expected 'messages' (chat), 'spans' (span tree), 'traj' (tau-bench), "
            f"'simulations' (tau2-bench) or 'resourceSpans' (OpenTelemetry OTLP JSON); keys: {keys}"
        )


# ---------------------------------------------------------------------------
# Shared pieces


def _first(obj: dict, *keys: str) -> Any:
    return next((obj[k] for k in keys if obj.get(k) is not None), None)


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise RecordError(f"missing or invalid {what} (got {_type(value)})")
    return str(value)


def _optional_dict(obj: dict, key: str, where: str = "") -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{where}'{key}' must be an object, got {_type(value)}")
    return value


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text or epoch seconds/milliseconds/microseconds, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, (int, float)):
        seconds = float(value)
        for _ in range(2):  # milliseconds, then microseconds
            if abs(seconds) > 1e11:
                seconds /= 1000
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            return parse_time(float(s))
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    raise TypeError(f"expected ISO text or epoch number, got {_type(value)}")


def _time(value: Any, what: str) -> datetime | None:
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError, OSError) as e:
        raise RecordError(f"{what}: cannot read time {str(value)[:40]!r}: {e}") from e


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, ensure_ascii=False, separators=(",", ":"), default=str)


def _tool_call(tc: Any, where: str) -> dict[str, Any]:
    """OpenAI {"id","type","function":{name,arguments}} or flat {"id","name","arguments"}."""
    if not isinstance(tc, dict):
        raise RecordError(f"{where}: a tool call must be an object, got {_type(tc)}")
    fn = tc["function"] if isinstance(tc.get("function"), dict) else tc
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}: tool call without a name")
    call_id = tc.get("id")
    return {
        "id": None if call_id is None else _id(call_id, f"{where}: tool call id"),
        "name": name,
        "arguments": _arguments(fn.get("arguments", fn.get("input"))),
    }


def _content(value: Any, where: str) -> str:
    """Message text; attachment parts become placeholders, never stored bytes."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return _dump(value)
    pieces = []
    for i, part in enumerate(value):
        if isinstance(part, str):
            pieces.append(part)
        elif not isinstance(part, dict):
            raise RecordError(f"{where}: content part {i} must be text or an object, got {_type(part)}")
        elif isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif isinstance(part.get("refusal"), str):
            pieces.append(part["refusal"])
        elif is_attachment_part(part):
            pieces.append(attachment_placeholder(part))
        else:
            pieces.append(json.dumps(part, ensure_ascii=False, separators=(",", ":"), default=str))
    return "\n".join(pieces)


# Within one record, a message re-sent by every LLM call becomes one shared Message:
# a trace parsed from a 30 MB line holds its unique messages, not 375,000 copies
# (and the preprocessor's identity fast path applies). Set per record.
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("topics_message_memo", default=None)


def _memo_key(m: dict) -> tuple | None:
    """A hashable key for the plain shapes (text content, string arguments); None: do not share."""
    role, content = m.get("role"), m.get("content")
    if not isinstance(role, str) or not (content is None or isinstance(content, str)) or "function_call" in m:
        return None
    calls = m.get("tool_calls")
    call_key: tuple = ()
    if calls:
        if not isinstance(calls, list):
            return None
        parts = []
        for tc in calls:
            if not isinstance(tc, dict):
                return None
            fn = tc["function"] if isinstance(tc.get("function"), dict) else tc
            args = fn.get("arguments", fn.get("input"))
            if not (args is None or isinstance(args, str)) or not isinstance(fn.get("name"), (str, type(None))):
                return None
            parts.append((tc.get("id"), fn.get("name"), args))
        call_key = tuple(parts)
    extra = (m.get("tool_call_id"), m.get("name"))
    if not all(x is None or isinstance(x, (str, int)) for x in extra):
        return None
    return role, content, call_key, extra


def _message(m: Any, where: str) -> Message:
    memo = _MEMO.get()
    if memo is None or not isinstance(m, dict):
        return _new_message(m, where)
    key = _memo_key(m)
    if key is None:
        return _new_message(m, where)
    msg = memo.get(key)
    if msg is None:
        msg = memo[key] = _new_message(m, where)
    return msg


def _new_message(m: Any, where: str) -> Message:
    if not isinstance(m, dict):
        raise RecordError(f"{where}: a message must be an object, got {_type(m)}")
    role = m.get("role")
    if not isinstance(role, str) or not role:
        raise RecordError(f"{where}: message without a role")
    role = _ROLE_ALIASES.get(role.lower(), role.lower())
    raw_calls = m.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise RecordError(f"{where}: 'tool_calls' must be a list, got {_type(raw_calls)}")
    calls = [_tool_call(tc, f"{where}.tool_calls[{j}]") for j, tc in enumerate(raw_calls)]
    if isinstance(m.get("function_call"), dict):  # legacy OpenAI single call
        calls.append(_tool_call(m["function_call"], f"{where}.function_call"))
    call_id = m.get("tool_call_id")
    name = m.get("name")
    return Message(
        role=role,
        content=_content(m.get("content"), where),
        tool_calls=calls,
        tool_call_id=None if call_id is None else _id(call_id, f"{where}: tool_call_id"),
        name=name if isinstance(name, str) and name else None,
    )


def _messages(value: Any, where: str) -> list[Message]:
    if not isinstance(value, list):
        raise RecordError(f"'{where}' must be a list of messages, got {_type(value)}")
    return [_message(m, f"{where}[{i}]") for i, m in enumerate(value)]


def _action_names(actions: Any) -> list[str]:
    return [a["name"] for a in actions if isinstance(a, dict) and isinstance(a.get("name"), str)]


def write_actions(names: list[str]) -> str:
    """The benchmark ground truth: "+"-joined sorted write actions, or "no_write"."""
    writes = sorted({n for n in names if not n.startswith(READ_ONLY_PREFIXES)})
    return "+".join(writes) or "no_write"


# ---------------------------------------------------------------------------
# Generic chat and span records


def _chat_trace(obj: dict, ctx: _Context) -> Trace:
    trace_id = _id(_first(obj, "id", "trace_id"), "'id' (or 'trace_id')")
    messages = _messages(obj.get("messages"), "messages")
    span = Span(id="llm", type="llm", name="chat", input=messages, metadata=_optional_dict(obj, "metadata"))
    return Trace(
        trace_id=trace_id,
        project=ctx.project_for(obj.get("project")),
        started_at=_time(obj.get("timestamp"), "'timestamp'") or ctx.now,
        spans=[span],
        format="chat",
        labels=_optional_dict(obj, "labels"),
    )


def _llm_input(value: Any, where: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("user", value)]
    if isinstance(value, dict) and "messages" in value:
        return _messages(value["messages"], f"{where}.messages")
    if isinstance(value, list):
        return _messages(value, where)
    raise RecordError(f"{where}: an llm input must be messages, {{'messages': [...]}} or text, got {_type(value)}")


def _llm_output(value: Any, where: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("assistant", value)]
    if isinstance(value, list):
        return _messages(value, where)
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list):
            out = []
            for i, choice in enumerate(value["choices"]):
                if not isinstance(choice, dict):
                    raise RecordError(f"{where}.choices[{i}] must be an object")
                if isinstance(choice.get("message"), dict):
                    out.append(_message({"role": "assistant", **choice["message"]}, f"{where}.choices[{i}].message"))
                elif isinstance(choice.get("text"), str):
                    out.append(Message("assistant", choice["text"]))
            return out
        if "messages" in value:
            return _messages(value["messages"], f"{where}.messages")
        if "role" in value or "content" in value or "tool_calls" in value:
            return [_message({"role": "assistant", **value}, where)]
    raise RecordError(
        f"{where}: an llm output must be a message, messages, {{'choices': [...]}} or text, got {_type(value)}"
    )


def _error(value: Any) -> str | None:
    if value is None or value is False or value == "":
        return None
    if value is True:
        return "failed"
    return value if isinstance(value, str) else _dump(value)


def _span(s: Any, i: int) -> Span:
    where = f"spans[{i}]"
    if not isinstance(s, dict):
        raise RecordError(f"{where} must be an object, got {_type(s)}")
    raw_type = s.get("type") or s.get("span_type") or "other"
    if not isinstance(raw_type, str):
        raise RecordError(f"{where}: 'type' must be a string, got {_type(raw_type)}")
    span_type = _SPAN_TYPE_ALIASES.get(raw_type.lower(), raw_type.lower())
    span_type = span_type if span_type in SPAN_TYPES else "other"
    parent = s.get("parent_id")
    name = s.get("name")
    if name is not None and not isinstance(name, str):
        raise RecordError(f"{where}: 'name' must be a string, got {_type(name)}")
    start, end = (_time(s.get(k), f"{where}.{k}") for k in ("start_time", "end_time"))
    inp, out = s.get("input"), s.get("output")
    if span_type == "llm":
        inp, out = _llm_input(inp, f"{where}.input"), _llm_output(out, f"{where}.output")
    return Span(
        id=_id(_first(s, "id", "span_id"), f"{where}: 'id'"),
        type=span_type,
        parent_id=None if parent is None else _id(parent, f"{where}: 'parent_id'"),
        name=name,
        input=inp,
        output=out,
        metadata=_optional_dict(s, "metadata", f"{where}: "),
        start_time=start.timestamp() if start else None,
        end_time=end.timestamp() if end else None,
        error=_error(s.get("error")),
    )


def _span_trace(obj: dict, ctx: _Context) -> Trace:
    trace_id = _id(_first(obj, "trace_id", "id"), "'trace_id' (or 'id')")
    raw_spans = obj.get("spans")
    if not isinstance(raw_spans, list) or not raw_spans:
        raise RecordError(
            f"'spans' must be a non-empty list, got {_type(raw_spans) if not isinstance(raw_spans, list) else 'an empty list'}"
        )
    token = _MEMO.set({})
    try:
        spans = [_span(s, i) for i, s in enumerate(raw_spans)]
    finally:
        _MEMO.reset(token)
    seen: set[str] = set()
    for s in spans:
        if s.id in seen:
            raise RecordError(f"duplicate span id {s.id!r}")
        seen.add(s.id)
    starts = [s.start_time for s in spans if s.start_time is not None]
    started_at = (
        _time(obj.get("started_at"), "'started_at'")
        or (datetime.fromtimestamp(min(starts), tz=timezone.utc) if starts else None)
        or _time(obj.get("timestamp"), "'timestamp'")
        or ctx.now
    )
    if isinstance(obj.get("metadata"), dict):
        roots = [s for s in spans if s.parent_id is None] or spans
        roots[0].metadata = {**obj["metadata"], **roots[0].metadata}
    return Trace(
        trace_id, ctx.project_for(obj.get("project")), started_at, spans, "spans", _optional_dict(obj, "labels")
    )


# ---------------------------------------------------------------------------
# tau-bench and tau2-bench


def _tau_bench_trace(obj: dict, ctx: _Context) -> Trace:
    task_id = _id(obj.get("task_id"), "'task_id'")
    trial = obj.get("trial", 0)
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise RecordError(f"'trial' must be an integer, got {_type(trial)}")
    messages = _messages(obj.get("traj"), "traj")
    stem = Path(ctx.source).stem
    domain = next((d for d in TAU_BENCH_DOMAINS if d in stem.lower()), stem.rsplit("-", 1)[-1])
    info = _optional_dict(obj, "info")
    task = info.get("task") if isinstance(info.get("task"), dict) else {}
    actions = task.get("actions") if isinstance(task.get("actions"), list) else None
    labels: dict[str, Any] = {"task_id": obj.get("task_id"), "reward": obj.get("reward")}
    if actions is not None:
        labels["write_actions"] = write_actions(_action_names(actions))
    root = Span(id="task", type="task", name=f"tau-bench task {task_id}")
    llm = Span(id="llm", type="llm", parent_id="task", name="agent", input=messages)
    return Trace(
        trace_id=f"tau-bench/{stem}/{task_id}/{trial}",
        project=ctx.project_for(obj.get("project"), f"tau-bench-{domain}"),
        started_at=ctx.now,  # the run files carry no timestamps
        spans=[root, llm],
        format="tau-bench",
        labels=labels,
    )


def _tau2_header(doc: dict, ctx: _Context) -> tuple[str, dict[str, dict], list]:
    sims = doc.get("simulations")
    if not isinstance(sims, list):
        raise RecordError(f"'simulations' must be a list, got {_type(sims)}")
    env = (doc.get("info") or {}).get("environment_info") if isinstance(doc.get("info"), dict) else None
    domain = env.get("domain_name") if isinstance(env, dict) else None
    if not isinstance(domain, str) or not domain:
        domain = Path(ctx.source).stem.rsplit("_", 1)[-1]  # gpt-4.1_airline.json
    tasks = doc.get("tasks") or []
    if not isinstance(tasks, list):
        raise RecordError(f"'tasks' must be a list, got {_type(tasks)}")
    return domain, {str(t.get("id")): t for t in tasks if isinstance(t, dict)}, sims


def _tau2_results(doc: dict, ctx: _Context) -> Iterator[tuple[int, Any, Trace | RecordError]]:
    """Each simulation's trace, or the error that kept it from being one."""
    domain, tasks, sims = _tau2_header(doc, ctx)
    for i, sim in enumerate(sims):
        try:
            yield i, sim, check_depth(_tau2_trace(sim, domain, tasks, doc, ctx))
        except RecordError as e:
            yield i, sim, e
        except RecursionError:
            yield i, sim, RecordError("nested too deeply")


def _tau2_message(m: Any, where: str) -> Message:
    if isinstance(m, dict) and m.get("role") == "tool" and "tool_call_id" not in m:
        m = {**m, "tool_call_id": m.get("id")}  # tau2 names the call a result answers "id"
    return _message(m, where)


def _tau2_trace(sim: Any, domain: str, tasks: dict[str, dict], doc: dict, ctx: _Context) -> Trace:
    if not isinstance(sim, dict):
        raise RecordError(f"a simulation must be an object, got {_type(sim)}")
    sim_id = _id(sim.get("id"), "simulation 'id'")
    raw = sim.get("messages")
    if not isinstance(raw, list):
        raise RecordError(f"'messages' must be a list, got {_type(raw)}")
    messages = [_tau2_message(m, f"messages[{i}]") for i, m in enumerate(raw)]
    task_id = sim.get("task_id")
    task_key = str(task_id)
    if domain == "telecom":
        m = re.match(r"\[([^\]]+)\]", task_key)
        intent = m.group(1) if m else task_key
    else:
        criteria = (tasks.get(task_key) or {}).get("evaluation_criteria") or {}
        actions = (criteria.get("actions") or []) if isinstance(criteria, dict) else []
        intent = write_actions(_action_names(actions))
    reward_info = sim.get("reward_info") if isinstance(sim.get("reward_info"), dict) else {}
    start = _time(sim.get("start_time"), "'start_time'")
    end = _time(sim.get("end_time"), "'end_time'")
    started_at = (
        start or _time(sim.get("timestamp"), "'timestamp'") or _time(doc.get("timestamp"), "'timestamp'") or ctx.now
    )
    root = Span(
        id="task",
        type="task",
        name=f"tau2 {domain} task {task_key}",
        start_time=start.timestamp() if start else None,
        end_time=end.timestamp() if end else None,
    )
    llm = Span(id="llm", type="llm", parent_id="task", name="agent", input=messages, start_time=root.start_time)
    return Trace(
        trace_id=f"tau2/{domain}/{sim_id}",
        project=ctx.project_for(sim.get("project", doc.get("project")), f"tau2-{domain}"),
        started_at=started_at,
        spans=[root, llm],
        format="tau2-bench",
        labels={
            "domain": domain,
            "intent": intent,
            "reward": reward_info.get("reward"),
            "termination_reason": sim.get("termination_reason"),
            "task_id": task_id,
        },
    )
