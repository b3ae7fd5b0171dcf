"""Record helpers every reader shares: errors, context, times, ids, messages, snippets.

Public names, so that each format module (ingest/<format>.py) imports them from one place and
none imports another.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from topics_assets.preprocess.attachments import attachment_placeholder, is_attachment_part
from topics_assets.traces import Message, Trace

SNIPPET_CHARS = 200
MAX_RECORD_BYTES = 256 * 1024 * 1024  # a line (or .json file) above this is quarantined unread
# Raw values (tool inputs and outputs, metadata, labels) nested deeper than this are
# quarantined: storing them (dataclasses.asdict, json.dumps) would overflow the stack.
MAX_VALUE_DEPTH = 64
READ_ONLY_PREFIXES = ("get_", "search_", "list_", "find_", "calculate", "think")  # tau tools that write nothing
_ROLE_ALIASES = {"developer": "system", "function": "tool", "human": "user", "ai": "assistant", "model": "assistant"}


class RecordError(ValueError):
    """Why one record cannot become a trace: the reason a quarantine shows."""


@dataclass
class Context:
    source: str
    project: str | None  # the CLI's --project: overrides everything
    default_project: str
    now: datetime

    def project_for(self, record_project: Any, derived: str | None = None) -> str:
        if self.project:
            return self.project
        if record_project is not None:
            if not isinstance(record_project, str) or not record_project.strip():
                raise RecordError(f"'project' must be a non-empty string, got {type_name(record_project)}")
            return record_project.strip()
        return derived or self.default_project


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def snippet_of(text: str) -> str:
    # Longer than what quarantine keeps: it is redacted first (preprocess.store_raw), then cut.
    return text[: SNIPPET_CHARS * 4]


def dump(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return repr(obj)[:SNIPPET_CHARS]


def loads(text: str) -> Any:
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


def first(obj: dict, *keys: str) -> Any:
    return next((obj[k] for k in keys if obj.get(k) is not None), None)


def id_of(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise RecordError(f"missing or invalid {what} (got {type_name(value)})")
    return str(value)


def optional_dict(obj: dict, key: str, where: str = "") -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{where}'{key}' must be an object, got {type_name(value)}")
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
    raise TypeError(f"expected ISO text or epoch number, got {type_name(value)}")


def time_of(value: Any, what: str) -> datetime | None:
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError, OSError) as e:
        raise RecordError(f"{what}: cannot read time {str(value)[:40]!r}: {e}") from e


def arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, ensure_ascii=False, separators=(",", ":"), default=str)


def tool_call(tc: Any, where: str) -> dict[str, Any]:
    """OpenAI {"id","type","function":{name,arguments}} or flat {"id","name","arguments"}."""
    if not isinstance(tc, dict):
        raise RecordError(f"{where}: a tool call must be an object, got {type_name(tc)}")
    fn = tc["function"] if isinstance(tc.get("function"), dict) else tc
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}: tool call without a name")
    call_id = tc.get("id")
    return {
        "id": None if call_id is None else id_of(call_id, f"{where}: tool call id"),
        "name": name,
        "arguments": arguments(fn.get("arguments", fn.get("input"))),
    }


def content_text(value: Any, where: str) -> str:
    """Message text; attachment parts become placeholders, never stored bytes."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return dump(value)
    pieces = []
    for i, part in enumerate(value):
        if isinstance(part, str):
            pieces.append(part)
        elif not isinstance(part, dict):
            raise RecordError(f"{where}: content part {i} must be text or an object, got {type_name(part)}")
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
MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("topics_message_memo", default=None)


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


def to_message(m: Any, where: str) -> Message:
    memo = MEMO.get()
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
        raise RecordError(f"{where}: a message must be an object, got {type_name(m)}")
    role = m.get("role")
    if not isinstance(role, str) or not role:
        raise RecordError(f"{where}: message without a role")
    role = _ROLE_ALIASES.get(role.lower(), role.lower())
    raw_calls = m.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise RecordError(f"{where}: 'tool_calls' must be a list, got {type_name(raw_calls)}")
    calls = [tool_call(tc, f"{where}.tool_calls[{j}]") for j, tc in enumerate(raw_calls)]
    if isinstance(m.get("function_call"), dict):  # legacy OpenAI single call
        calls.append(tool_call(m["function_call"], f"{where}.function_call"))
    call_id = m.get("tool_call_id")
    name = m.get("name")
    return Message(
        role=role,
        content=content_text(m.get("content"), where),
        tool_calls=calls,
        tool_call_id=None if call_id is None else id_of(call_id, f"{where}: tool_call_id"),
        name=name if isinstance(name, str) and name else None,
    )


def to_messages(value: Any, where: str) -> list[Message]:
    if not isinstance(value, list):
        raise RecordError(f"'{where}' must be a list of messages, got {type_name(value)}")
    return [to_message(m, f"{where}[{i}]") for i, m in enumerate(value)]


# tau-bench and tau2-bench ground truth


def action_names(actions: Any) -> list[str]:
    return [a["name"] for a in actions if isinstance(a, dict) and isinstance(a.get("name"), str)]


def write_actions(names: list[str]) -> str:
    """The benchmark ground truth: "+"-joined sorted write actions, or "no_write"."""
    writes = sorted({n for n in names if not n.startswith(READ_ONLY_PREFIXES)})
    return "+".join(writes) or "no_write"
