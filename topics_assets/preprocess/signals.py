"""Outcome signals: what happened in a trace, read from its structure, never asked of an LLM.

Errors (span status, exceptions, failed tool calls, non-zero exit codes, HTTP >= 400, timeouts), how
the run ended, scores, duration, calls, tokens, cost, models, tools and agents. They are stored as
columns (`trace_outcomes`); the errors and an abnormal end are also shown to the facet model in a short
header (see `header`), the scores never are.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from topics_assets.preprocess.walk import DROPPED_SPAN_TYPES
from topics_assets.traces import Message, Span, Trace

MAX_HEADER_ERRORS = 5  # distinct errors listed in the header; the rest are counted
MAX_ERROR_CHARS = 160
# How a run may end without anything having gone wrong; any other termination reason is abnormal.
NORMAL_ENDS = frozenset({"user_stop", "agent_stop", "stop", "end_turn", "completed", "complete", "done",
                         "finished", "success", "ok", "tool_calls", "stop_sequence"})
_TERMINATION_KEYS = ("termination_reason", "gen_ai.termination_reason", "stop_reason", "end_reason")
_MODEL_KEYS = ("model", "gen_ai.response.model", "gen_ai.request.model", "llm.model_name", "model_name")
_AGENT_KEYS = ("agent_name", "gen_ai.agent.name", "agent.name", "agent")
_INPUT_KEYS = ("input_tokens", "prompt_tokens", "prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
               "llm.token_count.prompt")
_OUTPUT_KEYS = ("output_tokens", "completion_tokens", "completion", "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens", "llm.token_count.completion")
_COST_KEYS = ("cost_usd", "cost", "gen_ai.usage.cost", "llm.cost.total")
_FEEDBACK_KEYS = ("user_feedback", "feedback", "thumbs", "rating")

# A tool result that is an error: starts like one, or is an object with an "error" field.
_ERROR_START = re.compile(r"\s*(?:error|exception|traceback|fatal|failed|failure)\b", re.I)
_TIMEOUT = re.compile(r"\btim(?:ed|e)[ _-]?out\b|\btimeout|deadline exceeded|did not respond in", re.I)
_EXIT = re.compile(r"\b(?:exit[ _]?code|exit status|return[ _]?code|exited with(?: code)?)\W{0,3}(-?\d+)", re.I)
_HTTP = re.compile(r"\b(?:HTTP(?:/\d(?:\.\d)?)?|status(?:[ _]?code)?)\W{0,3}([1-5]\d\d)\b", re.I)
_EXCEPTION = re.compile(r"\bTraceback \(most recent call last\)|\b[A-Z]\w*(?:Error|Exception)\b")
_HTTP_KEYS = ("status_code", "statusCode", "http_status", "http.status_code", "http.response.status_code", "status")


@dataclass(frozen=True)
class ErrorSignal:
    source: str  # tool | llm | agent | step
    name: str  # the tool, model call, agent or span that failed
    kind: str  # timeout | http_error | exit_code | exception | error
    message: str
    agent: str | None = None  # the agent it happened under, in multi-agent traces
    count: int = 1


@dataclass
class Outcome:
    status: str = "ok"  # error when any error signal or an abnormal end
    errors: list[ErrorSignal] = field(default_factory=list)
    termination_reason: str | None = None
    abnormal_end: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    llm_calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str | None = None  # trace (usage fields) | price_map (litellm's, offline)
    models: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    failed_tools: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)

    @property
    def error_kinds(self) -> list[str]:
        return sorted({e.kind for e in self.errors})

    def row(self) -> dict[str, Any]:
        """The trace_outcomes columns (lists as lists, errors and scores as JSON)."""
        return {
            "status": self.status, "n_errors": sum(e.count for e in self.errors),
            "error_kinds": self.error_kinds, "errors": json.dumps([asdict(e) for e in self.errors]),
            "failed_tools": self.failed_tools, "termination_reason": self.termination_reason,
            "abnormal_end": self.abnormal_end, "scores": json.dumps(self.scores), "duration_s": self.duration_s,
            "llm_calls": self.llm_calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd, "cost_source": self.cost_source, "models": self.models,
            "tools": self.tools, "agents": self.agents,
        }


# ---------------------------------------------------------------------------
# Classifying one error text


def error_kind(text: str) -> str:
    """timeout, http_error, exit_code or exception for what the text says; else error."""
    if _TIMEOUT.search(text):
        return "timeout"
    if any(int(m.group(1)) >= 400 for m in _HTTP.finditer(text)):
        return "http_error"
    if any(int(m.group(1)) != 0 for m in _EXIT.finditer(text)):
        return "exit_code"
    if _EXCEPTION.search(text):
        return "exception"
    return "error"


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3].rstrip() + "..."


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tool_result_error(value: Any) -> str | None:
    """The error a successful-looking tool result reports: error text, an "error" field, a non-zero
    exit code, an HTTP status >= 400; None when it reports none."""
    value = _parsed(value)
    if isinstance(value, dict):
        err = value.get("error") or value.get("exception")
        if err:
            return err if isinstance(err, str) else json.dumps(err, default=str)
        for k in _HTTP_KEYS:
            v = value.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599:
                detail = value.get("message") or value.get("detail") or value.get("reason") or ""
                return f"HTTP {v}" + (f": {detail}" if isinstance(detail, str) and detail else "")
        for k in ("exit_code", "exitcode", "returncode", "return_code"):
            v = value.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v != 0:
                out = value.get("stderr") or value.get("output") or ""
                return f"exit code {v}" + (f": {out}" if isinstance(out, str) and out else "")
        return None
    if not isinstance(value, str):
        return None
    if _ERROR_START.match(value):
        return value
    head = value[:2000]
    if any(int(m.group(1)) != 0 for m in _EXIT.finditer(head)):
        return value
    if re.match(r"\s*HTTP(?:/\d(?:\.\d)?)?\s+[45]\d\d\b", head):
        return value
    return None


# ---------------------------------------------------------------------------
# The whole trace


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _first(meta: dict, keys: tuple[str, ...]) -> Any:
    return next((meta[k] for k in keys if meta.get(k) not in (None, "", [])), None)


def _tokens(meta: dict, keys: tuple[str, ...]) -> int | None:
    for where in (meta, meta.get("usage"), meta.get("tokens"), meta.get("token_usage")):
        if isinstance(where, dict):
            v = _number(_first(where, keys))
            if v is not None:
                return int(v)
    return None


def _score_values(span: Span) -> dict[str, float]:
    name = span.name or span.id
    out = _parsed(span.output)
    v = _number(out)
    if v is not None:
        return {name: v}
    if isinstance(out, dict):
        for k in ("score", "value", "reward"):
            if _number(out.get(k)) is not None:
                return {name: float(out[k])}
        return {f"{name}.{k}": float(x) for k, x in out.items() if _number(x) is not None}
    return {}


def _add_unique(items: list[str], value: Any) -> None:
    if isinstance(value, str) and value and value not in items:
        items.append(value)


def _messages(value: Any) -> list[Message]:
    if isinstance(value, Message):
        return [value]
    if isinstance(value, list):
        return [m for m in value if isinstance(m, Message)]
    return []


def _agent_name(span: Span) -> str | None:
    meta = span.metadata if isinstance(span.metadata, dict) else {}
    name = _first(meta, _AGENT_KEYS)
    if isinstance(name, str) and name:
        return name
    if span.type == "task" and (span.name or "").startswith("invoke_agent "):
        return span.name[len("invoke_agent "):].strip() or None
    return None


def extract(trace: Trace) -> Outcome:
    """Every outcome signal of a trace. Pure: the same trace always gives the same outcome."""
    o = Outcome()
    agents_of, dropped = _lineage(trace.spans)
    tool_span_calls: set[str] = set()  # call ids whose tool span gives the verdict
    span_errors: dict[tuple, int] = {}  # (source, name, message, agent) -> failed spans
    message_errors: dict[tuple, int] = {}  # the same and the call id, from tool results in LLM histories
    call_names: dict[str, str] = {}
    judged: dict[str, str | None] = {}
    starts, ends = [], []
    input_tokens = output_tokens = 0
    have_in = have_out = False
    cost = 0.0
    priced: list[tuple[str | None, int, int]] = []  # (model, in, out) of calls without a cost field
    trace_cost = True

    def add_error(source: str, name: str, message: str, agent: str | None) -> None:
        key = (source, name, _one_line(message), agent)
        span_errors[key] = span_errors.get(key, 0) + 1

    for s in trace.spans:
        meta = s.metadata if isinstance(s.metadata, dict) else {}
        if s.start_time is not None:
            starts.append(s.start_time)
        if s.end_time is not None:
            ends.append(s.end_time)
        if s.type in DROPPED_SPAN_TYPES:
            o.scores.update(_score_values(s))
            continue
        if s.id in dropped:  # a scorer's own LLM calls are not the agent's
            continue
        for k in _FEEDBACK_KEYS:
            if _number(meta.get(k)) is not None:
                o.scores[k] = float(meta[k])
        reason = _first(meta, _TERMINATION_KEYS)
        if isinstance(reason, str) and reason:
            o.termination_reason = reason
        _add_unique(o.agents, _agent_name(s))
        agent = agents_of.get(s.id)
        if s.type == "llm":
            o.llm_calls += int(_number(meta.get("llm_calls")) or 1)
            model = _first(meta, _MODEL_KEYS)
            _add_unique(o.models, model)
            tin, tout = _tokens(meta, _INPUT_KEYS), _tokens(meta, _OUTPUT_KEYS)
            have_in, have_out = have_in or tin is not None, have_out or tout is not None
            input_tokens += tin or 0
            output_tokens += tout or 0
            c = _number(_first(meta, _COST_KEYS))
            if c is not None:
                cost += c
            elif tin is not None or tout is not None:
                trace_cost = False
                priced.append((model if isinstance(model, str) else None, tin or 0, tout or 0))
            msgs = _messages(s.input) + _messages(s.output)
            here: dict[tuple, int] = {}
            for m in msgs:
                if m.role == "assistant":
                    _add_unique(o.agents, m.name)
                for tc in m.tool_calls:
                    _add_unique(o.tools, tc.get("name"))
                    if tc.get("id"):
                        call_names[str(tc["id"])] = tc.get("name") or "unknown"
                if m.role == "tool":
                    # Agent loops re-send the history with every call: judge each result text once.
                    content = m.content or ""
                    err = judged.get(content, False)
                    if err is False:
                        err = judged[content] = tool_result_error(content)
                    if err:
                        name = m.name or call_names.get(m.tool_call_id or "") or "unknown"
                        key = ("tool", name, _one_line(err), agent, m.tool_call_id)
                        here[key] = here.get(key, 0) + 1
            # Each call re-sends the history: a result seen k times in one call happened k times.
            for key, n in here.items():
                message_errors[key] = max(message_errors.get(key, 0), n)
            if s.error:
                add_error("llm", s.name or (model if isinstance(model, str) else "llm call"), s.error, agent)
        elif s.type == "tool":
            if meta.get("tool_call_id") is not None:
                tool_span_calls.add(str(meta["tool_call_id"]))
            name = s.name or "unknown"
            _add_unique(o.tools, name)
            err = s.error or tool_result_error(s.output)
            if err:
                add_error("tool", name, err, agent)
        elif s.error:
            source = "agent" if _agent_name(s) else "step"
            add_error(source, _agent_name(s) or s.name or s.type, s.error, agent)

    # A failed call shown both as a tool span and as its result message counts once: the span's
    # error and the message's {"error": ...} carry the same text.
    # A result message whose call has its own tool span is that span's (matched by call id, as the walk does).
    from_messages: dict[tuple, int] = {}
    for (*key, call_id), n in message_errors.items():
        if call_id is None or str(call_id) not in tool_span_calls:
            from_messages[tuple(key)] = from_messages.get(tuple(key), 0) + n
    counts = dict(span_errors)
    for key, n in from_messages.items():
        counts[key] = max(counts.get(key, 0), n)
    o.errors = [ErrorSignal(src, name, error_kind(msg), msg, agent, n) for (src, name, msg, agent), n in counts.items()]
    o.failed_tools = sorted({e.name for e in o.errors if e.source == "tool"})
    o.abnormal_end = o.termination_reason is not None and o.termination_reason.lower() not in NORMAL_ENDS
    o.status = "error" if o.errors or o.abnormal_end else "ok"
    if starts and ends:
        o.duration_s = round(max(ends) - min(starts), 3)
    o.input_tokens = input_tokens if have_in else None
    o.output_tokens = output_tokens if have_out else None
    if priced:
        prices = [price_of(m, i, t) for m, i, t in priced]
        if all(p is not None for p in prices):
            cost += sum(prices)
            o.cost_usd, o.cost_source = round(cost, 8), "price_map" if not trace_cost else "trace"
    elif cost:
        o.cost_usd, o.cost_source = round(cost, 8), "trace"
    return o


def _lineage(spans: list[Span]) -> tuple[dict[str, str | None], set[str]]:
    """Each span's agent (its own or its nearest ancestor's name) and the spans under a scorer.

    One pass per span at most, however deep the tree (a 10,000-span chain is common in agent loops);
    parent-id cycles end the climb.
    """
    by_id = {s.id: s for s in spans}
    agent: dict[str, str | None] = {}
    scored: dict[str, bool] = {}
    for s in spans:
        chain: list[Span] = []
        seen: set[str] = set()
        cur: Span | None = s
        while cur is not None and cur.id not in agent and cur.id not in seen:
            seen.add(cur.id)
            chain.append(cur)
            cur = by_id.get(cur.parent_id) if cur.parent_id else None
        up_agent = agent.get(cur.id) if cur is not None else None
        up_scored = scored.get(cur.id, False) if cur is not None else False
        for c in reversed(chain):
            up_agent = _agent_name(c) or up_agent
            agent[c.id] = up_agent
            scored[c.id] = up_scored  # under a scorer, not counting itself
            up_scored = up_scored or c.type in DROPPED_SPAN_TYPES
    return agent, {k for k, v in scored.items() if v}


# ---------------------------------------------------------------------------
# Cost from litellm's price map, read offline


def _litellm_price_file() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"


@lru_cache(maxsize=1)
def _price_map() -> dict[str, dict]:
    # litellm's own bundled map (what LITELLM_LOCAL_MODEL_COST_MAP makes it use), read as JSON: importing
    # litellm takes ~10 s, longer than preprocessing a thousand traces.
    path = _litellm_price_file()
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def price_of(model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """USD for one model's tokens by litellm's price map; None when the model is not priced."""
    if not model:
        return None
    prices = _price_map()
    entry = prices.get(model) or prices.get(model.split("/", 1)[-1])
    if not isinstance(entry, dict):
        return None
    cin, cout = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if cin is None or cout is None:
        return None
    return input_tokens * float(cin) + output_tokens * float(cout)


# ---------------------------------------------------------------------------
# What the facet model sees

HEADER_LABEL = "outcome"
_HEADER_ERROR = re.compile(
    r"^- (?P<source>tool|llm|agent|step) (?P<name>.+?) failed \((?P<kind>[a-z_]+)\)"
    r"(?: under agent (?P<agent>.+?))?(?: x(?P<count>\d+))?: (?P<message>.*)$", re.M)


def header(o: Outcome) -> str | None:
    """The body of the "[outcome]" block: errors and an abnormal end, never scores; None when neither.

    One error per line, so the extractive engine can read it back (`parse_header`) and an LLM reads it
    as plain text.
    """
    if not o.errors and not o.abnormal_end:
        return None
    lines = []
    if o.abnormal_end:
        lines.append(f"The run ended abnormally: {o.termination_reason}.")
    if o.errors:
        total = sum(e.count for e in o.errors)
        lines.append(f"Errors ({total}):")
        for e in o.errors[:MAX_HEADER_ERRORS]:
            under = f" under agent {e.agent}" if e.agent and e.source != "agent" else ""
            times = f" x{e.count}" if e.count > 1 else ""
            lines.append(f"- {e.source} {e.name} failed ({e.kind}){under}{times}: {e.message}")
        rest = len(o.errors) - MAX_HEADER_ERRORS
        if rest > 0:
            lines.append(f"... and {rest} more distinct errors.")
    return "\n".join(lines)


@dataclass(frozen=True)
class HeaderSignals:
    termination_reason: str | None
    errors: list[ErrorSignal]


def parse_header(body: str) -> HeaderSignals:
    """The signals an "[outcome]" block states (what an engine that sees only text can know)."""
    m = re.search(r"The run ended abnormally: (.+?)\.$", body, re.M)
    errors = [ErrorSignal(g["source"], g["name"], g["kind"], g["message"], g["agent"], int(g["count"] or 1))
              for g in (x.groupdict() for x in _HEADER_ERROR.finditer(body))]
    return HeaderSignals(m.group(1) if m else None, errors)
