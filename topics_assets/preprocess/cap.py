"""The token cap: which blocks of a conversation too long for the budget are kept, cut or elided."""

from __future__ import annotations


from topics_assets.preprocess.tokens import truncate_to_tokens
from topics_assets.preprocess.walk import Block


_MARKER_TOKENS = 24  # reserved per elision marker: "[... 1,234 messages, ~123,456 tokens elided ...]"
_MIN_PARTIAL_TOKENS = 256  # below this, a block that does not fit is elided rather than cut
_CUT_NOTE_TOKENS = 16  # reserved for "[... cut, ~12,345 tokens more]"

# ---------------------------------------------------------------------------
# The token cap


def _marker(n_blocks: int, n_tokens: int) -> str:
    return f"[... {n_blocks:,} messages, ~{n_tokens:,} tokens elided ...]"


def _cut(text: str, tokens: int, limit: int) -> str:
    return f"{truncate_to_tokens(text, limit)} [... cut, ~{tokens - limit:,} tokens more]"


def fit(blocks: list[Block], counts: list[int], budget: int) -> tuple[list[str], bool]:
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
    outcome = 0 if n and blocks[0].role == "outcome" else None  # the signals header: always kept
    for i in (outcome, first_user, final, first_system):
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
