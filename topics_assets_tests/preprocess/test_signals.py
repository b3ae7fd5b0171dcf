"""Outcome signals: per format on real files, the header the facet model sees, and trace_outcomes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest

from topics_assets.config import PreprocessSettings
from topics_assets.demo.generator import generate_traces
from topics_assets.ingest.files import read_file
from topics_assets.ingest.records import Context
from topics_assets.ingest.spans import parse_spans
from topics_assets.preprocess import preprocess
from topics_assets.preprocess.signals import error_kind, extract, header, parse_header, price_of, tool_result_error
from topics_assets.traces import Message, Span, Trace
from topics_assets_tests.conftest import shared_data

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
CTX = Context("test.jsonl", None, "default", NOW)


def traces_of(*parts: str) -> list[Trace]:
    return [t for t in read_file(shared_data(*parts), now=NOW) if isinstance(t, Trace)]


def trace(spans: list[Span]) -> Trace:
    return Trace("t1", "p", NOW, spans)


# ----- error texts --------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind", [
    ("TimeoutError: carrier API did not respond in 20s", "timeout"),
    ("request timed out after 30 s", "timeout"),
    ("HTTP 502 Bad Gateway from gateway", "http_error"),
    ("status code 404", "http_error"),
    ("command failed, exitcode: 1", "exit_code"),
    ("ValueError: bad seat", "exception"),
    ("Error: payment method not found", "error"),
])
def test_error_kinds(text, kind):
    assert error_kind(text) == kind


@pytest.mark.parametrize("value,is_error", [
    ("Error: User not found", True),
    ('{"error": "no such order"}', True),
    ({"status_code": 503, "message": "unavailable"}, True),
    ({"exit_code": 2, "stderr": "No such file"}, True),
    ("ran tests\nexitcode: 1 (failed)", True),
    ("HTTP/1.1 404 Not Found", True),
    ({"status": "processing", "order_id": "W1"}, False),
    ({"status_code": 200}, False),
    ("exitcode: 0", False),
    ("The error rate dropped to 2%.", False),
])
def test_tool_result_errors(value, is_error):
    assert (tool_result_error(value) is not None) == is_error


# ----- per format, on real files ----------------------------------------------------------------

def test_tau_bench_signals():
    traces = traces_of("tau-bench", "gpt-4o-airline.json")
    raw = json.loads(shared_data("tau-bench", "gpt-4o-airline.json").read_text())
    for t, r in zip(traces, raw):
        o = extract(t)
        failed = [m for m in r["traj"] if m["role"] == "tool" and m["content"].startswith("Error")]
        assert sum(e.count for e in o.errors) == len(failed), t.trace_id
        assert (o.status == "error") == bool(failed)
        assert o.scores == {"reward": float(r["reward"])}
        assert o.llm_calls == sum(m["role"] == "assistant" for m in r["traj"])
        called = {tc["function"]["name"] for m in r["traj"] for tc in m.get("tool_calls") or []}
        assert set(o.tools) == called
        assert o.failed_tools == sorted({e.name for e in o.errors}) and set(o.failed_tools) <= called
        assert o.termination_reason is None and o.cost_usd is None


@pytest.mark.parametrize("domain", ["airline", "retail", "telecom"])
def test_tau2_signals(domain):
    path = ("tau2-bench", f"gpt-4.1_{domain}.json")
    raw = json.loads(shared_data(*path).read_text())
    for t, sim in zip(traces_of(*path), raw["simulations"]):
        o = extract(t)
        assert o.termination_reason == sim["termination_reason"] and o.abnormal_end is False  # all user_stop
        assert o.scores == {"reward": sim["reward_info"]["reward"]}
        assert o.cost_usd == pytest.approx(sim["agent_cost"]) and o.cost_source == "trace"
        span = datetime.fromisoformat(sim["end_time"]) - datetime.fromisoformat(sim["start_time"])
        assert o.models == ["gpt-4.1"] and o.duration_s == pytest.approx(span.total_seconds(), abs=0.001)
        agent = [m for m in sim["messages"] if m["role"] == "assistant"]
        assert o.llm_calls == len(agent)
        assert o.output_tokens == sum((m.get("usage") or {}).get("completion_tokens", 0) for m in agent)
        assert sum(e.count for e in o.errors) == sum(bool(m.get("error")) for m in sim["messages"])


def test_tau2_abnormal_end_is_an_error(tmp_path):
    doc = json.loads(shared_data("tau2-bench", "gpt-4.1_airline.json").read_text())
    doc["simulations"] = doc["simulations"][:1]
    doc["simulations"][0]["termination_reason"] = "max_steps"
    path = tmp_path / "gpt-4.1_airline.json"
    path.write_text(json.dumps(doc))
    (t,) = [x for x in read_file(path, now=NOW) if isinstance(x, Trace)]
    o = extract(t)
    assert o.abnormal_end and o.status == "error"
    text = preprocess(t, PreprocessSettings()).text
    assert text.startswith("[outcome] The run ended abnormally: max_steps.")


def test_synthetic_signals_match_the_generators_labels():
    recs = generate_traces(400, seed=3)
    by_outcome: Counter = Counter()
    for r in recs:
        o = extract(parse_spans(r, CTX))
        erring = [s for s in r["spans"] if s["type"] == "tool" and s["error"]]
        assert sum(e.count for e in o.errors) == len(erring), r["trace_id"]  # span and message counted once
        assert o.scores == {"helpfulness_scorer": r["spans"][-1]["output"]["score"]}
        assert o.models and o.cost_source == "price_map" and o.cost_usd > 0
        assert o.llm_calls == sum(s["type"] == "llm" for s in r["spans"])
        by_outcome[r["labels"]["outcome"], o.status] += 1
    assert by_outcome["tool_error", "ok"] == 0 and by_outcome["tool_error", "error"] > 0


def test_price_map_agrees_with_litellm():
    import litellm

    for model in ("gpt-4o-mini", "gpt-4.1", "openai/gpt-4o"):
        cin, cout = litellm.cost_per_token(model=model, prompt_tokens=1200, completion_tokens=300)
        assert price_of(model, 1200, 300) == pytest.approx(cin + cout)
    assert price_of("no-such-model-anywhere", 10, 10) is None


def test_otlp_status_usage_and_agents():
    """An OTel export: ERROR status with an exception event, GenAI usage, agents by invoke_agent spans."""
    def attrs(**kv):
        return [{"key": k.replace("__", "."), "value": {"intValue": v} if isinstance(v, int) else {"stringValue": v}}
                for k, v in kv.items()]

    tid = "0af7651916cd43dd8448eb211c80319c"
    spans = [
        {"traceId": tid, "spanId": "a" * 16, "name": "invoke_agent planner",
         "attributes": attrs(gen_ai__operation__name="invoke_agent", gen_ai__agent__name="planner"),
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000009000000000"},
        {"traceId": tid, "spanId": "b" * 16, "parentSpanId": "a" * 16, "name": "chat gpt-4o-mini",
         "attributes": attrs(gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o-mini",
                             gen_ai__usage__input_tokens=1000, gen_ai__usage__output_tokens=50,
                             gen_ai__input__messages=json.dumps([{"role": "user", "parts": [
                                 {"type": "text", "content": "Book me a table for two"}]}])),
         "startTimeUnixNano": "1700000001000000000", "endTimeUnixNano": "1700000002000000000"},
        {"traceId": tid, "spanId": "c" * 16, "parentSpanId": "a" * 16, "name": "execute_tool reserve",
         "attributes": attrs(gen_ai__operation__name="execute_tool", gen_ai__tool__name="reserve"),
         "status": {"code": 2, "message": "boom"},
         "events": [{"name": "exception", "attributes": attrs(exception__type="ConnectionError",
                                                               exception__message="pool exhausted")}],
         "startTimeUnixNano": "1700000003000000000", "endTimeUnixNano": "1700000004000000000"},
    ]
    from topics_assets.ingest.otlp import parse_span

    parsed = [parse_span(s, f"spans[{i}]").span for i, s in enumerate(spans)]
    o = extract(Trace(tid, "p", NOW, parsed, "otel"))
    (e,) = o.errors
    assert (e.source, e.name, e.kind, e.agent) == ("tool", "reserve", "exception", "planner")
    assert e.message == "ConnectionError: pool exhausted"
    assert o.agents == ["planner"] and o.models == ["gpt-4o-mini"] and o.tools == ["reserve"]
    assert (o.input_tokens, o.output_tokens, o.duration_s) == (1000, 50, 9.0)
    assert o.cost_usd == pytest.approx(price_of("gpt-4o-mini", 1000, 50))


def test_multi_agent_errors_name_their_agent():
    spans = [
        Span("root", "task", metadata={"agent_name": "orchestrator"}),
        Span("r", "task", parent_id="root", name="researcher", metadata={"agent_name": "researcher"}),
        Span("w", "tool", parent_id="r", name="web_search", output="HTTP/1.1 503 Service Unavailable"),
        Span("l", "llm", parent_id="root", input=[Message("user", "write the report")],
             output=[Message("assistant", "done", name="writer")]),
        Span("x", "task", parent_id="root", name="critic", metadata={"agent_name": "critic"}, error="critic crashed"),
    ]
    o = extract(trace(spans))
    assert o.agents == ["orchestrator", "researcher", "writer", "critic"]
    got = {(e.source, e.name, e.kind, e.agent) for e in o.errors}
    assert got == {("tool", "web_search", "http_error", "researcher"), ("agent", "critic", "error", "critic")}


# ----- the header -------------------------------------------------------------------------------

def _erring_trace() -> Trace:
    return trace([
        Span("root", "task", metadata={"termination_reason": "max_steps"}, start_time=0, end_time=5),
        Span("l1", "llm", parent_id="root", start_time=1,
             input=[Message("user", "Reset my password please, I am jane@example.com")],
             output=[Message("assistant", "", tool_calls=[{"id": "c1", "name": "reset", "arguments": "{}"}])]),
        Span("t1", "tool", parent_id="root", name="reset", start_time=2,
             error="TimeoutError: auth service did not answer jane@example.com within 30s"),
        Span("t2", "tool", parent_id="root", name="shell", start_time=3, output="make test\nexitcode: 1"),
        Span("s1", "score", parent_id="root", name="helpfulness", output={"score": 0.1234}),
    ])


def test_header_states_errors_and_the_end_redacted_and_never_scores():
    t = _erring_trace()
    p = preprocess(t, PreprocessSettings())
    head = p.text.split("\n\n", 1)[0]
    assert head.startswith("[outcome] The run ended abnormally: max_steps.\nErrors (2):")
    assert "- tool reset failed (timeout): TimeoutError: auth service did not answer [EMAIL] within 30s" in head
    assert "- tool shell failed (exit_code): make test exitcode: 1" in head
    assert "jane@example.com" not in p.text and p.redactions.get("EMAIL", 0) >= 2
    assert "0.1234" not in p.text and "helpfulness" not in p.text
    assert p.outcome.scores == {"helpfulness": 0.1234}
    parsed = parse_header(head[len("[outcome] "):])
    assert parsed.termination_reason == "max_steps"
    assert [(e.name, e.kind) for e in parsed.errors] == [("reset", "timeout"), ("shell", "exit_code")]


def test_no_header_without_signals_and_kept_under_the_cap():
    clean = trace([Span("l1", "llm", input=[Message("user", "hi")], output=[Message("assistant", "hello")])])
    assert header(extract(clean)) is None
    assert not preprocess(clean, PreprocessSettings()).text.startswith("[outcome]")
    t = _erring_trace()
    t.spans[1].input.append(Message("user", "word " * 5000))
    p = preprocess(t, PreprocessSettings(max_tokens=1000))
    assert p.truncated and p.text.startswith("[outcome] The run ended abnormally")


# ----- trace_outcomes in the store ------------------------------------------------------------

def test_preprocess_writes_trace_outcomes_joinable_with_trace_topics(backend_settings, tmp_path):
    from topics_assets.demo.generator import write_jsonl
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.preprocess.stage import preprocess_days
    from topics_assets.store import open_store

    settings = backend_settings
    recs = generate_traces(40, days=2, seed=5, end=NOW.date())
    write_jsonl(recs, tmp_path / "t.jsonl")
    store = open_store(settings.database_path)
    days = ingest_paths(store=store, settings=settings, paths=[str(tmp_path / "t.jsonl")]).days
    result = preprocess_days(store=store, settings=settings, days=days)
    rows = store.query_df("SELECT * FROM trace_outcomes ORDER BY trace_id")
    assert len(rows) == 40 and set(rows.project) == {"acme-support"}
    erring = {r["trace_id"] for r in recs if any(s["error"] for s in r["spans"])}
    assert set(rows.trace_id[rows.status == "error"]) == erring and result.with_errors == len(erring)
    row = rows[rows.status == "error"].iloc[0]
    assert row.n_errors >= 1 and list(row.failed_tools) and json.loads(row.errors)[0]["source"] == "tool"
    assert "helpfulness_scorer" in json.loads(row.scores) and row.llm_calls >= 2 and row.cost_usd > 0
    assert list(row.models)[0].startswith("gpt-4o")
    joined = store.query_df("""SELECT count(*) AS n FROM trace_outcomes o
                               LEFT JOIN trace_topics t ON t.project = o.project AND t.trace_id = o.trace_id""")
    assert joined.n[0] == 40
    # A trace that leaves (re-ingested on another day) takes its row along; a re-run changes nothing.
    preprocess_days(store=store, settings=settings, days=days)
    assert store.query_df("SELECT count(*) AS n FROM trace_outcomes").n[0] == 40
    store.replace_outcomes(days, [], keep=[("acme-support", recs[0]["trace_id"])])
    assert list(store.query_df("SELECT trace_id FROM trace_outcomes").trace_id) == [recs[0]["trace_id"]]
