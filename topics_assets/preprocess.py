"""Turn a trace (any number of spans) into the one linear text a facet model reads.

Agent frameworks log every LLM call with the whole history it re-sent, so a
500-step run holds the first message 500 times. We walk the span tree in time
order and emit each message once, in conversation order: the text grows with
the conversation, not with its square. Scorer spans, span metadata and
attachments never reach the text; secrets and PII are redacted; the result is
capped at settings.max_tokens, keeping what a summary needs most. A custom
preprocessor (settings.custom, "package.module:function") may first choose the
messages or spans to keep; what it keeps goes through all of the above.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import re
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from topics_assets.config import PreprocessSettings
from topics_assets.redact import redact
from topics_assets.tokens import count_tokens, truncate_to_tokens
from topics_assets.traces import Message, Span, Trace, sha256_text

SYSTEM_PROMPT_CHARS = 300
DROPPED_SPAN_TYPES = ("score", "eval")
_MARKER_TOKENS = 24  # reserved per elision marker: "[... 1,234 messages, ~123,456 tokens elided ...]"
_MIN_PARTIAL_TOKENS = 256  # below this, a block that does not fit is elided rather than cut
_CUT_NOTE_TOKENS = 16  # reserved for "[... cut, ~12,345 tokens more]"
_RECENT_CALLS = 4  # LLM calls remembered for the re-sent-prefix fast path

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
    # Sized from the match's span, not a copy of the (possibly 100 MB) payload.
    start, end = m.span(2)
    while end > start and m.string[end - 1] == "=":
        end -= 1
    n_bytes = (end - start) * 3 // 4
    return _placeholder(_kind_of(mime) if mime else kind, f"{mime or 'unknown type'}, {_size(n_bytes)}")


def _may_hold_blob(text: str) -> bool:
    # A run of 200 base64 characters covers a whole aligned 100-character window
    # with no space in it; prose has spaces in every window. This check is ~10x
    # cheaper than running the regex over every block of a million-token trace.
    return any(" " not in text[i : i + 100] for i in range(0, len(text) - 99, 100))


def strip_attachments(text: str) -> str:
    """Replace data: URIs and long base64 blobs with a placeholder naming kind and size."""
    if "base64," in text:
        text = _DATA_URI.sub(_data_uri_placeholder, text)
    if len(text) >= 200 and _may_hold_blob(text):
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


def attachment_text(
    kind: str | None, mime: str | None = None, data: str | None = None, url: str | None = None,
    file_id: str | None = None,
) -> str:
    """The placeholder for an attachment described field by field (OTel GenAI blob / uri / file parts)."""
    kind = kind if kind in ("image", "audio", "video") else _kind_of(mime)
    if data is not None:
        detail = f"{mime or kind}, {_size(_b64_bytes(data))}"
    elif url:
        detail = "linked by URL, size unknown"
    elif file_id:
        detail = f"{mime or kind}, file id {file_id}"
    else:
        detail = mime or kind
    return _placeholder(kind, detail)


# ---------------------------------------------------------------------------
# The linear conversation


@dataclass
class PreprocessedTrace:
    """What the facet model reads for one trace, with the numbers run metadata reports."""

    text: str
    content_hash: str  # sha256 of text: unchanged text means unchanged facets
    # The linear (de-duplicated) conversation before anything was shortened, redacted or cut by the cap.
    tokens_before: int
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


_MESSAGE_FIELDS = [f.name for f in fields(Message)]


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
        return [Message(**{k: value[k] for k in _MESSAGE_FIELDS if k in value})]
    # Not parsed into messages (e.g. an odd llm span kept raw): show it as JSON, once.
    return [Message(default_role, _value_text(value))]


class _Result:
    """A tool result shown once (from a tool span or a tool message), waiting for its twin."""

    __slots__ = ("block", "values", "claimed", "_keys")

    def __init__(self, block: _Block, values: tuple) -> None:
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
        self.blocks: list[_Block] = []
        self.cut: list[str] = []  # text left out of the blocks (long system prompts' tails)
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

    def add(self, block: _Block) -> _Block:
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
            self.add(_Block(f"error in llm {span.name or span.id}", span.error, "error", error=True))

    def message(self, m: Message) -> None:
        content = m.content or ""
        if m.role == "tool":
            if self.from_spans.take(m.tool_call_id, lambda: [_result_key(content)]) is not None:
                return  # a tool span already showed this result
        self.n_messages += 1
        if m.role == "system":
            self.add(_Block("system", _shorten_system(content), "system"))
            if len(content) > SYSTEM_PROMPT_CHARS:
                self.cut.append(content[SYSTEM_PROMPT_CHARS:])  # counted in tokens_before
            return
        if m.role == "tool":
            name = m.name or self.call_names.get(m.tool_call_id or "")
            block = self.add(
                _Block(f"tool {name}" if name else "tool", content, "tool", error=bool(_ERROR_TEXT.match(content)))
            )
            self.from_messages.add(_Result(block, (content,)), m.tool_call_id)
            return
        if content.strip():
            self.add(_Block(m.role, content, m.role, prose=True))
        for tc in m.tool_calls:
            if tc.get("id"):
                self.call_names[tc["id"]] = tc["name"]
            self.add(_Block(f"{m.role} -> {tc['name']}", tc.get("arguments") or "{}", m.role))

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
        block = self.add(_Block(f"tool {span.name or 'unknown'}", _value_text(result), "tool", error=bool(span.error)))
        self.from_spans.add(_Result(block, values), call_id)

    def other_span(self, span: Span) -> None:
        if span.error:
            self.add(_Block(f"error in {span.type} {span.name or span.id}", span.error, "error", error=True))


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


def _conversation(trace: Trace) -> tuple[list[_Block], int, list[str]]:
    """The trace as blocks in conversation order, the count of unique messages, and text cut out."""
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
    return walk.blocks, walk.n_messages, walk.cut


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


# ---------------------------------------------------------------------------
# Custom preprocessors


class CustomPreprocessorError(Exception):
    """A custom preprocessor failed on one trace: that trace fails, not the run.

    `details` holds the callable's own traceback, for the failure record.
    """

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def load_custom(spec: str) -> Callable[[Trace], Any]:
    """The callable named "package.module:function" (or "module:Class.method").

    Raises ConfigError when it cannot be imported: a bad setting fails the run
    once, up front, rather than every trace.
    """
    from topics_assets.config import ConfigError

    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"preprocess.custom {spec!r} must look like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - ImportError, or the module itself raising on import
        raise ConfigError(f"preprocess.custom {spec!r}: cannot import {module_name!r}: {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"preprocess.custom {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"preprocess.custom {spec!r}: {attr!r} is not callable")
    return obj


def _custom_fn(spec: str) -> Callable[[Trace], Any]:
    fn = _loaded.get(spec)
    if fn is None:
        fn = _loaded[spec] = load_custom(spec)
    return fn


_loaded: dict[str, Callable[[Trace], Any]] = {}


def apply_custom(fn: Callable[[Trace], Any], trace: Trace, name: str = "") -> Trace:
    """The trace as the custom callable reduced it: its messages or spans, in a trace.

    The callable gets a copy (it may mutate what it likes) and returns a list of
    Message (or {"role", "content", ...} dicts), a list of Span, or a Trace.
    Whatever it keeps still goes through de-duplication, redaction and the cap.
    """
    name = name or getattr(fn, "__qualname__", repr(fn))
    try:
        result = fn(copy.deepcopy(trace))
    except Exception as e:  # noqa: BLE001 - any error of user code fails this trace alone
        details = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        raise CustomPreprocessorError(
            f"custom preprocessor {name} failed on trace {trace.trace_id}: {type(e).__name__}: {e}", details
        ) from e
    if isinstance(result, Trace):
        return result
    if isinstance(result, tuple):
        result = list(result)
    if isinstance(result, list):
        if all(isinstance(x, Span) for x in result):
            return dataclasses.replace(trace, spans=result)
        if all(isinstance(x, (Message, dict)) for x in result):
            try:
                messages = [x if isinstance(x, Message) else Message(**x) for x in result]
            except TypeError as e:
                raise CustomPreprocessorError(
                    f"custom preprocessor {name} returned a message dict that is not a message on trace "
                    f"{trace.trace_id}: {e} (keys allowed: {', '.join(_MESSAGE_FIELDS)})"
                ) from e
            return dataclasses.replace(trace, spans=[Span("custom", "llm", name="custom", input=messages)])
        kinds = sorted({type(x).__name__ for x in result})
        raise CustomPreprocessorError(
            f"custom preprocessor {name} returned a list of {', '.join(kinds)} on trace {trace.trace_id}; "
            "expected only Message (or message dicts) or only Span"
        )
    raise CustomPreprocessorError(
        f"custom preprocessor {name} returned {type(result).__name__} on trace {trace.trace_id}; "
        "expected a list of Message, a list of Span, or a Trace"
    )


# ---------------------------------------------------------------------------
# The whole step

_SEP = "\n\n"
_SENTINEL = "\x00"  # marks block ends while the joined text is redacted in one pass


@lru_cache(maxsize=1024)
def _count_cached(text: str) -> int:
    return count_tokens(text)


def _count_block(text: str, role: str) -> int:
    # System prompts repeat across an app's traces: count each once (huge ones are not kept).
    return _count_cached(text) if role == "system" and len(text) <= 65_536 else count_tokens(text)


def _redact_blocks(
    pieces: list[str], counts: list[int], settings: PreprocessSettings
) -> tuple[str, int, dict[str, int]]:
    """Redact the joined blocks, recounting only the blocks that changed.

    Every block starts with "[" and every piece but the last ends with the
    separator, where the tokenizer's pre-tokens always end: so the tokens of the
    joined text are exactly the sum of the pieces' tokens (a property test checks
    this). A sentinel between pieces, which no built-in rule can match across,
    lets us split the redacted text back into its pieces. Whenever that cannot
    hold (a NUL in the trace, a rule that crossed a boundary, a configured
    pattern that matched), the result is that of redacting the joined text,
    counted whole.
    """
    extra = settings.extra_patterns or None
    if not settings.redact:
        return "".join(pieces), sum(counts), {}
    if any(_SENTINEL in p for p in pieces):
        text, redactions = redact("".join(pieces), extra)
        return text, count_tokens(text), redactions
    joined, redactions = redact(_SENTINEL.join(pieces), builtin=True)
    out = joined.split(_SENTINEL) if redactions else pieces
    if len(out) != len(pieces) or not all(o[:1] == "[" for o in out):  # a rule ate a block boundary
        text, more = redact(joined.replace(_SENTINEL, ""), extra, builtin=False)
        return text, count_tokens(text), _merge(redactions, more)
    if extra:  # configured patterns may span blocks: they see the joined text, as always
        text, more = redact("".join(out), extra, builtin=False)
        if more:
            return text, count_tokens(text), _merge(redactions, more)
    total = 0
    for new, old, n in zip(out, pieces, counts):
        total += n if new is old or new == old else count_tokens(new)
    return "".join(out), total, redactions


def _merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


def preprocess(
    trace: Trace, settings: PreprocessSettings, custom: Callable[[Trace], Any] | None = None
) -> PreprocessedTrace:
    """The facet model's view of a trace: linear, de-duplicated, redacted, capped.

    A custom preprocessor (`custom`, else the one named in settings.custom) first
    picks the messages or spans to keep; its errors raise CustomPreprocessorError.
    """
    n_spans = len(trace.spans)
    if custom is None and settings.custom:
        custom = _custom_fn(settings.custom)
    if custom is not None:
        trace = apply_custom(custom, trace, settings.custom or "")
    blocks, n_messages, cut = _conversation(trace)
    # Each block with the separator that follows it: their token counts add up
    # exactly to the joined text's (see _redact_blocks), one block's token ids
    # alive at a time however long the trace.
    pieces = [b.text + _SEP for b in blocks]
    if pieces:
        pieces[-1] = pieces[-1][: -len(_SEP)]
    counts = [_count_block(p, b.role) for p, b in zip(pieces, blocks)]
    tokens_before = sum(counts)
    tokens_cut = sum(_count_block(c, "system") for c in cut)

    truncated = False
    text, tokens_after, redactions = "", 0, {}
    if tokens_before <= settings.max_tokens:
        text, tokens_after, redactions = _redact_blocks(pieces, counts, settings)
    del pieces
    budget = settings.max_tokens
    while tokens_before > budget or tokens_after > settings.max_tokens:
        if tokens_before > budget:
            parts, truncated = _fit(blocks, counts, budget)
            text = _SEP.join(parts)
            redactions = {}
            if settings.redact:
                text, redactions = redact(text, settings.extra_patterns or None)
            tokens_after = count_tokens(text)
            if tokens_after <= settings.max_tokens:
                break
        # Placeholders outgrew what they replaced, or our estimate of a cut
        # block was low: tighten the budget by the overshoot and fit again.
        budget = min(budget, tokens_before) - (tokens_after - settings.max_tokens) - 32
        if budget < settings.max_tokens // 2:
            text = truncate_to_tokens(text, settings.max_tokens)
            tokens_after = count_tokens(text)
            truncated = True
            break

    return PreprocessedTrace(
        text=text,
        content_hash=sha256_text(text),
        tokens_before=tokens_before + tokens_cut,
        tokens_after=tokens_after,
        n_spans=n_spans,
        n_messages=n_messages,
        redactions=redactions,
        truncated=truncated,
    )
