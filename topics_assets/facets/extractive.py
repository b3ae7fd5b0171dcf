"""The offline engine: needs nothing, deterministic, and says so in every row it writes (engine = 'extractive').

It lifts the user's first request, sentiment cues and tool errors straight out of the preprocessed text.
"""

from __future__ import annotations

import re

from ..config import FacetSpec


EXTRACTIVE_MODEL = "extractive-v1"

# Blocks the preprocessor writes: "[user] ...", "[assistant -> tool] ...", "[tool name ERROR] ...".
_BLOCK = re.compile(r"^\[(?P<tag>[^\]\n]{1,120})\][ \t]?", re.M)


def split_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) for each block of a preprocessed trace."""
    marks = list(_BLOCK.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.group("tag").strip(), text[m.end():end].strip()))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


# Openers that say nothing about the request ("Hi!", "Hope you're well.", "Really getting tired of this.").
_REQUEST_CUE = re.compile(
    r"\b(need|want|would like|'d like|can you|could you|can i|how (?:do|can|long)|why|where|when|what|please|"
    r"help|trying to|my|charged|cancel|change|refund|reset|book|track|return|upgrade|delete|export|report|"
    r"isn't|doesn't|won't|can't|not working|broken|missing|locked)\b", re.I)


def request_sentence(user_text: str) -> str:
    """The first sentence that asks for something, else the longest opener."""
    sentences = _sentences(user_text)
    for s in sentences:
        if _REQUEST_CUE.search(s) and len(s.split()) >= 4:
            return s
    return max(sentences[:3], key=len, default="")


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"


# Sentiment cues, strongest class first; the matched cues become the facet text.
SENTIMENT_CUES: list[tuple[str, list[str]]] = [
    ("angry", ["unacceptable", "ridiculous", "furious", "outrageous", "worst", "scam", "disgusting", "lawyer",
               "never again", "absolutely terrible", "joke", "sick of", "fed up", "speak to a manager",
               "real person", "human"]),
    ("frustrated", ["still", "again", "third time", "second time", "waiting", "frustrat", "annoying", "already told",
                    "doesn't work", "does not work", "not working", "keeps", "why is", "how long", "seriously",
                    "hours", "days"]),
    ("confused", ["confused", "don't understand", "do not understand", "not sure", "what do you mean", "unclear",
                  "which one", "i guess", "maybe", "no idea", "lost", "how do i", "?"]),
    ("satisfied", ["thank", "thanks", "great", "perfect", "awesome", "appreciate", "helpful", "excellent",
                   "that works", "wonderful", "love"]),
]


def extract_sentiment(user_texts: list[str]) -> str:
    joined = " \n ".join(user_texts).lower()
    scores: dict[str, list[str]] = {}
    for label, cues in SENTIMENT_CUES:
        hits = [c for c in cues if c in joined]
        if hits:
            scores[label] = hits
    if not scores:
        return "Neutral user: no emotional cues in the user's messages."
    # Anger and frustration outweigh politeness at the end of a bad conversation.
    weight = {"angry": 3.0, "frustrated": 2.0, "confused": 1.0, "satisfied": 1.2}
    label = max(scores, key=lambda k: weight[k] * len(scores[k]))
    cues = [c for c in scores[label] if c != "?"]
    # The user's own words carry the cause; quote the sentence with the most cues.
    sentences = [s for t in user_texts for s in _sentences(t)]
    quote = max(sentences, key=lambda s: sum(c in s.lower() for c in scores[label]), default="")
    listed = ", ".join(f"'{c}'" for c in sorted(cues)[:3]) or "questions"
    return f"{label.capitalize()} user ({listed}): \"{_clip(quote, 90)}\""


def extract_issues(blocks: list[tuple[str, str]]) -> str:
    errors = []
    for tag, body in blocks:
        if tag.startswith("tool ") and tag.endswith("ERROR"):
            tool = tag[len("tool "):-len("ERROR")].strip()
            errors.append(f"tool {tool} failed: {_clip(body, 120)}")
    if errors:
        extra = f" ({len(errors) - 1} more failures)" if len(errors) > 1 else ""
        return f"Tool error: {errors[0]}{extra}."
    refusal = re.compile(
        r"\b(i'?m sorry|i am sorry|unable to|can(?:no|')t (?:help|do|process|find)|transfer(?:ring)? you|"
        r"human agent|not able to|escalat)", re.I)
    for tag, body in blocks:
        if tag.startswith("assistant"):
            for s in _sentences(body):
                if refusal.search(s):
                    return f"Agent could not fully resolve the request: {_clip(s, 140)}"
    return "No issues observed."


class ExtractiveFacetEngine:
    """Offline facets straight from the preprocessed text; deterministic."""

    engine = "extractive"
    model = EXTRACTIVE_MODEL

    def __init__(self, specs: list[FacetSpec]):
        self.specs = specs

    def facet(self, text: str) -> dict[str, str]:
        blocks = split_blocks(text)
        user = [body for tag, body in blocks if tag == "user" and body]
        out: dict[str, str] = {}
        for spec in self.specs:
            if spec.name == "task":
                request = request_sentence(user[0]) if user else ""
                out[spec.name] = _clip(request, 220) if request else "No user request in the trace."
            elif spec.name == "sentiment":
                out[spec.name] = extract_sentiment(user)
            elif spec.name == "issues":
                out[spec.name] = extract_issues(blocks)
            elif spec.kind == "enum":
                joined = text.lower()
                out[spec.name] = next((c for c in spec.categories if c.lower() in joined), spec.categories[-1])
            elif spec.kind == "score":
                out[spec.name] = "3"
            else:
                # A custom free-text facet has no extractive rule: say so rather than invent one.
                out[spec.name] = f"Not extracted offline ({spec.name} needs an LLM)."
        return out
