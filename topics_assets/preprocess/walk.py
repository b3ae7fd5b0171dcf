"""The span walk: a trace (any number of spans) becomes one linear conversation.

Agent frameworks log every LLM call with the whole history it re-sent, so a
500-step run holds the first message 500 times. We walk the span tree in time
order and emit each message once, in conversation order: the text grows with
the conversation, not with its square. Scorer spans and span metadata never
reach the text.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topics_assets.preprocess.attachments import strip_attachments
from topics_assets.traces import MESSAGE_FIELDS, Message, Span, Trace


SYSTEM_PROMPT_CHARS = 300
DROPPED_SPAN_TYPES = ("score", "eval")
_RECENT_CALLS = 4  # LLM calls remembered for the re-sent-prefix fast path

# ---------------------------------------------------------------------------
# The linear conversation


@dataclass
class Block:
    label: str  # "user", "assistant -> search", "tool get_user", ...
    body: str
    role: str
    error: bool = False
    prose: bool = False  # user or assistant text, not a tool call

    @property
    def text(self) -> str:
        return f"[{self.label}{' ERROR' if self.error else ''}] {self.body}"


_ERROR_TEXT = re.compile(r"\s*(?:error|exception|traceback)\b", re.IGNORECASE)


def shorten_system(text: str) -> str:
    if len(text) <= SYSTEM_PROMPT_CHARS:
        return text
    return f"{text[:SYSTEM_PROMPT_CHARS].rstrip()} [... system prompt shortened, {len(text):,} chars in all]"


def _json_default(o: Any) -> Any:
    # Messages or spans inside a raw value (a custom preprocessor's odd span) show as the JSON they store as.
    return dataclasses.asdict(o) if dataclasses.is_dataclass(o) and not isinstance(o, type) else str(o)


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def _result_key(value: Any) -> str:
    """Tool results compare equal whether logged as a JSON string or as a JSON value."""
    if isinstance(value, str):
        s = value.strip()
        if s[:1] not in ("{", "["):
            return s
        try:
            value = json.loads(s)
        except ValueError:
            return s
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def _as_messages(value: Any, default_role: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, Message):
        return [value]
    if isinstance(value, list) and (not value or set(map(type, value)) == {Message}):
        return value
    if isinstance(value, str):
        return [Message(default_role, value)]
    if isinstance(value, dict) and isinstance(value.get("role"), str):  # one message, as stored JSON
        return [Message(**{k: value[k] for k in MESSAGE_FIELDS if k in value})]
    # Not parsed into messages (e.g. an odd llm span kept raw): show it as JSON, once.
    return [Message(default_role, _value_text(value))]


class _Result:
    """A tool result shown once (from a tool span or a tool message), waiting for its twin."""

    __slots__ = ("block", "values", "claimed", "_keys")

    def __init__(self, block: Block, values: tuple) -> None:
        self.block, self.values, self.claimed, self._keys = block, values, False, None

    def keys(self) -> list[str]:
        if self._keys is None:
            self._keys = [_result_key(v) for v in self.values]
        return self._keys


class _Waiting:
    """Results of one side (spans or messages) that the other side may repeat.

    Matched by call id first; by content only when ids do not match, and then
    each result's content key is computed once (JSON is parsed lazily: most
    traces match by id and never pay for it).
    """

    def __init__(self) -> None:
        self.by_id: dict[str, _Result] = {}
        self.by_key: dict[str, deque[_Result]] = {}
        self.unkeyed: list[_Result] = []
        self.open = 0

    def add(self, r: _Result, call_id: str | None) -> None:
        if call_id:
            self.by_id.setdefault(call_id, r)
        self.unkeyed.append(r)
        self.open += 1

    def take(self, call_id: str | None, keys: Callable[[], list[str]]) -> _Result | None:
        if not self.open:
            return None
        r = self.by_id.pop(call_id, None) if call_id else None
        if r is None or r.claimed:
            r = None
            for u in self.unkeyed:
                for k in u.keys():
                    self.by_key.setdefault(k, deque()).append(u)
            self.unkeyed.clear()
            for k in keys():
                q = self.by_key.get(k)
                while q and r is None:
                    c = q.popleft()
                    r = None if c.claimed else c
                if r is not None:
                    break
        if r is not None:
            r.claimed = True
            self.open -= 1
        return r


class _Walk:
    """Collects blocks from spans in order, each message and tool result once."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.n_messages = 0
        self.emitted: Counter[tuple] = Counter()
        self.keys: dict[int, tuple[Message, tuple]] = {}
        self.call_names: dict[str, str] = {}
        # Tool results shown so far, so that a tool span and a tool message
        # carrying the same result show it once (whichever comes first).
        self.from_messages = _Waiting()
        self.from_spans = _Waiting()
        # Recent LLM calls' messages and per-key counts, newest first (see llm_span).
        self.recent: list[tuple[list[Message], Counter[tuple]]] = []

    def _key(self, m: Message) -> tuple:
        # In-memory agent loops re-send the same Message objects: key each object once.
        cached = self.keys.get(id(m))
        if cached is not None and cached[0] is m:
            return cached[1]
        calls = tuple((tc.get("id"), tc.get("name"), tc.get("arguments")) for tc in m.tool_calls) if m.tool_calls else ()
        key = (m.role, m.content, calls, m.tool_call_id)
        self.keys[id(m)] = (m, key)  # holding m keeps its id from being reused
        return key

    def add(self, block: Block) -> Block:
        block.body = strip_attachments(block.body)
        self.blocks.append(block)
        return block

    def llm_span(self, span: Span) -> None:
        msgs = _as_messages(span.input, "user") + _as_messages(span.output, "assistant")
        start = 0
        seen_here: Counter[tuple] = Counter()
        # An agent loop's next call re-sends a recent call's messages first (the
        # same agent's previous call; a few are kept for interleaved sub-agents).
        # That prefix holds nothing new and its per-key counts are that call's:
        # compare it as a list (C speed, identity first) instead of keying every
        # re-sent message again, so a 500-call trace costs what it adds, not what
        # it re-sends. Each counter has one owner: a call that extends it takes it.
        for j, (prev, prev_seen) in enumerate(self.recent):
            if len(msgs) >= len(prev) and msgs[: len(prev)] == prev:
                start, seen_here = len(prev), prev_seen
                del self.recent[j]
                break
        self.recent.insert(0, (msgs, seen_here))
        del self.recent[_RECENT_CALLS:]
        emitted = self.emitted
        for i in range(start, len(msgs)):
            m = msgs[i]
            key = self._key(m)
            # The k-th copy of a message within one call is new only if fewer
            # than k copies were emitted before: re-sent history is skipped, a
            # user who says "yes" twice is kept twice.
            seen_here[key] += 1
            if seen_here[key] > emitted[key]:
                emitted[key] += 1
                self.message(m)
        if span.error:
            self.add(Block(f"error in llm {span.name or span.id}", span.error, "error", error=True))

    def message(self, m: Message) -> None:
        content = m.content or ""
        if m.role == "tool":
            if self.from_spans.take(m.tool_call_id, lambda: [_result_key(content)]) is not None:
                return  # a tool span already showed this result
        self.n_messages += 1
        if m.role == "system":
            # Whole: it is redacted before it is shortened (preprocess.core), so no secret is cut in half.
            self.add(Block("system", content, "system"))
            return
        if m.role == "tool":
            name = m.name or self.call_names.get(m.tool_call_id or "")
            block = self.add(
                Block(f"tool {name}" if name else "tool", content, "tool", error=bool(_ERROR_TEXT.match(content)))
            )
            self.from_messages.add(_Result(block, (content,)), m.tool_call_id)
            return
        # In multi-agent traces the speaking agent's name stays beside its role: "[assistant planner]".
        who = f"{m.role} {m.name}" if m.role == "assistant" and m.name else m.role
        if content.strip():
            self.add(Block(who, content, m.role, prose=True))
        for tc in m.tool_calls:
            if tc.get("id"):
                self.call_names[tc["id"]] = tc["name"]
            self.add(Block(f"{who} -> {tc['name']}", tc.get("arguments") or "{}", m.role))

    def tool_span(self, span: Span) -> None:
        values = (span.error, span.output) if span.error else (span.output,)
        call_id = span.metadata.get("tool_call_id") if isinstance(span.metadata, dict) else None
        call_id = str(call_id) if call_id is not None else None
        shown = self.from_messages.take(call_id, lambda: [_result_key(v) for v in values])
        if shown is not None:  # a tool message already showed it; the span may add the error flag
            shown.block.error = shown.block.error or bool(span.error)
            return
        self.n_messages += 1
        result = span.error if span.error else span.output
        block = self.add(Block(f"tool {span.name or 'unknown'}", _value_text(result), "tool", error=bool(span.error)))
        self.from_spans.add(_Result(block, values), call_id)

    def other_span(self, span: Span) -> None:
        if span.error:
            self.add(Block(f"error in {span.type} {span.name or span.id}", span.error, "error", error=True))


def _ordered_spans(spans: list[Span]) -> list[Span]:
    """Spans in tree order, siblings by start time; scorer subtrees left out.

    Spans whose parent is missing are roots; spans only reachable through a
    cycle of parent ids come last, in file order (every span is walked once).
    """
    ids = {s.id for s in spans}
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for i, s in enumerate(spans):
        p = s.parent_id
        if p is None or p == s.id or p not in ids:
            roots.append(i)
        else:
            children.setdefault(p, []).append(i)

    def by_time(i: int) -> tuple:
        t = spans[i].start_time
        return (t is None, t or 0.0, i)

    order: list[Span] = []
    visited = bytearray(len(spans))

    def walk(root: int) -> None:
        stack = [(root, False)]
        while stack:
            i, dropped = stack.pop()
            if visited[i]:
                continue
            visited[i] = 1
            span = spans[i]
            # A scorer's children (its own LLM calls) are dropped with it.
            dropped = dropped or span.type in DROPPED_SPAN_TYPES
            if not dropped:
                order.append(span)
            kids = children.get(span.id)
            if kids:
                stack.extend((c, dropped) for c in sorted(kids, key=by_time, reverse=True))

    for root in sorted(roots, key=by_time) if len(roots) > 1 else roots:
        walk(root)
    if len(order) < len(spans) and visited.count(0):
        for i in range(len(spans)):
            if not visited[i]:
                walk(i)
    return order


def conversation(trace: Trace) -> tuple[list[Block], int, list[str]]:
    """The trace as blocks in conversation order, the count of unique messages, and text cut out (none:
    system prompts are kept whole here and shortened after redaction, in preprocess.core)."""
    walk = _Walk()
    ordered = _ordered_spans(trace.spans)
    for span in ordered:
        if span.type == "llm":
            walk.llm_span(span)
        elif span.type == "tool":
            walk.tool_span(span)
        else:
            walk.other_span(span)
    if not any(b.role != "error" for b in walk.blocks) and ordered:
        # No conversation at all (e.g. only function spans): the root's input and output.
        root = ordered[0]
        for label, value in (("input", root.input), ("output", root.output)):
            if value is not None:
                walk.add(Block(label, _value_text(value), label))
    return walk.blocks, walk.n_messages, []
