"""The offline engine: needs no LLM, deterministic, and says so in every row it writes (engine = 'extractive').

- task: the user's first real request, in full (bounded), with greetings and filler openers skipped;
- sentiment: each user sentence against labelled prototype sentences (data/sentiment_prototypes.yaml) by
  the local embedding; Neutral unless a class is clearly nearer;
- issues: the outcome header's signals first (which tool failed and how, an abnormal end), then what the
  conversation shows (the agent saying it cannot help, a hand-off to a human, the user repeating a
  complaint); "No issues observed." only when there is none of these.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from typing import Protocol

import numpy as np
import yaml

from ..config import FacetSpec
from ..preprocess.signals import HEADER_LABEL, ErrorSignal, parse_header

EXTRACTIVE_MODEL = "extractive-v2"

MAX_TASK_CHARS = 400
MAX_QUOTE_CHARS = 120
SENTIMENTS = ("satisfied", "neutral", "confused", "frustrated", "angry")
# A class wins a sentence when its nearest prototypes beat Neutral's by this much (cosine); below it
# the sentence is Neutral.
SENTIMENT_MARGIN = 0.06
TOP_K = 3  # prototypes per class averaged into a sentence's similarity to that class
# When a conversation shows several moods, the one that matters most to a reader of the map wins.
SEVERITY = {"angry": 4, "frustrated": 3, "confused": 2, "satisfied": 1, "neutral": 0}
REPEAT_SIMILARITY = 0.9  # two user sentences this close (cosine) say the same thing again

# Blocks the preprocessor writes: "[user] ...", "[assistant -> tool] ...", "[tool name ERROR] ...".
_BLOCK = re.compile(r"^\[(?P<tag>[^\]\n]{1,120})\][ \t]?", re.M)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


def split_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) for each block of a preprocessed trace."""
    marks = list(_BLOCK.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.group("tag").strip(), text[m.end():end].strip()))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+|(?<=:)\s+(?=[A-Z])", text) if s.strip()]


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"


# ---------------------------------------------------------------------------
# task

# Openers that carry no request: greetings, pleasantries, "I've got two things I need help with today:",
# and contact details given up front. Each pattern matches a whole sentence.
_FILLER = [re.compile(p, re.I) for p in (
    r"(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings|dear \w+)\b[\w ,.'-]{0,30}[.!,]?",
    r"(?:hope|i hope) (?:you(?:'re| are)|all is|this finds)\b.*",
    r"(?:thanks|thank you)(?: so much| a lot)?(?: (?:in advance|for (?:your|the|any) help))?[.!]?",
    r"(?:so|ok(?:ay)?|well|um+|right)[,.!]?",
    r"(?:i(?:'ve| have)? (?:got|have) |there (?:are|is) )?(?:a few|a couple(?: of)?|two|three|several|some|a|one|an?)"
    r" (?:quick )?(?:things?|questions?|issues?|problems?|requests?)(?: (?:that )?i (?:need|want|would like)"
    r" (?:help|to ask|to sort)[\w ]*)?[:.!]?",
    r"i (?:need|want|would like|'d like) (?:some )?help(?: with (?:something|a few things|two things|my account))?"
    r"(?: (?:today|please))?[:.!]?",
    r"(?:my|the) (?:e-?mail|phone(?: number)?|number|account(?: e-?mail)?)(?: is|:)? ?\(?\[[A-Z_]+\]\)?[.!]?",
    r"\(?(?:account|e-?mail|phone|contact)[: ]+\[[A-Z_]+\]\)?[.!]?",
    r"\[(?:image|audio|video|file|base64) attachment removed:[^\]]*\]",
)]


def _is_filler(sentence: str) -> bool:
    s = sentence.strip()
    return any(p.fullmatch(s) for p in _FILLER)


def first_request(user_messages: list[str]) -> str:
    """The first user message that asks something, without its filler sentences, bounded.

    Mood sentences stay: on the synthetic scenarios, dropping them lost more task signal than noise.
    """
    for message in user_messages:
        kept = [s for s in _sentences(message) if not _is_filler(s)]
        if kept:
            out = ""
            for s in kept:  # whole sentences while they fit
                if out and len(out) + 1 + len(s) > MAX_TASK_CHARS:
                    break
                out = f"{out} {s}" if out else s
            return _clip(out, MAX_TASK_CHARS)
    return ""


# ---------------------------------------------------------------------------
# sentiment


def load_prototypes() -> dict[str, list[str]]:
    data = yaml.safe_load(resources.files("topics_assets.facets").joinpath("data/sentiment_prototypes.yaml").read_text())
    missing = set(SENTIMENTS) - set(data)
    if missing:
        raise ValueError(f"sentiment_prototypes.yaml: no sentences for {sorted(missing)}")
    return {k: [str(s) for s in data[k]] for k in SENTIMENTS}


class SentimentClassifier:
    """Nearest labelled prototypes, by the local embedding; Neutral where no class is clearly nearer."""

    def __init__(self, embedder: Embedder, prototypes: dict[str, list[str]] | None = None,
                 margin: float = SENTIMENT_MARGIN):
        self.embedder = embedder
        self.margin = margin
        protos = prototypes or load_prototypes()
        self.labels = list(protos)
        self.vectors = [np.asarray(embedder.embed(protos[k]), dtype=np.float32) for k in self.labels]
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _embed(self, sentences: list[str]) -> np.ndarray:
        todo = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if todo:
            for s, v in zip(todo, self.embedder.embed(todo)):
                self._cache[s] = np.asarray(v, dtype=np.float32)
            while len(self._cache) > 50_000:
                self._cache.popitem(last=False)
        return np.vstack([self._cache[s] for s in sentences])

    def scores(self, sentences: list[str]) -> np.ndarray:
        """(sentences x classes) similarity: the mean of each class's TOP_K nearest prototypes."""
        x = self._embed(sentences)
        cols = []
        for protos in self.vectors:
            sims = x @ protos.T
            k = min(TOP_K, sims.shape[1])
            cols.append(np.sort(sims, axis=1)[:, -k:].mean(axis=1))
        return np.stack(cols, axis=1)

    def sentence_labels(self, sentences: list[str]) -> list[tuple[str, float]]:
        """Each sentence's class and its lead over Neutral."""
        if not sentences:
            return []
        s = self.scores(sentences)
        n = self.labels.index("neutral")
        out = []
        for row in s:
            best = int(np.argmax(row))
            lead = float(row[best] - row[n])
            out.append((self.labels[best], lead) if best != n and lead >= self.margin else ("neutral", 0.0))
        return out


_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*\]")  # redaction placeholders say nothing about mood


def _mood_sentences(user_messages: list[str]) -> list[str]:
    out = []
    for m in user_messages:
        for s in _sentences(m):
            s = " ".join(_PLACEHOLDER.sub("", s).split())
            if not _is_filler(s) and re.search(r"[A-Za-z]{2}", s):
                out.append(s)
    return out


def extract_sentiment(user_messages: list[str], classifier: SentimentClassifier) -> str:
    sentences = _mood_sentences(user_messages)
    labelled = [(s, lab, lead) for s, (lab, lead) in zip(sentences, classifier.sentence_labels(sentences))
                if lab != "neutral"]
    if not labelled:
        return "Neutral user: no clear emotion in the user's messages."
    # The most severe mood shown; its most confident sentence is quoted as the cause.
    label = max((lab for _, lab, _ in labelled), key=lambda lab: SEVERITY[lab])
    quote = max((x for x in labelled if x[1] == label), key=lambda x: x[2])[0]
    return f"{label.capitalize()} user: \"{_clip(quote, MAX_QUOTE_CHARS)}\""


# ---------------------------------------------------------------------------
# issues

_KIND_WORDS = {"timeout": "timed out", "http_error": "returned an HTTP error", "exit_code": "exited with a non-zero code",
               "exception": "raised an exception", "error": "returned an error"}
_CANNOT = re.compile(
    r"\b(?:i|we)(?: a|')?m? (?:am |are )?(?:unable to|not able to|can(?:no|')?t|cannot|"
    r"won't be able to|don't have (?:the )?(?:permission|access|ability))\b|\boutside (?:of )?what i(?:'m| am) able\b|"
    r"\b(?:isn't|is not|not) (?:possible|allowed|permitted|something i can)\b", re.I)
_HANDOFF_TOOL = re.compile(r"escalat|transfer|hand_?off|handover|human|live_?agent|support_ticket", re.I)
_HANDOFF_TEXT = re.compile(
    r"\b(?:transfer(?:ring)?|connect(?:ing)?|hand(?:ing)? (?:you )?(?:over|off)|escalat\w*)\b"
    r"[^.?!]{0,60}\b(?:human|live agent|colleague|specialist|supervisor|manager|representative|person)\b", re.I)


def _errors_text(errors: list[ErrorSignal]) -> str:
    grouped: OrderedDict[tuple, list[ErrorSignal]] = OrderedDict()
    for e in errors:
        grouped.setdefault((e.source, e.name, e.agent), []).append(e)
    parts = []
    for (source, name, agent), es in grouped.items():
        n = sum(e.count for e in es)
        kinds = list(dict.fromkeys(_KIND_WORDS.get(e.kind, e.kind) for e in es))
        who = f"agent {name}" if source == "agent" else f"{source} {name}" if source != "step" else f"step {name}"
        where = f" (in agent {agent})" if agent and source != "agent" else ""
        times = f" {n} times" if n > 1 else ""
        parts.append(f"{who.capitalize()}{where} failed{times}: {' and '.join(kinds)} ({_clip(es[0].message, 80)})")
    return "; ".join(parts) + "."


def extract_issues(blocks: list[tuple[str, str]], classifier: SentimentClassifier | None = None) -> str:
    parts: list[str] = []
    head = next((body for tag, body in blocks if tag == HEADER_LABEL), None)
    if head:
        signals = parse_header(head)
        if signals.termination_reason:
            parts.append(f"The run ended abnormally ({signals.termination_reason}).")
        if signals.errors:
            parts.append(_errors_text(signals.errors))
    assistant = [(tag, body) for tag, body in blocks if tag.startswith("assistant")]
    cannot = next((s for tag, body in assistant if "->" not in tag for s in _sentences(body) if _CANNOT.search(s)), None)
    if cannot:
        parts.append(f"The agent said it could not do it: \"{_clip(cannot, MAX_QUOTE_CHARS)}\"")
    handoff = next((tag.split("->", 1)[1].strip() for tag, _ in assistant
                    if "->" in tag and _HANDOFF_TOOL.search(tag.split("->", 1)[1])), None)
    if handoff:
        parts.append(f"Escalated to a human ({handoff}).")
    elif any(_HANDOFF_TEXT.search(body) for tag, body in assistant if "->" not in tag):
        parts.append("The agent handed the user over to a human.")
    repeated = _repeated_complaint([body for tag, body in blocks if tag == "user"], classifier)
    if repeated:
        parts.append(f"The user repeated themselves: \"{_clip(repeated, MAX_QUOTE_CHARS)}\"")
    return " ".join(parts) if parts else "No issues observed."


def _repeated_complaint(user_messages: list[str], classifier: SentimentClassifier | None) -> str | None:
    """A user sentence said again, nearly the same, in a later message (needs the embedder)."""
    if classifier is None or len(user_messages) < 2:
        return None
    items = [(i, s) for i, m in enumerate(user_messages) for s in _sentences(m)
             if not _is_filler(s) and len(s.split()) >= 4]
    if len(items) < 2:
        return None
    x = classifier._embed([s for _, s in items])
    sims = x @ x.T
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            if items[a][0] != items[b][0] and sims[a, b] >= REPEAT_SIMILARITY:
                return items[b][1]
    return None


@lru_cache(maxsize=1)
def _default_classifier() -> SentimentClassifier:
    """One local model and one set of prototype vectors per process, for engines built without one."""
    from ..embed import LocalEmbedder

    return SentimentClassifier(LocalEmbedder())


# ---------------------------------------------------------------------------
# the engine


class ExtractiveFacetEngine:
    """Offline facets from the preprocessed text (and its outcome header); deterministic.

    `embedder` (the local model; make_engine builds it once) serves the sentiment classifier and the
    repeated-complaint check; it is loaded on first use when not given.
    """

    engine = "extractive"
    model = EXTRACTIVE_MODEL

    def __init__(self, specs: list[FacetSpec], embedder: Embedder | None = None):
        self.specs = specs
        self._embedder = embedder
        self._classifier: SentimentClassifier | None = None

    @property
    def classifier(self) -> SentimentClassifier:
        if self._classifier is None:
            self._classifier = SentimentClassifier(self._embedder) if self._embedder else _default_classifier()
        return self._classifier

    def facet(self, text: str) -> dict[str, str]:
        blocks = split_blocks(text)
        user = [body for tag, body in blocks if tag == "user" and body]
        out: dict[str, str] = {}
        for spec in self.specs:
            if spec.name == "task":
                request = first_request(user)
                out[spec.name] = request or "No user request in the trace."
            elif spec.name == "sentiment":
                out[spec.name] = extract_sentiment(user, self.classifier)
            elif spec.name == "issues":
                out[spec.name] = extract_issues(blocks, self.classifier)
            elif spec.kind == "enum":
                joined = text.lower()
                out[spec.name] = next((c for c in spec.categories if c.lower() in joined), spec.categories[-1])
            elif spec.kind == "score":
                out[spec.name] = "3"
            else:
                # A custom free-text facet has no extractive rule: say so rather than invent one.
                out[spec.name] = f"Not extracted offline ({spec.name} needs an LLM)."
        return out
