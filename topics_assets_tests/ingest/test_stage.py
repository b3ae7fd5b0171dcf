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
