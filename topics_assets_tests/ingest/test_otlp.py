"""OpenTelemetry traces as a real client writes them.

Spans are created with the real opentelemetry-sdk and written by the official
OTLP JSON file exporter (opentelemetry-exporter-otlp-json-file: one
ExportTraceServiceRequest per line, hex ids), exactly what an app configured
with that exporter leaves on disk. OpenInference attributes come from the
openinference-instrumentation helpers that its instrumentors use.
"""

import base64
import copy
import functools
import json
import re
import tempfile
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topics_assets.config import PreprocessSettings
from topics_assets.ingest import RecordError, parse_record, read_file
from topics_assets.preprocess import preprocess
from topics_assets.traces import Quarantined, Trace

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is a dev dependency")
from openinference.instrumentation import (  # noqa: E402
    get_input_attributes,
    get_llm_attributes,
    get_output_attributes,
    get_span_kind_attributes,
    get_tool_attributes,
)
from opentelemetry.exporter.otlp.json.file import FileSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: E402
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
J = json.dumps


def tracer_to(path: Path, batch: bool = False, **resource):
    """A tracer whose spans land in `path` as OTLP JSON lines (Simple: one line per ended span)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", **resource}))
    exporter = FileSpanExporter(str(path))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("topics-tests")


def split(items):
    return [i for i in items if isinstance(i, Trace)], [i for i in items if isinstance(i, Quarantined)]


def text_parts(text):
    return [{"type": "text", "content": text}]


def genai_agent(tracer, question="What's the weather in Paris? Mail me at jane@example.com", fail_tool=False):
    """An agent run instrumented per the current GenAI semantic conventions (gen_ai.input/output.messages)."""
    system = J([{"type": "text", "content": "You are a weather assistant."}])
    user = {"role": "user", "parts": text_parts(question)}
    call = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    with tracer.start_as_current_span("invoke_agent Weather", attributes={GA.GEN_AI_OPERATION_NAME: "invoke_agent"}):
        with tracer.start_as_current_span("chat gpt-4o") as s:
            s.set_attributes({
                GA.GEN_AI_OPERATION_NAME: "chat", GA.GEN_AI_REQUEST_MODEL: "gpt-4o",
                GA.GEN_AI_USAGE_INPUT_TOKENS: 120, GA.GEN_AI_SYSTEM_INSTRUCTIONS: system,
                GA.GEN_AI_INPUT_MESSAGES: J([user]),
                GA.GEN_AI_OUTPUT_MESSAGES: J([{"role": "assistant", "parts": [
                    {"type": "reasoning", "content": "PRIVATE CHAIN OF THOUGHT"}, call], "finish_reason": "tool_call"}]),
            })
        with tracer.start_as_current_span("execute_tool get_weather") as s:
            s.set_attributes({
                GA.GEN_AI_OPERATION_NAME: "execute_tool", GA.GEN_AI_TOOL_NAME: "get_weather",
                GA.GEN_AI_TOOL_CALL_ID: "call_1", GA.GEN_AI_TOOL_CALL_ARGUMENTS: J({"city": "Paris"}),
            })
            if fail_tool:
                s.record_exception(TimeoutError("weather API timed out"))
                s.set_status(Status(StatusCode.ERROR, "timeout"))
            else:
                s.set_attribute(GA.GEN_AI_TOOL_CALL_RESULT, J({"temp_c": 21, "sky": "clear"}))
        result = {"type": "tool_call_response", "id": "call_1",
                  "response": "Error: timed out" if fail_tool else J({"temp_c": 21, "sky": "clear"})}
        history = [user, {"role": "assistant", "parts": [call]}, {"role": "tool", "parts": [result]}]
        with tracer.start_as_current_span("chat gpt-4o") as s:
            s.set_attributes({
                GA.GEN_AI_OPERATION_NAME: "chat", GA.GEN_AI_SYSTEM_INSTRUCTIONS: system,
                GA.GEN_AI_INPUT_MESSAGES: J(history),
                GA.GEN_AI_OUTPUT_MESSAGES: J([{"role": "assistant", "parts": text_parts(
                    "Sorry, the weather service is down." if fail_tool else "It is 21°C and clear in Paris."),
                    "finish_reason": "stop"}]),
            })


def test_genai_semconv_spans_exported_by_the_sdk(tmp_path):
    path = tmp_path / "otel.jsonl"
    provider, tracer = tracer_to(path)
    genai_agent(tracer)
    provider.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all("resourceSpans" in json.loads(x) for x in lines)  # one line per ended span

    (t,) = list(read_file(path, now=NOW))
    root_line = json.loads(lines[-1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert t.trace_id == root_line["traceId"] and len(t.trace_id) == 32
    assert (t.project, t.format) == ("support-bot", "otel")  # service.name
    assert t.started_at == datetime.fromtimestamp(int(root_line["startTimeUnixNano"]) / 1e9, tz=timezone.utc)
    by_name = {}
    for s in t.spans:
        by_name.setdefault(s.name, []).append(s)
    (agent,) = by_name["invoke_agent Weather"]
    chat1, chat2 = sorted(by_name["chat gpt-4o"], key=lambda s: s.start_time)
    (tool,) = by_name["get_weather"]
    assert (agent.type, chat1.type, tool.type) == ("task", "llm", "tool")
    assert agent.parent_id is None and {chat1.parent_id, chat2.parent_id, tool.parent_id} == {agent.id}
    assert [m.role for m in chat1.input] == ["system", "user"]
    assert chat1.output[0].tool_calls == [{"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}]
    assert chat1.output[0].content == ""  # reasoning parts are not conversation
    assert [m.role for m in chat2.input] == ["system", "user", "assistant", "tool"]
    assert chat2.input[3].tool_call_id == "call_1"
    assert tool.metadata["tool_call_id"] == "call_1" and tool.output == {"temp_c": 21, "sky": "clear"}
    assert chat1.metadata["gen_ai.request.model"] == "gpt-4o" and chat1.metadata["gen_ai.usage.input_tokens"] == 120
    assert not any(k.startswith("gen_ai.input") for s in t.spans for k in s.metadata)

    out = preprocess(t, PreprocessSettings())
    assert out.text == (
        "[system] You are a weather assistant.\n\n"
        "[user] What's the weather in Paris? Mail me at [EMAIL]\n\n"
        '[assistant -> get_weather] {"city":"Paris"}\n\n'
        '[tool get_weather] {"temp_c":21,"sky":"clear"}\n\n'  # shown once: span and re-sent message matched by id
        "[assistant] It is 21°C and clear in Paris."
    )
    assert out.redactions == {"EMAIL": 1}


def test_a_failed_tool_span_shows_its_exception(tmp_path):
    path = tmp_path / "otel.jsonl"
    provider, tracer = tracer_to(path)
    genai_agent(tracer, fail_tool=True)
    provider.shutdown()
    (t,) = list(read_file(path, now=NOW))
    (tool,) = [s for s in t.spans if s.type == "tool"]
    assert tool.error == "TimeoutError: weather API timed out"
    text = preprocess(t, PreprocessSettings()).text
    assert "[tool get_weather ERROR] TimeoutError: weather API timed out" in text
    assert "Error: timed out" not in text  # the re-sent message is the same result, shown once


def test_legacy_flattened_gen_ai_prompt_and_completion(tmp_path):
    """OpenLLMetry-style gen_ai.prompt.N.* / gen_ai.completion.N.* attributes."""
    path = tmp_path / "legacy.jsonl"
    provider, tracer = tracer_to(path)
    with tracer.start_as_current_span("agent.workflow", attributes={"traceloop.span.kind": "workflow"}):
        with tracer.start_as_current_span("openai.chat") as s:
            s.set_attributes({
                "llm.request.type": "chat", "gen_ai.system": "openai",
                "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
                "gen_ai.prompt.1.role": "user",
                # list content is logged as JSON text; the image is replaced by a placeholder
                "gen_ai.prompt.1.content": J([
                    {"type": "text", "text": "Refund order 77?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "iVBORw0KGgo" * 300}},
                ]),
                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "c1", "gen_ai.completion.0.tool_calls.0.name": "refund",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"order": 77}',
            })
        with tracer.start_as_current_span("openai.chat") as s:
            s.set_attributes({
                "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
                "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Refund order 77?",
                "gen_ai.prompt.2.role": "tool", "gen_ai.prompt.2.tool_call_id": "c1",
                "gen_ai.prompt.2.content": "refunded",
                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Done: refunded.",
            })
    provider.shutdown()
    (t,) = list(read_file(path, now=NOW))
    llm = [s for s in t.spans if s.type == "llm"]
    assert len(llm) == 2 and [s for s in t.spans if s.type == "task"]
    first = llm[0] if llm[0].start_time < llm[1].start_time else llm[1]
    assert first.input[1].content.startswith("Refund order 77?\n[image attachment removed: image/png")
    assert first.output[0].tool_calls == [{"id": "c1", "name": "refund", "arguments": '{"order": 77}'}]
    text = preprocess(t, PreprocessSettings()).text
    assert text.count("Refund order 77?") == 2  # a different message (it lost its image): kept
    assert "[assistant -> refund]" in text and "[tool refund] refunded" in text
    assert text.endswith("[assistant] Done: refunded.")
    assert "iVBORw0KGgo" not in t.to_json()


def test_openinference_spans(tmp_path):
    path = tmp_path / "oi.jsonl"
    provider, tracer = tracer_to(path, batch=True, **{"openinference.project.name": "travel-agent"})
    with tracer.start_as_current_span("Agent") as root:
        root.set_attributes({**get_span_kind_attributes("agent"), **get_input_attributes("Book me a seat to Oslo"),
                             **get_output_attributes("Booked seat 12A.")})
        with tracer.start_as_current_span("ChatOpenAI") as s:
            s.set_attributes({**get_span_kind_attributes("llm"), **get_llm_attributes(
                model_name="gpt-4o-mini",
                input_messages=[{"role": "system", "content": "You book flights."},
                                {"role": "user", "content": "Book me a seat to Oslo"}],
                output_messages=[{"role": "assistant", "tool_calls": [
                    {"id": "t1", "function": {"name": "book_seat", "arguments": '{"to": "OSL"}'}}]}],
                token_count={"prompt": 50, "completion": 10, "total": 60},
            )})
        with tracer.start_as_current_span("book_seat") as s:
            s.set_attributes({**get_span_kind_attributes("tool"),
                              **get_tool_attributes(name="book_seat", parameters={"to": "string"}),
                              **get_input_attributes({"to": "OSL"}), **get_output_attributes("seat 12A")})
        with tracer.start_as_current_span("ChatOpenAI") as s:
            s.set_attributes({**get_span_kind_attributes("llm"), **get_llm_attributes(
                input_messages=[{"role": "system", "content": "You book flights."},
                                {"role": "user", "content": "Book me a seat to Oslo"},
                                {"role": "assistant", "tool_calls": [
                                    {"id": "t1", "function": {"name": "book_seat", "arguments": '{"to": "OSL"}'}}]},
                                {"role": "tool", "tool_call_id": "t1", "content": "seat 12A"}],
                output_messages=[{"role": "assistant", "content": "Booked seat 12A."}],
            )})
        with tracer.start_as_current_span("judge") as s:
            s.set_attributes({**get_span_kind_attributes("evaluator"), **get_input_attributes("JUDGE PROMPT"),
                              **get_output_attributes("score 5")})
    provider.shutdown()
    assert len(path.read_text().splitlines()) == 1  # the batch processor wrote all spans in one record
    (t,) = list(read_file(path, now=NOW))
    assert (t.project, t.format) == ("travel-agent", "openinference")
    types = sorted(s.type for s in t.spans)
    assert types == ["llm", "llm", "score", "task", "tool"]
    out = preprocess(t, PreprocessSettings())
    assert out.text == (
        "[system] You book flights.\n\n[user] Book me a seat to Oslo\n\n"
        '[assistant -> book_seat] {"to": "OSL"}\n\n[tool book_seat] seat 12A\n\n[assistant] Booked seat 12A.'
    )
    # The CLI's --project still wins over the resource's project.
    assert {x.project for x in read_file(path, project="cli", now=NOW)} == {"cli"}


def test_traces_interleaved_across_lines_are_grouped_and_emitted_when_complete(tmp_path):
    """Two agents running at once: each span is its own line, traces interleave."""
    path = tmp_path / "two.jsonl"
    provider, tracer = tracer_to(path)
    a = tracer.start_span("invoke_agent A", attributes={GA.GEN_AI_OPERATION_NAME: "invoke_agent"})
    b = tracer.start_span("invoke_agent B", attributes={GA.GEN_AI_OPERATION_NAME: "invoke_agent"})
    from opentelemetry import trace as api

    for root, word in ((a, "alpha"), (b, "beta"), (a, "gamma"), (b, "delta")):
        with tracer.start_as_current_span("chat", context=api.set_span_in_context(root)) as s:
            s.set_attributes({GA.GEN_AI_OPERATION_NAME: "chat",
                              GA.GEN_AI_INPUT_MESSAGES: J([{"role": "user", "parts": text_parts(word)}])})
    a.end()
    b.end()
    provider.shutdown()
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert not quarantined and len(traces) == 2
    ta, tb = traces  # A's root ends first (line 5), so A is emitted first
    assert ta.trace_id == format(a.get_span_context().trace_id, "032x")
    assert preprocess(ta, PreprocessSettings()).text == "[user] alpha\n\n[user] gamma"
    assert preprocess(tb, PreprocessSettings()).text == "[user] beta\n\n[user] delta"


def test_many_traces_are_streamed_not_held(tmp_path):
    """Thousands of traces, each over two lines: memory stays at a few traces, not the file."""
    path = tmp_path / "many.jsonl"
    provider, tracer = tracer_to(path)
    for i in range(300):
        with tracer.start_as_current_span("agent"):
            with tracer.start_as_current_span("chat") as s:
                s.set_attributes({GA.GEN_AI_OPERATION_NAME: "chat", GA.GEN_AI_INPUT_MESSAGES: J(
                    [{"role": "user", "parts": text_parts(f"question {i} " + "padding " * 200)}])})
    provider.shutdown()
    lines = path.read_bytes().splitlines()
    with path.open("wb") as f:  # 3,000 traces from the 300: fresh ids, same shape
        for k in range(10):
            for line in lines:
                f.write(re.sub(rb'"traceId":"[0-9a-f]', b'"traceId":"%x' % k, line) + b"\n")
    size = path.stat().st_size
    tracemalloc.start()
    n = 0
    for item in read_file(path, now=NOW):
        assert isinstance(item, Trace), item
        n += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 3000 and size > 5_000_000
    assert peak < size / 5, f"peak {peak:,} bytes for a {size:,}-byte file: traces were held, not streamed"


def test_base64_ids_from_protobuf_json_mapping_are_accepted(tmp_path):
    """Protobuf's generic JSON mapping (and Tempo's API) write ids in base64, not hex."""
    path = tmp_path / "hex.jsonl"
    provider, tracer = tracer_to(path)
    genai_agent(tracer)
    provider.shutdown()
    b64 = tmp_path / "b64.jsonl"
    with b64.open("w") as f:
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        for k in ("traceId", "spanId", "parentSpanId"):
                            if s.get(k):
                                s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
            f.write(json.dumps({"batches": doc["resourceSpans"]}) + "\n")  # Tempo's top-level key
    (hex_trace,) = list(read_file(path, now=NOW))
    (b64_trace,) = list(read_file(b64, now=NOW))
    assert b64_trace.trace_id == hex_trace.trace_id
    assert {s.id for s in b64_trace.spans} == {s.id for s in hex_trace.spans}
    assert preprocess(b64_trace, PreprocessSettings()).text == preprocess(hex_trace, PreprocessSettings()).text


@functools.lru_cache(maxsize=1)
def _record_json() -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "one.jsonl"
        provider, tracer = tracer_to(path, batch=True)
        genai_agent(tracer)
        provider.shutdown()
        (line,) = path.read_text().splitlines()
    return line


def _record(tmp_path=None) -> dict:
    """One SDK export batch holding a whole GenAI agent trace (4 spans)."""
    return json.loads(_record_json())


def _spans(doc):
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"]


def test_bad_otlp_records_are_quarantined_with_reasons_and_the_rest_lands(tmp_path):
    good = _record(tmp_path)
    no_trace_id = copy.deepcopy(good)
    for s in _spans(no_trace_id):
        s["traceId"] = "f" * 32
    del _spans(no_trace_id)[0]["traceId"]  # this span cannot be placed: quarantined alone
    bad_span_id = copy.deepcopy(good)
    for s in _spans(bad_span_id):
        s["traceId"] = "e" * 32
    _spans(bad_span_id)[1]["spanId"] = "not-an-id"  # the whole trace is quarantined, naming the span
    no_content = copy.deepcopy(good)
    for s in _spans(no_content):
        s["traceId"] = "d" * 32
        s["attributes"] = [a for a in s.get("attributes", []) if not a["key"].startswith(("gen_ai.input",
                           "gen_ai.output", "gen_ai.system_instr", "gen_ai.tool.call"))]
    lines = [
        json.dumps(good),
        json.dumps({"resourceSpans": "oops"}),
        json.dumps(no_trace_id),
        json.dumps(bad_span_id),
        json.dumps(no_content),
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "c" * 32, "spanId": "1" * 16, "startTimeUnixNano": "yesterday"}]}]}]}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert [t.trace_id for t in traces] == [_spans(good)[0]["traceId"], "f" * 32]
    assert len(traces[1].spans) == 3  # the three placeable spans of the second copy
    reasons = {q.line: q.reason for q in quarantined}
    assert all(q.reason.startswith(f"line {q.line}: ") for q in quarantined)
    assert "'resourceSpans' must be a list, got str" in reasons[2]
    assert "spans[0]: missing or invalid traceId" in reasons[3]
    assert "spans[1]: missing or invalid spanId (got 'not-an-id')" in reasons[4]
    assert f"trace {'e' * 32} quarantined whole" in reasons[4]
    assert "no content to summarise" in reasons[5] and "CAPTURE_MESSAGE_CONTENT" in reasons[5]
    assert "startTimeUnixNano must be an integer count of nanoseconds" in reasons[6]
    by_trace = {q.trace_id: q for q in quarantined}
    assert {"e" * 32, "d" * 32, "c" * 32} <= set(by_trace)


def test_parent_cycles_and_an_otlp_record_through_parse_record(tmp_path):
    doc = _record(tmp_path)
    spans = _spans(doc)
    ids = [s["spanId"] for s in spans]
    for s, parent in zip(spans, ids[1:] + ids[:1]):  # every span's parent is the next: one big cycle
        s["parentSpanId"] = parent
    (t,) = parse_record(doc, "mem", 1, now=NOW)
    text = preprocess(t, PreprocessSettings()).text
    assert text.count("[user] What's the weather in Paris?") == 1 and "It is 21°C" in text
    spans[0]["spanId"] = ""
    with pytest.raises(RecordError, match=r"^line 1: resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]: missing"):
        parse_record(doc, "mem", 1, now=NOW)


def test_a_later_export_with_more_spans_replaces_the_trace_and_only_then_refacets(tmp_path, settings):
    """Traces keep updating after they are "done": the fuller version replaces the earlier one."""
    from topics_assets.facets.stage import facet_days
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.preprocess.stage import preprocess_days
    from topics_assets.store import DuckDBStore

    path = tmp_path / "live.jsonl"
    provider, tracer = tracer_to(path)
    genai_agent(tracer)
    first = tmp_path / "first.jsonl"
    first.write_text(path.read_text())
    # The user comes back in the same conversation (same trace): two more spans are exported.
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attributes({GA.GEN_AI_OPERATION_NAME: "chat", GA.GEN_AI_INPUT_MESSAGES: J(
            [{"role": "user", "parts": text_parts("And tomorrow? I am getting frustrated.")}])})
    provider.shutdown()
    lines = path.read_text().splitlines()
    trace_id = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    tail = json.loads(lines[-1])
    tail["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = trace_id
    tail["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["parentSpanId"] = ""
    second = tmp_path / "second.jsonl"
    second.write_text("\n".join(lines[:-1] + [json.dumps(tail)]) + "\n")

    store = DuckDBStore(settings.database_path)
    settings.partitions_start = "2020-01-01"
    s1 = ingest_paths(store=store, settings=settings, paths=[str(first)])
    day = s1.days
    assert (s1.loaded, s1.quarantined) == (1, 0)
    assert preprocess_days(store=store, settings=settings, days=day).preprocessed == 1
    assert facet_days(store=store, settings=settings, days=day).faceted == 1
    hash1 = store.query_df("SELECT content_hash FROM traces").content_hash[0]

    again = ingest_paths(store=store, settings=settings, paths=[str(first)])  # the same export again: nothing to do
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, 1)
    assert preprocess_days(store=store, settings=settings, days=day).unchanged == 1
    assert facet_days(store=store, settings=settings, days=day).faceted == 0

    s2 = ingest_paths(store=store, settings=settings, paths=[str(second)])
    assert (s2.loaded, s2.updated) == (0, 1)
    assert preprocess_days(store=store, settings=settings, days=day).preprocessed == 1
    row = store.query_df("SELECT content_hash, content, n_spans FROM traces").iloc[0]
    assert row.content_hash != hash1 and "And tomorrow?" in row.content and row.n_spans == 5
    f = facet_days(store=store, settings=settings, days=day).to_metadata()
    assert (f["faceted"], f["cache_hits"]) == (1, 0)
    assert store.query_df("SELECT version FROM raw_traces").version[0] == 2

    # A newer export that changes only metrics (token usage): a new version, but the same
    # text for the facet model, so no new facet call.
    third = tmp_path / "third.jsonl"
    third.write_text(second.read_text().replace('"intValue":"120"', '"intValue":"999"'))
    assert third.read_text() != second.read_text()
    assert ingest_paths(store=store, settings=settings, paths=[str(third)]).updated == 1
    assert preprocess_days(store=store, settings=settings, days=day).preprocessed == 1
    assert store.query_df("SELECT content_hash FROM traces").content_hash[0] == row.content_hash
    f = facet_days(store=store, settings=settings, days=day).to_metadata()
    assert (f["faceted"], f["cache_hits"]) == (0, 1)


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_spans_of_one_trace_split_over_two_files_are_merged(tmp_path, settings, order):
    """A file exporter rotated mid-trace: each file holds some of its spans; together they are the trace."""
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.preprocess.stage import preprocess_days
    from topics_assets.store import DuckDBStore

    settings.partitions_start = "2020-01-01"
    path = tmp_path / "otel.jsonl"
    provider, tracer = tracer_to(path, **{"topics.project": "weather"})
    genai_agent(tracer, fail_tool=True)
    provider.shutdown()
    lines = path.read_text().splitlines()
    first, second = tmp_path / "otel.1.jsonl", tmp_path / "otel.2.jsonl"
    first.write_text("\n".join(lines[:2]) + "\n")  # the first LLM call and the failed tool call
    second.write_text("\n".join(lines[2:]) + "\n")  # the final LLM call and the root span
    files = [first, second] if order == "in order" else [second, first]

    def content(store):
        return store.query_df("SELECT project, n_spans, content FROM traces").iloc[0]

    whole = DuckDBStore(str(tmp_path / "whole.duckdb"))
    day = ingest_paths(store=whole, settings=settings, paths=[str(path)]).days
    preprocess_days(store=whole, settings=settings, days=day)

    split_store = DuckDBStore(str(tmp_path / "split.duckdb"))
    s1 = ingest_paths(store=split_store, settings=settings, paths=[str(files[0])])
    s2 = ingest_paths(store=split_store, settings=settings, paths=[str(files[1])])
    assert (s1.loaded, s2.updated, s2.merged) == (1, 1, 1)
    assert split_store.query_df("SELECT count(*) n FROM raw_traces").n[0] == 1
    preprocess_days(store=split_store, settings=settings, days=day)
    merged, expected = content(split_store), content(whole)
    assert merged.n_spans == expected.n_spans == 4 and merged.project == "weather"
    assert merged.content == expected.content
    assert "weather API timed out" in merged.content and "the weather service is down" in merged.content

    again = ingest_paths(store=split_store, settings=settings, paths=[str(f) for f in files])  # both parts again, in one call
    assert (again.unchanged, again.updated) == (1, 0)


_mutations = st.sampled_from(["delete", "null", "string", "number", "list", "dict", "hexjunk", "deep"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_otlp_never_raises_and_every_problem_has_a_line(data):
    """Damage an SDK-written record anywhere: read_file still never raises, and says where."""
    doc = _record()
    for _ in range(data.draw(st.integers(1, 4))):
        node, key = doc, None
        path = []
        while True:  # walk down to a random place
            keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            if not keys or (path and data.draw(st.booleans())):
                break
            key = data.draw(st.sampled_from(keys))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        how = data.draw(_mutations)
        if how == "delete" and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = {"null": None, "string": "x", "number": 7, "list": [], "dict": {}, "delete": None,
                           "hexjunk": "zz" * 16, "deep": [[[[[[[[{"a": [[[[]]]]}]]]]]]]]}[how]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.jsonl"
        path.write_text(json.dumps(doc) + "\n" + json.dumps({"id": "after", "messages": []}) + "\n")
        items = list(read_file(path, now=NOW))
    assert any(isinstance(i, Trace) and i.trace_id == "after" for i in items)  # the next line always lands
    for i in items:
        if isinstance(i, Quarantined):
            assert i.line == 1 and i.reason.startswith("line 1: ")
        else:
            preprocess(i, PreprocessSettings())
            i.to_json()
