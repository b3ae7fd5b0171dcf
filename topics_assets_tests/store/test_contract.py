"""One contract, both backends: every Store method, exercised identically on DuckDB and PostgreSQL."""

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from topics_assets.store import GenerationConflict, QueryError, Store
from topics_assets.store.schema import FACET_COLUMNS, SCHEMA_VERSION, TRACE_COLUMNS

T0 = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)


def raw(trace_id: str, day: str = "2025-06-01", payload: str = "{}", project: str = "shop", fmt: str = "chat") -> dict:
    return {"trace_id": trace_id, "project": project, "day": day, "started_at": T0, "format": fmt,
            "source": "test.jsonl", "payload": payload, "payload_hash": f"h:{payload}"}


def trace(trace_id: str, day: str = "2025-06-01", project: str = "shop", status: str = "ok") -> dict:
    row = dict.fromkeys(TRACE_COLUMNS)
    row.update(trace_id=trace_id, project=project, day=day, started_at=T0, format="chat", version=1,
               payload_hash="h:{}", content=f"content of {trace_id}", content_hash=f"c:{trace_id}", n_spans=1,
               n_messages=2, tokens_before=10, tokens_after=10, truncated=False, redactions="{}", status=status,
               error=None, preprocessed_at=T0, preprocess_hash="p1")
    return row


def facet(trace_id: str, name: str = "task", day: str = "2025-06-01", text: str | None = None,
          project: str = "shop") -> dict:
    text = text or f"{name} of {trace_id}"
    row = dict.fromkeys(FACET_COLUMNS)
    row.update(trace_id=trace_id, facet=name, project=project, day=day, text=text, text_hash=f"t:{text}",
               engine="extractive", model="m", content_hash=f"c:{trace_id}", facets_hash="f1", created_at=T0)
    return row


def keys(ids: list[str], project: str = "shop") -> list[tuple[str, str]]:
    """(project, trace_id) pairs: how the store names a trace."""
    return [(project, i) for i in ids]


def count(store: Store, table: str) -> int:
    return int(store.query_df(f"SELECT count(*) AS n FROM {table}").n[0])


def ingest_and_facet(store: Store, ids: list[str], day: str = "2025-06-01") -> None:
    store.upsert_raw_traces([raw(i, day) for i in ids])
    store.replace_traces([day], [trace(i, day) for i in ids], keep=keys(ids))
    store.write_facets([day], [facet(i, day=day) for i in ids], [], live=keys(ids))


def generation(gen: int, threshold: float = 0.5, project: str = "shop", facet_name: str = "task") -> dict:
    return {"project": project, "facet": facet_name, "generation": gen, "embedding_model": "m",
            "naming_engine": "keywords", "n_facets": 3, "n_sampled": 3, "n_topics": 2, "noise_share": 0.0,
            "threshold": threshold, "params": {"k": gen}}


def topic(gen: int, topic_id: str, centroid: list[float], name: str | None = None) -> dict:
    return {"project": "shop", "facet": "task", "generation": gen, "topic_id": topic_id,
            "name": name or f"name {topic_id} g{gen}", "description": "d", "keywords": ["a", "b"], "size": 2,
            "centroid": centroid, "examples": ["x", "y"], "status": "active"}


def test_a_fresh_store_is_at_the_current_schema_version_and_satisfies_the_protocol(store):
    assert isinstance(store, Store)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.projects() == [] and store.pending_days() == [] and store.ingest_watermark() == (None, 0)


def test_upsert_raw_traces_counts_loaded_unchanged_and_updated(store):
    assert store.upsert_raw_traces([raw("a"), raw("b")]) == {"loaded": 2, "updated": 0, "unchanged": 0}
    assert store.upsert_raw_traces([raw("a"), raw("b", payload='{"x": 1}'), raw("c", day="2025-06-02")]) == \
        {"loaded": 1, "updated": 1, "unchanged": 1}
    rows = store.query_df("SELECT trace_id, version FROM raw_traces ORDER BY trace_id")
    assert rows.values.tolist() == [["a", 1], ["b", 2], ["c", 1]]
    assert store.raw_payloads(keys(["a", "b", "zz"]) + [("other", "a")], {"chat"}) == \
        {("shop", "a"): "{}", ("shop", "b"): '{"x": 1}'}
    assert store.raw_payloads(keys(["a"]), {"otlp"}) == {}
    assert store.projects() == ["shop"]
    assert store.days_with_traces() == ["2025-06-01", "2025-06-02"] == store.days_with_traces("shop")
    assert store.days_with_traces("other") == []
    w, n = store.ingest_watermark()
    assert n == 3 and w
    store.add_quarantined([{"source": "f", "line": 3, "trace_id": None, "reason": "bad json", "snippet": "{"}])
    assert store.query_df("SELECT line, reason FROM quarantine").values.tolist() == [[3, "bad json"]]


def test_replace_traces_drops_the_rows_whose_trace_left_the_day(store):
    store.upsert_raw_traces([raw("a"), raw("b")])
    raws = store.raw_traces_for_days(["2025-06-01"])
    assert sorted(raws.trace_id) == ["a", "b"] and set(raws.day) == {"2025-06-01"}
    assert raws.done_hash.isna().all()
    store.replace_traces(["2025-06-01"], [trace("a"), trace("b")], keep=keys(["a", "b"]))
    assert store.raw_traces_for_days(["2025-06-01"]).done_hash.tolist() == ["h:{}", "h:{}"]
    # b moved away: re-running the day keeps a (replaced, not duplicated) and drops b.
    store.replace_traces(["2025-06-01"], [trace("a", status="failed")], keep=keys(["a"]))
    assert store.query_df("SELECT trace_id, status FROM traces").values.tolist() == [["a", "failed"]]
    assert store.ok_traces_for_days(["2025-06-01"]).empty
    store.replace_traces(["2025-06-01"], [trace("a")], keep=keys(["a"]))
    ok = store.ok_traces_for_days(["2025-06-01"])
    assert ok.columns.tolist() == ["trace_id", "project", "day", "content", "content_hash"]
    assert ok.values.tolist() == [["a", "shop", "2025-06-01", "content of a", "c:a"]]


def test_write_facets_replaces_a_traces_facets_and_clears_its_failure(store):
    day = ["2025-06-01"]
    store.write_facets(day, [facet("a"), facet("a", "issues")], [
        {"trace_id": "b", "project": "shop", "day": "2025-06-01", "reason": "llm_error", "detail": "429"}],
        live=keys(["a", "b"]))
    assert count(store, "facets") == 2 and count(store, "facet_failures") == 1
    # b succeeds now and a is faceted again with one facet only: a keeps exactly that one.
    store.write_facets(day, [facet("a", text="new"), facet("b")], [], live=keys(["a", "b"]))
    got = store.facets_for_days(day)
    assert got.columns.tolist() == ["trace_id", "project", "facet", "content_hash", "facets_hash", "model"]
    assert got[["trace_id", "facet"]].values.tolist() == [["a", "task"], ["b", "task"]]
    assert store.query_df("SELECT text FROM facets WHERE trace_id = 'a'").text.tolist() == ["new"]
    assert count(store, "facet_failures") == 0
    # a failure again, written twice: one row; b left the day: its facets go.
    fail = {"trace_id": "a", "project": "shop", "day": "2025-06-01", "reason": "timeout", "detail": ""}
    store.write_facets(day, [], [fail, fail], live=keys(["a"]))
    store.write_facets(day, [], [fail], live=keys(["a"]))
    assert store.query_df("SELECT trace_id, reason FROM facet_failures").values.tolist() == [["a", "timeout"]]
    assert store.facets_for_days(day).trace_id.tolist() == ["a"]


def test_embeddings_round_trip_as_float32(store):
    ingest_and_facet(store, ["a", "b"])
    missing = store.texts_missing_embeddings(["2025-06-01"], "m", ["task"])
    assert missing.text_hash.tolist() == ["t:task of a", "t:task of b"]
    vectors = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    store.write_embeddings("m", missing.text_hash.tolist(), missing.text.tolist(), vectors)
    store.write_embeddings("m", missing.text_hash.tolist(), missing.text.tolist(), vectors + 1)  # kept, not replaced
    assert store.texts_missing_embeddings(["2025-06-01"], "m", ["task"]).empty
    assert len(store.texts_missing_embeddings(["2025-06-01"], "other-model", ["task"])) == 2
    rows, got = store.facet_vectors("m", "task", project="shop", days=["2025-06-01"])
    assert rows.trace_id.tolist() == ["a", "b"] and rows.day.tolist() == ["2025-06-01"] * 2
    assert got.dtype == np.float32 and np.array_equal(got, vectors)
    assert store.facet_vectors("m", "task", where="t.trace_id = 'b'")[0].trace_id.tolist() == ["b"]
    assert store.facet_vectors("m", "task", project="nobody")[1].shape[0] == 0
    with pytest.raises(QueryError, match="no_such_column"):
        store.facet_vectors("m", "task", where="t.no_such_column = 1")


def test_facet_vectors_sample_is_reproducible_for_a_seed(store):
    ids = [f"t{i:03d}" for i in range(60)]
    ingest_and_facet(store, ids)
    store.write_embeddings("m", [f"t:task of {i}" for i in ids], ids,
                           np.arange(60 * 4, dtype=np.float32).reshape(60, 4))
    first, v1 = store.facet_vectors("m", "task", limit_sample=20, seed=3)
    again, v2 = store.facet_vectors("m", "task", limit_sample=20, seed=3)
    other, _ = store.facet_vectors("m", "task", limit_sample=20, seed=4)
    assert len(first) == 20 and first.trace_id.tolist() == sorted(first.trace_id)
    assert first.trace_id.tolist() == again.trace_id.tolist() and np.array_equal(v1, v2)
    assert other.trace_id.tolist() != first.trace_id.tolist()
    assert len(store.facet_vectors("m", "task", limit_sample=100)[0]) == 60


def test_write_generation_refuses_a_stale_predecessor(store):
    ingest_and_facet(store, ["a", "b", "c"])
    assert store.gate_counts("shop", "task") == {"traces": 3, "unique_facets": 3}
    assert store.latest_generation("shop", "task") is None and store.load_topics("shop", "task").empty
    assert store.next_topic_number("shop", "task") == 1
    store.write_generation(generation(1), [topic(1, "task-1", [1, 0]), topic(1, "task-2", [0, 1])], None)
    with pytest.raises(GenerationConflict):
        store.write_generation(generation(2), [topic(2, "task-3", [1, 1])], None)
    retired = dict(topic(2, "task-2", [0, 1]), status="retired")
    store.write_generation(generation(2), [topic(2, "task-1", [1, 0]), topic(2, "task-7", [1, 1]), retired], 1)
    assert store.latest_generation("shop", "task") == 2
    assert store.next_topic_number("shop", "task") == 8
    topics = store.load_topics("shop", "task")
    assert sorted(topics.topic_id) == ["task-1", "task-7"]
    assert len(store.load_topics("shop", "task", 2, active_only=False)) == 3
    assert list(topics.keywords.iloc[0]) == ["a", "b"] and list(topics.examples.iloc[0]) == ["x", "y"]
    assert np.vstack(topics.centroid.tolist()).astype(np.float32).shape == (2, 2)
    info = store.generation_info("shop", "task", 1)
    assert info["threshold"] == 0.5 and info["n_topics"] == 2 and info["naming_engine"] == "keywords"
    assert store.generation_info("shop", "task", 9) == {}


def test_classifications_are_idempotent_and_trace_topics_shows_the_newest_generation(store):
    ingest_and_facet(store, ["a", "b", "c"])
    day = ["2025-06-01"]
    store.write_generation(generation(1), [topic(1, "task-1", [1, 0], "Refunds")], None)
    labels = pd.DataFrame({"trace_id": ["a", "b", "c"], "topic_id": ["task-1", "task-1", "no_match"],
                           "distance": [0.1, 0.2, 0.9], "day": day * 3})
    store.write_classifications("shop", "task", 1, day, labels)
    store.write_classifications("shop", "task", 1, day, labels)
    assert count(store, "classifications") == 3
    assert store.pending_days() == []
    store.write_generation(generation(2), [topic(2, "task-1", [1, 0], "Refund requests")], 1)
    assert store.pending_days() == ["2025-06-01"]  # facets not labelled by the newest generation
    store.write_classifications("shop", "task", 2, day, labels[labels.trace_id != "c"])
    tt = store.query_df("SELECT trace_id, topic_id, topic_name, generation, distance FROM trace_topics "
                        "ORDER BY trace_id")
    assert tt.values.tolist() == [["a", "task-1", "Refund requests", 2, 0.1], ["b", "task-1", "Refund requests", 2, 0.2],
                                  ["c", "no_match", "no_match", 1, 0.9]]
    assert store.no_match_counts("shop", "task") == {"classified": 3, "no_match": 1}
    assert store.no_match_counts("shop", "issues") == {"classified": 0, "no_match": 0}


def test_pending_days_names_each_kind_of_work_left(store):
    store.upsert_raw_traces([raw("a"), raw("b", day="2025-06-02")])
    assert store.pending_days() == ["2025-06-01", "2025-06-02"]
    store.replace_traces(["2025-06-01"], [trace("a")], keep=keys(["a"]))
    store.replace_traces(["2025-06-02"], [trace("b", day="2025-06-02")], keep=keys(["b"]))
    assert store.pending_days(preprocess_hash="p1") == ["2025-06-01", "2025-06-02"]  # not faceted yet
    assert store.pending_days(preprocess_hash="p2") == ["2025-06-01", "2025-06-02"]
    store.write_facets(["2025-06-01"], [facet("a")], [], live=keys(["a"]))
    assert store.pending_days(preprocess_hash="p1") == ["2025-06-02"]
    assert store.pending_days(project="elsewhere") == []
    store.write_facets(["2025-06-02"], [facet("b", day="2025-06-02")], [], live=keys(["b"]))
    assert store.pending_days("shop", "p1") == []
    assert store.pending_days(preprocess_hash="p2") == ["2025-06-01", "2025-06-02"]  # other settings


def test_a_read_only_query_refuses_to_write(store):
    store.upsert_raw_traces([raw("a")])
    with pytest.raises(QueryError):
        store.query_df("DELETE FROM raw_traces", read_only=True)
    with pytest.raises(QueryError):
        store.query_df("SELECT nope FROM nowhere")
    assert store.query_df("SELECT trace_id FROM raw_traces WHERE project = ?", ["shop"], read_only=True) \
        .trace_id.tolist() == ["a"]
    store.query_df("DELETE FROM raw_traces WHERE trace_id = ?", ["a"])
    assert count(store, "raw_traces") == 0


def test_the_same_trace_id_in_two_projects_is_two_traces(store):
    """Trace ids are scoped by project: every per-trace table is keyed by (project, trace_id)."""
    day = ["2025-06-01"]
    assert store.upsert_raw_traces([raw("42", project="A"), raw("42", project="B", payload='{"b": 1}')]) == \
        {"loaded": 2, "updated": 0, "unchanged": 0}
    assert store.raw_payloads([("A", "42"), ("B", "42")], {"chat"}) == {("A", "42"): "{}", ("B", "42"): '{"b": 1}'}
    # Changing B's trace updates B's alone.
    assert store.upsert_raw_traces([raw("42", project="B", payload='{"b": 2}')]) == \
        {"loaded": 0, "updated": 1, "unchanged": 0}
    assert store.query_df("SELECT project, version, payload FROM raw_traces ORDER BY 1").values.tolist() == \
        [["A", 1, "{}"], ["B", 2, '{"b": 2}']]
    assert store.projects() == ["A", "B"]

    store.replace_traces(day, [trace("42", project="A")], keep=[("A", "42"), ("B", "42")])
    done = store.raw_traces_for_days(day).sort_values("project")
    assert done.project.tolist() == ["A", "B"] and done.done_hash.isna().tolist() == [False, True]
    assert store.pending_days("A", "p1") == day and store.pending_days("B", "p1") == day  # A: not faceted yet
    store.replace_traces(day, [dict(trace("42", project="B"), payload_hash='h:{"b": 2}')],
                         keep=[("A", "42"), ("B", "42")])
    assert store.ok_traces_for_days(day)[["project", "trace_id"]].values.tolist() == [["A", "42"], ["B", "42"]]

    # Facets of one project's trace leave the other's alone; so does a failure.
    store.write_facets(day, [facet("42", project="A", text="refund"), facet("42", "issues", project="A")], [],
                       live=[("A", "42"), ("B", "42")])
    store.write_facets(day, [], [{"trace_id": "42", "project": "B", "day": day[0], "reason": "timeout",
                                  "detail": ""}], live=[("A", "42"), ("B", "42")])
    assert store.facets_for_days(day)[["project", "facet"]].values.tolist() == [["A", "issues"], ["A", "task"]]
    assert store.query_df("SELECT project FROM facet_failures").project.tolist() == ["B"]
    store.write_facets(day, [facet("42", project="B", text="invoice")], [], live=[("A", "42"), ("B", "42")])
    assert count(store, "facet_failures") == 0
    assert store.facets_for_days(day)[["project", "facet"]].values.tolist() == \
        [["A", "issues"], ["A", "task"], ["B", "task"]]
    assert store.pending_days("A", "p1") == [] and store.pending_days("B", "p1") == []

    store.write_embeddings("m", ["t:refund", "t:invoice"], ["refund", "invoice"], np.eye(2, dtype=np.float32))
    rows, vectors = store.facet_vectors("m", "task")
    assert rows[["project", "trace_id", "text"]].values.tolist() == [["A", "42", "refund"], ["B", "42", "invoice"]]
    assert np.array_equal(vectors, np.eye(2, dtype=np.float32))
    only_b = store.facet_vectors("m", "task", where="t.project = 'B'")[0]  # the filter is joined on project too
    assert only_b[["project", "text"]].values.tolist() == [["B", "invoice"]]
    assert store.gate_counts("A", "task") == {"traces": 1, "unique_facets": 1}

    for project, topic_id in [("A", "task-1"), ("B", "no_match")]:
        store.write_generation(generation(1, project=project), [dict(topic(1, "task-1", [1, 0]), project=project)],
                               None)
        store.write_classifications(project, "task", 1, day, pd.DataFrame(
            {"trace_id": ["42"], "topic_id": [topic_id], "distance": [0.1], "day": day}))
    store.write_classifications("A", "task", 1, day, pd.DataFrame(  # A again: B's label stays
        {"trace_id": ["42"], "topic_id": ["task-1"], "distance": [0.2], "day": day}))
    assert store.query_df("SELECT project, trace_id, topic_id, distance FROM trace_topics ORDER BY 1").values.tolist() \
        == [["A", "42", "task-1", 0.2], ["B", "42", "no_match", 0.1]]
    assert store.pending_days() == []

    # B's trace leaves the day: B's rows go, A's stay.
    store.replace_traces(day, [], keep=[("A", "42")])
    store.write_facets(day, [], [], live=[("A", "42")])
    assert store.query_df("SELECT DISTINCT project FROM traces").project.tolist() == ["A"]
    assert store.query_df("SELECT DISTINCT project FROM facets").project.tolist() == ["A"]
