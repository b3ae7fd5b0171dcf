"""The reader registry: detection walks READERS in order, and every reader keeps the detect/parse contract."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from topics_assets.ingest import READERS, Context, parse_record

NOW = datetime(2025, 6, 2, tzinfo=timezone.utc)
CHAT = {"id": "c1", "messages": [{"role": "user", "content": "hi"}]}
SPANS = {"trace_id": "s1", "spans": [{"id": "a", "type": "llm", "input": "hi", "output": "hello"}]}
TAU = {"task_id": 3, "traj": [{"role": "user", "content": "change my flight"}], "reward": 1.0}
TAU2 = {"simulations": [{"id": "x", "task_id": "1", "messages": [{"role": "user", "content": "hi"}]}]}
OTLP = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
    {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "root",
     "startTimeUnixNano": "1748822400000000000", "endTimeUnixNano": "1748822401000000000",
     "attributes": [{"key": "input.value", "value": {"stringValue": "hi"}}]}]}]}]}


def _reader(obj: dict) -> str:
    return next(r for r in READERS if r.detect(obj)).__name__.rsplit(".", 1)[-1]


@pytest.mark.parametrize(("record", "reader", "fmt"), [
    (CHAT, "chat", "chat"), (SPANS, "spans", "spans"), (TAU, "tau_bench", "tau-bench"),
    (TAU2, "tau2_bench", "tau2-bench"), (OTLP, "otlp", "otel"),
])
def test_each_shape_goes_to_its_reader_and_parses(record, reader, fmt):
    assert _reader(record) == reader
    mod = next(r for r in READERS if r.__name__.endswith("." + reader))
    traces = list(mod.parse(record, Context("t.jsonl", None, "default", NOW)))
    assert [t.format for t in traces] == [fmt]
    assert [t.format for t in parse_record(record, "t.jsonl", 1, now=NOW)] == [fmt]


def test_the_first_reader_that_accepts_a_record_wins():
    both = {**SPANS, "messages": CHAT["messages"]}  # spans come before chat in READERS
    assert _reader(both) == "spans"
    assert parse_record(both, "t.jsonl", 1, now=NOW)[0].format == "spans"
