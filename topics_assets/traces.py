"""The in-memory shape every input format is parsed into.

Formats differ wildly (chat logs, span trees, benchmark run files); everything
downstream (preprocess, facet, store) sees only these few dataclasses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

SPAN_TYPES = ("llm", "tool", "score", "task", "function", "retrieval", "other")


@dataclass
class Message:
    """One chat message; tool calls are {"id", "name", "arguments"} dicts."""

    role: str  # system | user | assistant | tool
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


# Span metadata keys that readers fill so that outcome signals (preprocess/signals.py) read every
# format alike; metadata never reaches the facet text.
#   any span:  termination_reason (how the run ended, e.g. tau2's "max_steps"), agent_name
#   llm spans: model, llm_calls (when one span stands for several calls), usage
#              ({"input_tokens", "output_tokens"}), cost_usd
# A score, a reward or user feedback is a `score` span whose output is a number or {"score": n}.
OUTCOME_METADATA_KEYS = ("termination_reason", "agent_name", "model", "llm_calls", "usage", "cost_usd")


@dataclass
class Span:
    id: str
    type: str = "other"  # one of SPAN_TYPES
    parent_id: str | None = None
    name: str | None = None
    # llm spans: a list of Message as input (the history sent) and output (the reply);
    # other spans: any JSON value.
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    start_time: float | None = None  # epoch seconds
    end_time: float | None = None
    error: str | None = None


@dataclass
class Trace:
    trace_id: str
    project: str
    started_at: datetime  # timezone-aware, UTC
    spans: list[Span]
    format: str = "spans"
    # Ground truth when the source carries it (benchmarks, synthetic data); never
    # shown to a facet model.
    labels: dict[str, Any] = field(default_factory=dict)

    @property
    def day(self) -> str:
        return self.started_at.astimezone(timezone.utc).strftime("%Y-%m-%d")

    def to_json(self) -> str:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        return json.dumps(d, ensure_ascii=False, default=str, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Trace:
        d = json.loads(text)
        spans = []
        for s in d["spans"]:
            if s.get("type") == "llm":
                s["input"] = _messages_or_raw(s.get("input"))
                s["output"] = _messages_or_raw(s.get("output"))
            spans.append(Span(**s))
        return cls(
            trace_id=d["trace_id"],
            project=d["project"],
            started_at=datetime.fromisoformat(d["started_at"]),
            spans=spans,
            format=d.get("format", "spans"),
            labels=d.get("labels") or {},
        )

    def payload_hash(self) -> str:
        return sha256_text(self.to_json())


def _messages_or_raw(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return [Message(**m) for m in value]
    if isinstance(value, dict) and "role" in value and set(value) <= set(MESSAGE_FIELDS):
        return Message(**value)
    return value


MESSAGE_FIELDS = tuple(f.name for f in fields(Message))  # in declaration order, for error messages


@dataclass
class Quarantined:
    """A record that could not be parsed: kept with where it came from and why."""

    source: str
    line: int | None
    reason: str
    snippet: str = ""
    trace_id: str | None = None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
