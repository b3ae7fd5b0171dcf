"""The topic-map stage on a real DuckDB store, with injected components so no UMAP runs."""

from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from topics_assets.config import Settings
from topics_assets.facets.stage import text_hash
from topics_assets.store import DuckDBStore, Store
from topics_assets.topics.naming import KeywordNamer
from topics_assets.topics.stage import (
    ClassifyResult, TopicMapResult, classify_days, gate_status, generate_topic_map, map_state)
from topics_assets_tests.topics.test_components import blobs

MODEL = "test/blobs"
DAY = "2026-11-02"


def seeded_store(tmp_path, n_per: int = 40) -> tuple[Store, Settings]:
    """Task facets and their vectors for three groups, written through the store's own methods."""
    settings = Settings(home=str(tmp_path))
    store = DuckDBStore(settings.database_path)
    x, texts, _ = blobs(n_per=n_per)
    rows = [{"trace_id": f"t{i:04d}", "facet": "task", "project": "p", "day": DAY, "text": t,
             "text_hash": text_hash(t), "engine": "extractive", "model": "none", "content_hash": "c",
             "facets_hash": "f", "created_at": None} for i, t in enumerate(texts)]
    store.write_facets([DAY], rows, [], live=[(r["project"], r["trace_id"]) for r in rows])
    store.write_embeddings(MODEL, [r["text_hash"] for r in rows], texts, x)
    return store, settings


def fit(store, settings, **kw) -> TopicMapResult:
    return generate_topic_map(store=store, settings=settings, project="p", facet="task", embedder_id=MODEL,
                              force=True, reducer=PCA(n_components=4, random_state=0),
                              clusterer=KMeans(n_clusters=3, n_init=4, random_state=0), **kw)


def test_gates_hold_back_a_map_and_say_why(tmp_path):
    store, settings = seeded_store(tmp_path)
    gate = gate_status(store=store, settings=settings, project="p", facet="task")
    assert not gate.ready and gate.traces == 0 and gate.unique_facets == 120
    assert gate.reason == f"0 traces in project 'p', need {settings.gates.min_traces}"
    result = generate_topic_map(store=store, settings=settings, project="p", facet="task", embedder_id=MODEL)
    assert not result.generated and result.skipped_reason == gate.reason
    assert result.to_metadata() == {"project": "p", "facet": "task", "generated": False,
                                    "skipped_reason": gate.reason, "traces": 0, "unique_facets": 120,
                                    "ready": False, "reason": gate.reason}
    assert map_state(store=store, settings=settings, project="p", facet="task").state == "accumulating"


def test_regeneration_keeps_ids_and_classification_uses_the_map(tmp_path):
    store, settings = seeded_store(tmp_path)
    first = fit(store, settings, namer=KeywordNamer())
    assert first.generated and first.generation == 1 and first.naming_engine == "keywords"
    ids = sorted(t["topic_id"] for t in first.topics)
    assert ids == ["task-001", "task-002", "task-003"] and first.new_topics == 3
    meta = first.to_metadata()
    assert {"generation", "n_topics", "threshold", "params", "matched_previous", "retired", "new_topics",
            "topics", "seconds"} <= set(meta) and "gate" not in meta and "naming" not in meta

    second = fit(store, settings)  # the namer from settings: keywords, with no LLM configured
    assert second.generation == 2 and second.matched_previous == 3 and second.retired == 0
    assert sorted(t["topic_id"] for t in second.topics) == ids
    assert store.latest_generation("p", "task") == 2

    labels = classify_days(store=store, settings=settings, days=[DAY], project="p")
    assert isinstance(labels, ClassifyResult)
    assert labels.classified == 120 and labels.maps["p/task"].generation == 2
    assert labels.to_metadata()["maps"]["p/task"] == {"generation": 2, "classified": 120,
                                                      "no_match": labels.no_match,
                                                      "no_match_rate": labels.maps["p/task"].no_match_rate}
    assert map_state(store=store, settings=settings, project="p", facet="task").state == "idle"
