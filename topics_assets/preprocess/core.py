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

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from topics_assets.config import PreprocessSettings
from topics_assets.preprocess.cap import fit
from topics_assets.preprocess.custom import apply_custom, cached_custom
from topics_assets.preprocess.redact import count_placeholders, redact, redact_many
from topics_assets.preprocess.signals import HEADER_LABEL, Outcome, extract, header
from topics_assets.preprocess.tokens import count_tokens, truncate_to_tokens
from topics_assets.preprocess.walk import SYSTEM_PROMPT_CHARS, Block, conversation, shorten_system
from topics_assets.traces import Trace, sha256_text


@dataclass
class PreprocessedTrace:
    """What the facet model reads for one trace, with the numbers run metadata reports."""

    text: str
    content_hash: str  # sha256 of text: unchanged text means unchanged facets
    # The linear (de-duplicated, redacted) conversation before anything was shortened or cut by the cap.
    tokens_before: int
    tokens_after: int  # tokens in text
    n_spans: int  # spans in the trace, dropped ones included
    n_messages: int  # unique messages and tool results in the conversation
    redactions: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    outcome: Outcome = field(default_factory=Outcome)  # signals from the whole trace (trace_outcomes)


# ---------------------------------------------------------------------------
# The whole step

_SEP = "\n\n"


@lru_cache(maxsize=1024)
def _count_cached(text: str) -> int:
    return count_tokens(text)


def _count_block(text: str, role: str) -> int:
    # System prompts repeat across an app's traces: count each once (huge ones are not kept).
    return _count_cached(text) if role == "system" and len(text) <= 65_536 else count_tokens(text)


def _redact_bodies(blocks: list[Block], settings: PreprocessSettings) -> tuple[dict[str, int], int]:
    """Redact every block whole, before anything is shortened or cut: a secret at a cut is never half kept.

    Also returns how many more tokens the changed blocks had before (tokens_before counts the text as it came).
    """
    if not settings.redact or not blocks:
        return {}, 0
    # What was redacted at ingest (preprocess.store_raw) counts too: the placeholders already there.
    already = count_placeholders([b.body for b in blocks])
    bodies, redactions = redact_many([b.body for b in blocks], settings.extra_patterns or None)
    if already:
        redactions = _merge(redactions, already)
    extra = 0
    if redactions:
        for b, body in zip(blocks, bodies):
            if body != b.body:
                extra += count_tokens(b.body) - count_tokens(body)
                b.body = body
    return redactions, extra


def _shorten_systems(blocks: list[Block]) -> list[str]:
    """System prompts shortened (after redaction); the tails cut off, for tokens_before."""
    cut: list[str] = []
    for b in blocks:
        if b.role == "system" and len(b.body) > SYSTEM_PROMPT_CHARS:
            cut.append(b.body[SYSTEM_PROMPT_CHARS:])
            b.body = shorten_system(b.body)
    return cut


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
    # Outcome signals read the whole trace, before a custom preprocessor picks what the model reads.
    outcome = extract(trace)
    if custom is None and settings.custom:
        custom = cached_custom(settings.custom)
    if custom is not None:
        trace = apply_custom(custom, trace, settings.custom or "")
    blocks, n_messages, _ = conversation(trace)
    stated = header(outcome)
    if stated:  # errors and an abnormal end lead the text (redacted and capped like any block)
        blocks.insert(0, Block(HEADER_LABEL, stated, HEADER_LABEL))
    redactions, tokens_redacted = _redact_bodies(blocks, settings)
    cut = _shorten_systems(blocks)
    # Each block with the separator that follows it: their token counts add up
    # exactly to the joined text's (a property test checks this), one block's
    # token ids alive at a time however long the trace.
    pieces = [b.text + _SEP for b in blocks]
    if pieces:
        pieces[-1] = pieces[-1][: -len(_SEP)]
    counts = [_count_block(p, b.role) for p, b in zip(pieces, blocks)]
    tokens_before = sum(counts)
    tokens_cut = sum(_count_block(c, "system") for c in cut)

    truncated = False
    text, tokens_after = "", 0
    if tokens_before <= settings.max_tokens:
        text, tokens_after = "".join(pieces), tokens_before
    del pieces
    budget = settings.max_tokens
    while tokens_before > budget or tokens_after > settings.max_tokens:
        if tokens_before > budget:
            parts, truncated = fit(blocks, counts, budget)
            text = _SEP.join(parts)
            tokens_after = count_tokens(text)
            if tokens_after <= settings.max_tokens:
                break
        # Our estimate of a cut block was low: tighten the budget by the overshoot and fit again.
        budget = min(budget, tokens_before) - (tokens_after - settings.max_tokens) - 32
        if budget < settings.max_tokens // 2:
            text = truncate_to_tokens(text, settings.max_tokens)
            tokens_after = count_tokens(text)
            truncated = True
            break
    if settings.redact and settings.extra_patterns:  # configured patterns may span blocks: the joined text too
        text, more = redact(text, settings.extra_patterns, builtin=False)
        if more:
            redactions = _merge(redactions, more)
            tokens_after = count_tokens(text)
            if tokens_after > settings.max_tokens:
                text = truncate_to_tokens(text, settings.max_tokens)
                tokens_after, truncated = count_tokens(text), True

    return PreprocessedTrace(
        text=text,
        content_hash=sha256_text(text),
        tokens_before=tokens_before + tokens_cut + tokens_redacted,
        tokens_after=tokens_after,
        n_spans=n_spans,
        n_messages=n_messages,
        redactions=redactions,
        truncated=truncated,
        outcome=outcome,
    )
