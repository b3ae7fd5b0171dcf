"""ingest_paths and preprocess_days: keyword-only, frozen results, the same metadata keys as before."""

from __future__ import annotations

import dataclasses
import json

import pytest

from topics_assets.ingest.stage import IngestResult, ingest_paths
from topics_assets.preprocess.stage import PreprocessResult, preprocess_days
from topics_assets.store import DuckDBStore

INGEST_KEYS = {"loaded", "updated", "unchanged", "merged", "quarantined", "quarantine_reasons", "quarantine_lines",
               "days", "projects"}
PREPROCESS_KEYS = {"raw_traces", "preprocessed", "unchanged", "failed", "tokens_before", "tokens_after",
                   "redactions", "with_errors", "seconds"}


def test_stage_results_are_frozen_and_carry_the_run_metadata(settings, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "timestamp": "2025-06-02T10:00:00Z", "project": "p",
                    "messages": [{"role": "user", "content": "mail me at jane@example.com"}]}),
        "not json",
    ]) + "\n")
    store = DuckDBStore(settings.database_path)
    with pytest.raises(TypeError):
        ingest_paths(store, settings, [str(path)])  # keyword-only
    ingested = ingest_paths(store=store, settings=settings, paths=[str(path)])
    assert isinstance(ingested, IngestResult)
    meta = ingested.to_metadata()
    assert set(meta) == INGEST_KEYS
    assert (meta["loaded"], meta["quarantined"], meta["days"], meta["projects"]) == (1, 1, ["2025-06-02"], ["p"])
    assert meta["quarantine_reasons"] == {"not valid JSON": 1}
    assert meta["quarantine_lines"] == {str(path): {"not valid JSON": [2]}}
    json.dumps(meta)  # plain data, for the CLI and asset metadata
    with pytest.raises(dataclasses.FrozenInstanceError):
        ingested.loaded = 2

    done = preprocess_days(store=store, settings=settings, days=ingested.days)
    assert isinstance(done, PreprocessResult)
    meta = done.to_metadata()
    assert set(meta) == PREPROCESS_KEYS
    assert (meta["raw_traces"], meta["preprocessed"], meta["failed"], meta["redactions"]) == (1, 1, 0, {"EMAIL": 1})
    assert preprocess_days(store=store, settings=settings, days=ingested.days).unchanged == 1


def _chat(trace_id: str, timestamp) -> str:
    return json.dumps({"id": trace_id, "timestamp": timestamp, "project": "p",
                       "messages": [{"role": "user", "content": f"question {trace_id}"}]})


def test_start_times_outside_the_window_are_quarantined_naming_the_trace(settings, tmp_path):
    """Year 9999 (then every run failed with OverflowError), year 1, epoch 0 and tomorrow-but-one."""
    from datetime import datetime, timedelta, timezone

    now = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        _chat("ok", "2026-06-01T10:00:00Z"), _chat("skewed", (now + timedelta(hours=20)).isoformat()),
        _chat("y9999", "9999-12-31T23:59:59Z"), _chat("y1", "0001-01-01T00:00:00Z"), _chat("epoch0", 0),
        _chat("later", (now + timedelta(days=3)).isoformat()), _chat("huge", 1e300), _chat("neg", -99999999999),
    ]) + "\n")
    store = DuckDBStore(settings.database_path)
    meta = ingest_paths(store=store, settings=settings, paths=[str(path)], now=now).to_metadata()
    assert (meta["loaded"], meta["quarantined"]) == (2, 6)
    assert meta["quarantine_reasons"]["start time outside the accepted window"] == 4
    reasons = dict(store.query_df("SELECT trace_id, reason FROM quarantine").itertuples(index=False))
    assert set(reasons) == {"y9999", "y1", "epoch0", "later", "huge", "neg"}
    assert "trace y9999 started 9999-12-31T23:59:59+00:00, accepted 1990-01-01 .. 2026-06-02T12:00" in reasons["y9999"]
    assert "cannot read time" in reasons["huge"]
    settings.ingest.earliest_start, settings.ingest.max_future_hours = "1960-01-01", 100
    again = ingest_paths(store=store, settings=settings, paths=[str(path)], now=now)
    assert again.loaded == 2  # epoch 0 and three days ahead now fit the window


def test_one_bad_stored_day_never_stops_a_run(settings, tmp_path):
    """A store an older release filled with a year-9999 trace: the run processes the rest and says why not that."""
    from dagster import instance_for_test

    from topics_assets.definitions import build_defs
    from topics_assets.defs.runner import run_pending

    path = tmp_path / "t.jsonl"
    path.write_text(_chat("ok", "2026-06-01T10:00:00Z") + "\n")
    store = DuckDBStore(settings.database_path)
    ingest_paths(store=store, settings=settings, paths=[str(path)])
    from topics_assets.traces import sha256_text

    # What a release without the window stored: the row straight into raw_traces.
    payload = store.query_df("SELECT payload FROM raw_traces").payload[0].replace("2026-06-01T10:00:00", "9999-12-31T23:59:59")
    store.upsert_raw_traces([{"trace_id": "y9999", "project": "p", "day": "9999-12-31", "started_at": "9999-12-31T23:59:59Z",
                              "format": "chat", "source": "old", "payload": payload, "payload_hash": sha256_text(payload)}])
    said = []
    with instance_for_test() as instance:
        summary = run_pending(build_defs(settings), instance, store, settings, say=said.append)
    assert summary.days == ["2026-06-01"]
    assert any("9999-12-31" in s and "left alone" in s for s in said), said
    assert store.query_df("SELECT trace_id FROM facets").trace_id.unique().tolist() == ["ok"]
