"""The OTLP/HTTP endpoint against the real OpenTelemetry SDK exporter and hand-made OTLP/JSON, over a socket."""

import gzip
import json
import socket
import zlib

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_proto
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.ingest import read_file
from topics_assets.preprocess import preprocess
from topics_assets.serve.emit import emit_trace
from topics_assets.serve.spool import closed_segments
from topics_assets.serve.stage import ingest_spool
from topics_assets.store import open_store
from topics_assets.traces import Trace

from .conftest import health, post, running_server, tracer_to

PB, JS = "application/x-protobuf", "application/json"


def finished_spans(records):
    """The SDK's own spans for these records (to encode by hand)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for r in records:
        emit_trace(provider.get_tracer("t"), r)
    return memory.get_finished_spans()


def stored(settings) -> dict[str, Trace]:
    store = open_store(settings.database_path)
    keys = [tuple(k) for k in store.query_df("SELECT project, trace_id FROM raw_traces").itertuples(index=False)]
    return {tid: Trace.from_json(p) for (_, tid), p in store.raw_payloads(keys, ["otel", "openinference"]).items()}


def texts(traces, settings) -> list[str]:
    return sorted(preprocess(t, settings.preprocess).text for t in traces)


def file_texts(records, settings, tmp_path) -> list[str]:
    """What the same records give when ingested from a file: the reference."""
    write_jsonl(records, tmp_path / "reference.jsonl")
    return texts(read_file(tmp_path / "reference.jsonl"), settings)


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_sdk_exporter_spans_land_as_traces_with_their_messages(serve_settings, tmp_path, compression):
    records = generate_traces(n_traces=12, days=2, seed=5, project="shop")
    with running_server(serve_settings) as base:
        provider, tracer = tracer_to(base, compression, max_export_batch_size=16)
        for r in records:
            emit_trace(tracer, r)
        provider.shutdown()  # flushes: every span exported and acknowledged
        h = health(base)
    n_spans = sum(len(r["spans"]) for r in records)
    assert (h["accepted_spans"], h["rejected_spans"], h["refused_requests"]) == (n_spans, 0, 0)
    assert h["accepted_requests"] >= n_spans // 16

    result = ingest_spool(store=open_store(serve_settings.database_path), settings=serve_settings)
    assert (result.spans, result.traces_ready, result.ingest.loaded, result.ingest.quarantined) == (
        n_spans, 12, 12, 0)
    assert result.ingest.projects == ["shop"] and not closed_segments(tmp_path / "home" / "spool")
    traces = stored(serve_settings)
    assert sum(len(t.spans) for t in traces.values()) == n_spans
    # Every message, tool call and result arrives: the facet model sees exactly what the file gives it.
    assert texts(traces.values(), serve_settings) == file_texts(records, serve_settings, tmp_path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("ids", ["hex", "base64"])
def test_otlp_json_requests_hex_ids_per_spec_or_base64(serve_settings, tmp_path, compress, ids):
    """OTLP/JSON as the spec writes it (hex ids, the official JSON encoder) and protobuf's generic mapping."""
    records = generate_traces(n_traces=5, days=1, seed=9, project="shop")
    spans = finished_spans(records)
    if ids == "hex":
        body = encode_json(spans).to_json().encode()
        assert '"traceId":"' in body.decode().replace(" ", "") and len(json.loads(body)["resourceSpans"][0][
            "scopeSpans"][0]["spans"][0]["traceId"]) == 32
    else:
        body = json_format.MessageToJson(encode_proto(spans)).encode()
    headers = {"Content-Encoding": "gzip"} if compress else {}
    with running_server(serve_settings) as base:
        status, resp_headers, resp = post(f"{base}/v1/traces", gzip.compress(body) if compress else body, JS,
                                          headers)
    assert status == 200 and resp_headers["content-type"].startswith(JS)
    answer = json_format.Parse(resp, ExportTraceServiceResponse())
    assert not answer.HasField("partial_success")
    ingest_spool(store=open_store(serve_settings.database_path), settings=serve_settings)
    traces = stored(serve_settings)
    assert set(traces) == {format(s.context.trace_id, "032x") for s in spans}
    assert texts(traces.values(), serve_settings) == file_texts(records, serve_settings, tmp_path)


def test_partial_success_counts_rejected_spans_and_why(serve_settings):
    serve_settings.serve.max_spans_per_request = 3
    spans = finished_spans(generate_traces(n_traces=1, days=1, seed=3, project="shop"))
    doc = json.loads(encode_json(spans).to_json())
    listed = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(listed) >= 5
    listed[0]["traceId"] = "0" * 32  # all-zero ids are invalid
    listed[1]["spanId"] = "abcd"
    with running_server(serve_settings) as base:
        status, _, resp = post(f"{base}/v1/traces", json.dumps(doc).encode(), JS)
        answer = json_format.Parse(resp, ExportTraceServiceResponse())
        # the same in protobuf: 5+ spans, limit 3
        pb = encode_proto(spans).SerializeToString()
        status_pb, headers_pb, resp_pb = post(f"{base}/v1/traces", pb, PB)
        h = health(base)
    assert status == 200
    assert answer.partial_success.rejected_spans == len(listed) - 3
    message = answer.partial_success.error_message
    assert "invalid traceId" in message and "invalid spanId" in message
    assert f"{len(listed) - 5} span(s): over the limit of 3 spans per request" in message
    assert status_pb == 200 and headers_pb["content-type"] == PB
    answer_pb = ExportTraceServiceResponse.FromString(resp_pb)
    assert answer_pb.partial_success.rejected_spans == len(spans) - 3
    assert h["accepted_spans"] == 6 and h["rejected_spans"] == 2 * len(spans) - 6


def _status(body, content_type) -> status_pb2.Status:
    if content_type == PB:
        return status_pb2.Status.FromString(body)
    return json_format.Parse(body, status_pb2.Status())


@pytest.mark.parametrize("content_type,body,headers,why", [
    (PB, b"\x0a\x05\x0a\x03", {}, "not a protobuf ExportTraceServiceRequest"),
    (JS, b'{"resourceSpans": [', {}, "not valid JSON"),
    (JS, b'{"resourceSpans": 5}', {}, "not an OTLP/JSON ExportTraceServiceRequest"),
    (JS, b'[1, 2]', {}, "an OTLP/JSON request is an object"),
    (JS, b'\xff\xfe{}', {}, "not valid JSON"),
    (PB, b"definitely not gzip", {"Content-Encoding": "gzip"}, "not valid gzip"),
    (PB, gzip.compress(b"x" * 100, mtime=0)[:-12], {"Content-Encoding": "gzip"}, "truncated"),
])
def test_unparseable_bodies_are_400_with_a_status_in_the_request_encoding(serve_settings, content_type, body,
                                                                         headers, why):
    with running_server(serve_settings) as base:
        status, resp_headers, resp = post(f"{base}/v1/traces", body, content_type, headers)
        h = health(base)
    assert status == 400 and resp_headers["content-type"] == content_type
    assert why in _status(resp, content_type).message
    assert h["accepted_requests"] == 0 and h["spool_bytes"] == 0


def test_wrong_media_type_and_encoding_are_415(serve_settings):
    with running_server(serve_settings) as base:
        status, _, resp = post(f"{base}/v1/traces", b"{}", "text/plain")
        assert status == 415 and "Content-Type must be" in _status(resp, JS).message
        status, _, resp = post(f"{base}/v1/traces", b"", PB, {"Content-Encoding": "br"})
        assert status == 415 and "'br' is not supported" in _status(resp, PB).message
        # an empty request is a valid, empty export
        assert post(f"{base}/v1/traces", b"", PB)[0] == 200


def test_bodies_over_the_limit_are_413_also_after_decompression_and_when_chunked(serve_settings):
    serve_settings.serve.max_request_bytes = 10_000
    bomb = gzip.compress(b"\0" * 1_000_000)  # 1 MB of zeros in about 1 KB
    assert len(bomb) < 10_000
    with running_server(serve_settings) as base:
        status, _, resp = post(f"{base}/v1/traces", b"\0" * 10_001, PB)
        assert status == 413 and "over 10,000 bytes" in _status(resp, PB).message
        status, _, resp = post(f"{base}/v1/traces", bomb, PB, {"Content-Encoding": "gzip"})
        assert status == 413 and "decompresses to more than 10,000 bytes" in _status(resp, PB).message
        status, _, resp = post(f"{base}/v1/traces", zlib.compress(b"\0" * 1_000_000), PB,
                               {"Content-Encoding": "deflate"})
        assert status == 413
        # no Content-Length: counted while it is read
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                s.sendall(b"1000\r\n" + b"\0" * 4096 + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 413")
        assert health(base)["accepted_requests"] == 0


def test_a_full_spool_is_503_with_retry_after_and_nothing_is_lost(serve_settings):
    serve_settings.serve.spool_limit_bytes = 1
    serve_settings.serve.retry_after_s = 7
    body = encode_proto(finished_spans(generate_traces(n_traces=2, days=1, seed=1, project="shop")))
    body = body.SerializeToString()
    with running_server(serve_settings) as base:
        assert post(f"{base}/v1/traces", body, PB)[0] == 200  # the spool was empty
        status, headers, resp = post(f"{base}/v1/traces", body, PB)
        assert status == 503 and headers["retry-after"] == "7"
        assert "the spool is full" in _status(resp, PB).message
        assert health(base)["status"] == "spool_full"
    result = ingest_spool(store=open_store(serve_settings.database_path), settings=serve_settings)
    assert result.ingest.loaded == 2
    with running_server(serve_settings) as base:  # ingested: room again
        assert post(f"{base}/v1/traces", body, PB)[0] == 200


def test_too_many_requests_at_once_is_429_with_retry_after(serve_settings):
    serve_settings.serve.max_concurrent_requests = 1
    with running_server(serve_settings) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: 10\r\n\r\n\0")  # holds its slot: 9 bytes still to come
            for _ in range(100):
                if health(base)["in_flight"] == 1:
                    break
            status, headers, _ = post(f"{base}/v1/traces", b"", PB)
            assert status == 429 and headers["retry-after"] == "5"
            slow.sendall(b"\0" * 9)
            assert slow.recv(100).startswith(b"HTTP/1.1 400")  # (zeros are no protobuf)
        assert post(f"{base}/v1/traces", b"", PB)[0] == 200


def test_bearer_token_401_without_200_with(serve_settings):
    records = generate_traces(n_traces=2, days=1, seed=2, project="shop")
    with running_server(serve_settings, token="s3cret-token") as base:
        assert post(f"{base}/v1/traces", b"", PB)[0] == 401
        status, headers, resp = post(f"{base}/v1/traces", b"", PB, {"Authorization": "Bearer wrong"})
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert "bearer token" in _status(resp, PB).message
        provider, tracer = tracer_to(base, "gzip", headers={"Authorization": "Bearer s3cret-token"})
        for r in records:
            emit_trace(tracer, r)
        provider.shutdown()
        h = health(base)
    assert h["accepted_spans"] == sum(len(r["spans"]) for r in records) and h["refused_requests"] == 2


def test_binds_loopback_by_default(settings):
    from topics_assets.serve.app import is_loopback

    assert settings.serve.host == "127.0.0.1" and settings.serve.port == 4318
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
