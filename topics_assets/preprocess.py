"""Turn a trace (any number of spans) into the one linear text a facet model reads.

Agent frameworks log every LLM call with the whole history it re-sent, so a
500-step run holds the first message 500 times. We walk the span tree in time
order and emit each message once, in conversation order: the text grows with
the conversation, not with its square. Scorer spans, span metadata and
attachments never reach the text; secrets and PII are redacted; the result is
capped at settings.max_tokens, keeping what a summary needs most.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from topics_assets.config import PreprocessSettings
from topics_assets.redact import redact
from topics_assets.tokens import count_tokens, count_tokens_batch, truncate_to_tokens
from topics_assets.traces import Message, Span, Trace, sha256_text

SYSTEM_PROMPT_CHARS = 300
DROPPED_SPAN_TYPES = ("score", "eval")
_MARKER_TOKENS = 24  # reserved per elision marker: "[... 1,234 messages, ~123,456 tokens elided ...]"
_MIN_PARTIAL_TOKENS = 256  # below this, a block that does not fit is elided rather than cut
_CUT_NOTE_TOKENS = 16  # reserved for "[... cut, ~12,345 tokens more]"

# ---------------------------------------------------------------------------
# Attachments


def _size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{n_bytes / (1024 * 1024):.1f} MB"


def _b64_bytes(b64: str) -> int:
    return len(b64.rstrip("=")) * 3 // 4


def _kind_of(mime: str | None) -> str:
    major = (mime or "").split("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def _placeholder(kind: str, detail: str) -> str:
    return f"[{kind} attachment removed: {detail}]"


_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,([A-Za-z0-9+/=_-]*)")
# The look-behind starts a match only at the start of a run, keeping the scan linear.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{200,}={0,2}")


def _looks_base64(run: str) -> bool:
    # Binary data in base64 mixes cases and digits and has few slashes; long
    # identifiers and URL paths do not.
    return (
        any(c.isdigit() for c in run)
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and run.count("/") < len(run) / 20
    )


def _data_uri_placeholder(m: re.Match[str], kind: str = "file") -> str:
    mime = m.group(1)
    return _placeholder(_kind_of(mime) if mime else kind, f"{mime or 'unknown type'}, {_size(_b64_bytes(m.group(2)))}")


def strip_attachments(text: str) -> str:
    """Replace data: URIs and long base64 blobs with a placeholder naming kind and size."""
    if "base64," in text:
        text = _DATA_URI.sub(_data_uri_placeholder, text)
    if len(text) >= 200:
        text = _BASE64_RUN.sub(
            lambda m: (
                _placeholder("base64", _size(_b64_bytes(m.group(0)))) if _looks_base64(m.group(0)) else m.group(0)
            ),
            text,
        )
    return text


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


_ATTACHMENT_KINDS = {
    "image_url": "image",
    "image": "image",
    "input_image": "image",
    "audio": "audio",
    "input_audio": "audio",
    "file": "file",
    "input_file": "file",
    "document": "file",
}


def _part_kind(part: dict[str, Any]) -> str | None:
    t = part.get("type")
    return _ATTACHMENT_KINDS.get(t) if isinstance(t, str) else None


def is_attachment_part(part: dict[str, Any]) -> bool:
    return _part_kind(part) is not None or any(s.startswith("data:") for s in _strings(part))


def attachment_placeholder(part: dict[str, Any]) -> str:
    """The placeholder for a non-text content part (image, audio, file).

    The parser calls this so that attachment bytes are neither stored nor sent;
    the placeholder keeps what the conversation needs to know: that there was one.
    """
    kind = _part_kind(part) or "file"
    payload = max(_strings(part), key=len, default="")
    m = _DATA_URI.match(payload)
    if m:
        return _data_uri_placeholder(m, kind)
    if payload.startswith(("http://", "https://")):
        return _placeholder(kind, "linked by URL, size unknown")
    source, audio = part.get("source"), part.get("input_audio")
    mime = (
        part.get("media_type")
        or part.get("mime_type")
        or (source.get("media_type") if isinstance(source, dict) else None)
    )
    fmt = audio.get("format") if isinstance(audio, dict) else None
    detail = mime or (f"{kind}/{fmt}" if fmt else kind)
    return _placeholder(kind, f"{detail}, {_size(_b64_bytes(payload) if payload else 0)}")


# ---------------------------------------------------------------------------
# The linear conversation


@dataclass
class PreprocessedTrace:
    """What the facet model reads for one trace, with the numbers run metadata reports."""

    text: str
    content_hash: str  # sha256 of text: unchanged text means unchanged facets
    tokens_before: int  # the linear (de-duplicated) conversation, before redaction and the cap
    tokens_after: int  # tokens in text
    n_spans: int  # spans in the trace, dropped ones included
    n_messages: int  # unique messages and tool results in the conversation
    redactions: dict[str, int] = field(default_factory=dict)
    truncated: bool = False


@dataclass
class _Block:
    label: str  # "user", "assistant -> search", "tool get_user", ...
    body: str
    role: str
    error: bool = False
    prose: bool = False  # user or assistant text, not a tool call

    @property
    def text(self) -> str:
        return f"[{self.label}{' ERROR' if self.error else ''}] {self.body}"


_ERROR_TEXT = re.compile(r"\s*(?:error|exception|traceback)\b", re.IGNORECASE)


def _shorten_system(text: str) -> str:
    if len(text) <= SYSTEM_PROMPT_CHARS:
        return text
    return f"{text[:SYSTEM_PROMPT_CHARS].rstrip()} [... system prompt shortened, {len(text):,} chars in all]"


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


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


_MESSAGE_FIELDS = [f.name for f in fields(Message)]


def _as_messages(value: Any, default_role: str) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, Message):
        return [value]
    if isinstance(value, list) and all(isinstance(m, Message) for m in value):
        return value
    if isinstance(value, str):
        return [Message(default_role, value)]
    if isinstance(value, dict) and isinstance(value.get("role"), str):  # one message, as stored JSON
        return [Message(**{k: value[k] for k in _MESSAGE_FIELDS if k in value})]
    # Not parsed into messages (e.g. an odd llm span kept raw): show it as JSON, once.
    return [Message(default_role, _value_text(value))]


class _Walk:
    """Collects blocks from spans in order, each message and tool result once."""

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.n_messages = 0
        self.emitted: Counter[tuple] = Counter()
        self.keys: dict[int, tuple[Message, tuple]] = {}
        self.call_names: dict[str, str] = {}
        # Tool results shown so far, so that a tool span and a tool message
        # carrying the same result show it once (whichever comes first).
        self.by_call_id: dict[str, _Block] = {}
        self.by_result: dict[str, list[_Block]] = {}
        self.span_results: Counter[str] = Counter()

    def _key(self, m: Message) -> tuple:
        # In-memory agent loops re-send the same Message objects: key each object once.
        cached = self.keys.get(id(m))
        if cached is not None and cached[0] is m:
            return cached[1]
        calls = tuple((tc.get("id"), tc.get("name"), tc.get("arguments")) for tc in m.tool_calls)
        key = (m.role, m.content, calls, m.tool_call_id)
        self.keys[id(m)] = (m, key)  # holding m keeps its id from being reused
        return key

    def add(self, block: _Block) -> _Block:
        block.body = strip_attachments(block.body)
        self.blocks.append(block)
        return block

    def llm_span(self, span: Span) -> None:
        seen_here: Counter[tuple] = Counter()
        for m in _as_messages(span.input, "user") + _as_messages(span.output, "assistant"):
            key = self._key(m)
            # The k-th copy of a message within one call is new only if fewer
            # than k copies were emitted before: re-sent history is skipped, a
            # user who says "yes" twice is kept twice.
            seen_here[key] += 1
            if seen_here[key] > self.emitted[key]:
                self.emitted[key] += 1
                self.message(m)
        if span.error:
            self.add(_Block(f"error in llm {span.name or span.id}", span.error, "error", error=True))

    def message(self, m: Message) -> None:
        content = m.content or ""
        if m.role == "tool":
            key = _result_key(content)
            if self.span_results[key] > 0:  # a tool span already showed this result
                self.span_results[key] -= 1
                return
        self.n_messages += 1
        if m.role == "system":
            self.add(_Block("system", _shorten_system(content), "system"))
            return
        if m.role == "tool":
            name = m.name or self.call_names.get(m.tool_call_id or "")
            block = self.add(
                _Block(f"tool {name}" if name else "tool", content, "tool", error=bool(_ERROR_TEXT.match(content)))
            )
            self.by_result.setdefault(key, []).append(block)
            if m.tool_call_id:
                self.by_call_id[m.tool_call_id] = block
            return
        if content.strip():
            self.add(_Block(m.role, content, m.role, prose=True))
        for tc in m.tool_calls:
            if tc.get("id"):
                self.call_names[tc["id"]] = tc["name"]
            self.add(_Block(f"{m.role} -> {tc['name']}", tc.get("arguments") or "{}", m.role))

    def tool_span(self, span: Span) -> None:
        keys = [_result_key(span.error), _result_key(span.output)] if span.error else [_result_key(span.output)]
        call_id = span.metadata.get("tool_call_id") if isinstance(span.metadata, dict) else None
        shown = self.by_call_id.pop(str(call_id), None) if call_id else None
        for key in keys:
            if shown is None and self.by_result.get(key):
                shown = self.by_result[key].pop(0)
        if shown is not None:  # a tool message already showed it; the span may add the error flag
            shown.error = shown.error or bool(span.error)
            return
        self.n_messages += 1
        for key in keys:
            self.span_results[key] += 1
        result = span.error if span.error else span.output
        self.add(_Block(f"tool {span.name or 'unknown'}", _value_text(result), "tool", error=bool(span.error)))

    def other_span(self, span: Span) -> None:
        if span.error:
            self.add(_Block(f"error in {span.type} {span.name or span.id}", span.error, "error", error=True))


def _ordered_spans(spans: list[Span]) -> list[Span]:
    """Spans in tree order, siblings by start time; scorer subtrees left out."""
    ids = {s.id for s in spans}
    children: dict[str | None, list[int]] = {}
    for i, s in enumerate(spans):
        parent = s.parent_id if s.parent_id in ids and s.parent_id != s.id else None
        children.setdefault(parent, []).append(i)

    def by_time(i: int) -> tuple:
        t = spans[i].start_time
        return (t is None, t or 0.0, i)

    order: list[Span] = []
    visited: set[int] = set()
    # Roots first; then anything only reachable through a parent cycle.
    for root in sorted(children.get(None, []), key=by_time) + list(range(len(spans))):
        stack = [(root, False)]
        while stack:
            i, dropped = stack.pop()
            if i in visited:
                continue
            visited.add(i)
            span = spans[i]
            # A scorer's children (its own LLM calls) are dropped with it.
            dropped = dropped or span.type in DROPPED_SPAN_TYPES
            if not dropped:
                order.append(span)
            stack.extend((c, dropped) for c in sorted(children.get(span.id, []), key=by_time, reverse=True))
    return order


def _conversation(trace: Trace) -> tuple[list[_Block], int]:
    """The trace as a list of blocks in conversation order, and the count of unique messages."""
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
                walk.add(_Block(label, _value_text(value), label))
    return walk.blocks, walk.n_messages


# ---------------------------------------------------------------------------
# The token cap


def _marker(n_blocks: int, n_tokens: int) -> str:
    return f"[... {n_blocks:,} messages, ~{n_tokens:,} tokens elided ...]"


def _cut(text: str, tokens: int, limit: int) -> str:
    return f"{truncate_to_tokens(text, limit)} [... cut, ~{tokens - limit:,} tokens more]"


def _fit(blocks: list[_Block], counts: list[int], budget: int) -> tuple[list[str], bool]:
    """Texts that fit in budget tokens: first request, final answer, errors, then the most recent turns."""
    n = len(blocks)
    keep: dict[int, str] = {}
    remaining = budget

    def cost(i: int, tokens: int) -> int:
        # Keeping block i splits the elided run around it into up to two runs.
        left = i > 0 and i - 1 not in keep
        right = i < n - 1 and i + 1 not in keep
        return tokens + 2 + _MARKER_TOKENS * (left + right - 1)

    def take(i: int, cap: int | None = None, partial: bool = False) -> bool:
        nonlocal remaining
        if i in keep:
            return True
        overhead = cost(i, 0)
        limit = counts[i] if cap is None else min(counts[i], cap)
        if limit + overhead > remaining:
            if not partial:
                return False
            limit = remaining - overhead - _CUT_NOTE_TOKENS
            if limit < _MIN_PARTIAL_TOKENS:
                return False
        if limit >= counts[i]:
            keep[i] = blocks[i].text
        else:
            keep[i] = _cut(blocks[i].text, counts[i], limit)
            overhead += _CUT_NOTE_TOKENS
        remaining -= limit + overhead
        return True

    first_system = next((i for i, b in enumerate(blocks) if b.role == "system"), None)
    first_user = next((i for i, b in enumerate(blocks) if b.role == "user" and b.prose), None)
    final = next((i for i in reversed(range(n)) if blocks[i].role == "assistant" and blocks[i].prose), None)
    for i in (first_user, final, first_system):
        if i is not None:
            take(i, cap=budget // 4, partial=True)
    for i in reversed(range(n)):
        if blocks[i].error:
            take(i, cap=budget // 8, partial=True)
    for i in reversed(range(n)):
        if not take(i, partial=True):
            break

    out: list[str] = []
    gap_blocks = gap_tokens = 0
    for i in range(n):
        if i in keep:
            if gap_blocks:
                out.append(_marker(gap_blocks, gap_tokens))
                gap_blocks = gap_tokens = 0
            out.append(keep[i])
        else:
            gap_blocks += 1
            gap_tokens += counts[i]
    if gap_blocks:
        out.append(_marker(gap_blocks, gap_tokens))
    truncated = len(keep) < n or any(keep[i] != blocks[i].text for i in keep)
    return out, truncated


def preprocess(trace: Trace, settings: PreprocessSettings) -> PreprocessedTrace:
    """The facet model's view of a trace: linear, de-duplicated, redacted, capped."""
    blocks, n_messages = _conversation(trace)
    texts = [b.text for b in blocks]
    counts = count_tokens_batch(texts) if texts else []
    tokens_before = sum(counts) + max(len(texts) - 1, 0)  # + one per "\n\n" separator

    budget = settings.max_tokens
    truncated = False
    while True:
        if tokens_before > budget:
            parts, truncated = _fit(blocks, counts, budget)
        else:
            parts = texts
        text = "\n\n".join(parts)
        redactions: dict[str, int] = {}
        if settings.redact:
            text, redactions = redact(text, settings.extra_patterns or None)
        tokens_after = count_tokens(text)
        if tokens_after <= settings.max_tokens:
            break
        # Our per-block estimate was a little low (tokens merge across joins):
        # tighten the budget by the overshoot and fit again.
        budget -= tokens_after - settings.max_tokens + 32
        if budget < settings.max_tokens // 2:
            text = truncate_to_tokens(text, settings.max_tokens)
            tokens_after = count_tokens(text)
            truncated = True
            break

    return PreprocessedTrace(
        text=text,
        content_hash=sha256_text(text),
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        n_spans=len(trace.spans),
        n_messages=n_messages,
        redactions=redactions,
        truncated=truncated,
    )
