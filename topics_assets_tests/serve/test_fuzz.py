"""Malformed bodies, fuzzed: each is answered 400 exactly when the official decoder rejects it, never 5xx,
and the valid requests sent between them all land."""

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from google.protobuf.message import DecodeError
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_proto
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from topics_assets.config import load_settings
from topics_assets.demo import generate_traces
from topics_assets.serve.stage import ingest_spool
from topics_assets.store import open_store

from .conftest import health, post, running_server
from .test_app import JS, PB, finished_spans, stored

SPANS = finished_spans(generate_traces(n_traces=3, days=1, seed=11, project="shop"))
VALID_PB = encode_proto(SPANS).SerializeToString()
VALID_JSON = encode_json(SPANS).to_json().encode()
# Mutations start from other traces: a request that still parses but carries bad content quarantines its
# own traces whole at ingest (as file ingest does), which must not be mistaken for a loss of the valid ones.
SEEDS = finished_spans(generate_traces(n_traces=3, days=1, seed=12, project="shop"))
SEED_PB = encode_proto(SEEDS).SerializeToString()
SEED_JSON = encode_json(SEEDS).to_json().encode()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    s = load_settings(env={})
    s.home = str(tmp_path_factory.mktemp("fuzz") / "home")
    s.serve.idle_window_s = 0
    sent: list = []  # valid requests sent between the fuzzed ones
    with running_server(s) as base:
        yield s, base, sent


def _mutate(data: bytes, cuts: list[int], flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, value in flips:
        if b:
            b[pos % len(b)] = value
    for c in cuts:
        if b:
            del b[c % len(b):]
    return bytes(b)


def _protobuf_rejects(body: bytes) -> bool:
    try:
        ExportTraceServiceRequest.FromString(body)
        return False
    except (DecodeError, RecursionError):
        return True


def _json_rejects(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return True
    return not isinstance(doc, dict)


FUZZ = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(base, sent, body, content_type, rejects, compress):
    wire = gzip.compress(body) if compress else body
    status, _, _ = post(f"{base}/v1/traces", wire, content_type, {"Content-Encoding": "gzip"} if compress else {})
    assert status in (200, 400), status
    if rejects(body):
        assert status == 400
    # a valid request right after: accepted whatever came before it on the server
    good = VALID_PB if content_type == PB else VALID_JSON
    assert post(f"{base}/v1/traces", good, content_type)[0] == 200
    sent.append(good)


@FUZZ
@given(junk=st.binary(max_size=400), compress=st.booleans())
def test_random_bytes_as_protobuf(fuzz_server, junk, compress):
    _, base, sent = fuzz_server
    _check(base, sent, junk, PB, _protobuf_rejects, compress)


@FUZZ
@given(cuts=st.lists(st.integers(0, 10**6), max_size=1), flips=st.lists(st.tuples(st.integers(0, 10**6),
       st.integers(0, 255)), min_size=1, max_size=4), compress=st.booleans())
def test_mutated_protobuf_exports(fuzz_server, cuts, flips, compress):
    _, base, sent = fuzz_server
    _check(base, sent, _mutate(SEED_PB, cuts, flips), PB, _protobuf_rejects, compress)


@FUZZ
@given(cuts=st.lists(st.integers(0, 10**6), max_size=1), flips=st.lists(st.tuples(st.integers(0, 10**6),
       st.sampled_from(b'{}[]",:0a\\ \xff')), max_size=4), compress=st.booleans())
def test_mutated_otlp_json_exports(fuzz_server, cuts, flips, compress):
    _, base, sent = fuzz_server
    _check(base, sent, _mutate(SEED_JSON, cuts, flips), JS, _json_rejects, compress)


@FUZZ
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(
                            st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId",
                                             "attributes", "name", "x"]), c, max_size=4), max_leaves=20))
def test_json_of_the_wrong_shape(fuzz_server, doc):
    _, base, sent = fuzz_server
    _check(base, sent, json.dumps(doc).encode(), JS, _json_rejects, False)


def test_after_the_fuzzing_every_valid_request_landed(fuzz_server):
    """Runs last in this module: the valid requests interleaved with the fuzzed ones are all in the store."""
    s, base, sent = fuzz_server
    assert len(sent) >= 200 and health(base)["status"] == "ok"
    import time

    time.sleep(s.serve.segment_max_age_s + 0.5)  # the open segment closes
    store = open_store(s.database_path)
    while ingest_spool(store=store, settings=s).state == "ingested":
        pass
    traces = stored(s)
    want = {format(sp.context.trace_id, "032x"): set() for sp in SPANS}
    for sp in SPANS:
        want[format(sp.context.trace_id, "032x")].add(format(sp.context.span_id, "016x"))
    for tid, span_ids in want.items():
        assert {sp.id for sp in traces[tid].spans} == span_ids
    quarantined = set(store.query_df("SELECT trace_id FROM quarantine").trace_id.dropna())
    assert not quarantined & set(want)
