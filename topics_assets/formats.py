"""Read trace files of any supported shape into Trace objects, auto-detected per record.

Shapes: generic chat logs ({"messages": [...]}), span trees ({"spans": [...]}),
tau-bench run files (records with "traj") and tau2-bench results ({"simulations": [...]}).
A record that cannot be parsed becomes a Quarantined with a reason that names
the problem; it never stops the rest of the file from landing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topics_assets.preprocess import attachment_placeholder, is_attachment_part
from topics_assets.traces import SPAN_TYPES, Message, Quarantined, Span, Trace

SNIPPET_CHARS = 200
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
) -> Iterator[Trace | Quarantined]:
    """Every trace in the file, and a Quarantined for every record that is not one.

    .jsonl/.ndjson files are streamed line by line (memory stays bounded);
    .json files hold one document: a list of records, a tau2-bench results
    object, or a single record.
    """
    path = Path(path)
    ctx = _Context(str(path), project, default_project, now or datetime.now(timezone.utc))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path, ctx)
    elif suffix == ".json":
        yield from _read_json(path, ctx)
    else:
        yield Quarantined(
            ctx.source, None, f"unsupported file type {suffix or '(none)'!r}: expected .json, .jsonl or .ndjson"
        )


def _read_jsonl(path: Path, ctx: _Context) -> Iterator[Trace | Quarantined]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                snippet = _snippet(raw.decode("utf-8", errors="replace"))
                yield Quarantined(ctx.source, lineno, f"line {lineno}: not valid UTF-8 (byte {e.start})", snippet)
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                reason = f"line {lineno}: not valid JSON: {getattr(e, 'msg', e)} at column {getattr(e, 'colno', '?')}"
                yield Quarantined(ctx.source, lineno, reason, _snippet(line))
                continue
            except RecursionError:
                yield Quarantined(
                    ctx.source, lineno, f"line {lineno}: not valid JSON: nested too deeply", _snippet(line)
                )
                continue
            yield from _parse_or_quarantine(obj, ctx, lineno, f"line {lineno}", line)


def _read_json(path: Path, ctx: _Context) -> Iterator[Trace | Quarantined]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        snippet = _snippet(raw.decode("utf-8", errors="replace"))
        yield Quarantined(ctx.source, None, f"{path.name}: not valid UTF-8 (byte {e.start})", snippet)
        return
    try:
        doc = json.loads(text)
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
    if isinstance(doc, list):
        for i, obj in enumerate(doc):
            yield from _parse_or_quarantine(obj, ctx, None, f"record {i}", None)
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
    try:
        return list(_parse(obj, _Context(source, project, default_project, now or datetime.now(timezone.utc))))
    except RecordError as e:
        raise RecordError(f"line {line}: {e}" if line is not None else str(e)) from e


def _parse(obj: Any, ctx: _Context) -> Iterator[Trace]:
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_type(obj)}")
    if "simulations" in obj:
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
            "unknown record shape: expected 'messages' (chat), 'spans' (span tree), 'traj' (tau-bench) "
            f"or 'simulations' (tau2-bench); keys: {keys}"
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


def _message(m: Any, where: str) -> Message:
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
    spans = [_span(s, i) for i, s in enumerate(raw_spans)]
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
            yield i, sim, _tau2_trace(sim, domain, tasks, doc, ctx)
        except RecordError as e:
            yield i, sim, e


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
