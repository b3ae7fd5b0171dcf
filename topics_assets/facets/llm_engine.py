"""All facets of a trace in ONE structured-output call (the trace tokens are paid once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import FacetSpec
from .prompts import FACET_MAX_CHARS, SCORE_RANGE, facet_messages, facet_schema


def _as_score(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    return v if isinstance(v, int) and SCORE_RANGE[0] <= v <= SCORE_RANGE[1] else None


def validator(specs: list[FacetSpec]) -> Callable[[dict], None]:
    """Checks an answer against the facets, normalising it in place.

    Harmless drift is repaired rather than paid for with a re-ask (a category in another case,
    a score sent as "4" or 4.0, stray whitespace, keys nobody asked for, which are dropped);
    anything else raises ValueError, which the client turns into one re-ask (then schema_invalid).
    """

    def validate(data: dict) -> None:
        if not isinstance(data, dict):
            raise ValueError("answer is not a JSON object")
        missing = [s.name for s in specs if s.name not in data]
        if missing:
            raise ValueError(f"missing facets: {', '.join(missing)}")
        for extra in set(data) - {s.name for s in specs}:
            del data[extra]
        for s in specs:
            v = data[s.name]
            if s.kind == "enum":
                canon = {c.lower(): c for c in s.categories}
                key = v.strip().lower() if isinstance(v, str) else None
                if key not in canon:
                    raise ValueError(f"{s.name}: {v!r} is not one of {s.categories}")
                data[s.name] = canon[key]
            elif s.kind == "score":
                score = _as_score(v)
                if score is None:
                    raise ValueError(f"{s.name}: {v!r} is not an integer from 1 to 5")
                data[s.name] = score
            else:
                if not (isinstance(v, str) and v.strip()):
                    raise ValueError(f"{s.name}: empty or not a string")
                text = " ".join(v.split())
                if len(text) > FACET_MAX_CHARS:
                    raise ValueError(f"{s.name}: {len(text)} characters, at most {FACET_MAX_CHARS}")
                data[s.name] = text

    return validate


@dataclass
class LLMFacetEngine:
    """All facets of a trace in one structured-output call through litellm."""

    specs: list[FacetSpec]
    client: Any  # llm.LLMClient
    engine: str = "llm"

    @property
    def model(self) -> str:
        return self.client.settings.model

    def facet(self, text: str) -> dict[str, str]:
        """{facet: text} for every spec; scores as "1".."5". Raises llm.LLMError on failure."""
        result = self.client.complete_json(
            facet_messages(self.specs, text), facet_schema(self.specs), validate=validator(self.specs)
        )
        return {s.name: str(result.data[s.name]) for s in self.specs}
