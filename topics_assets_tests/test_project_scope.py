"""Trace ids are scoped by project: the same id ingested into two projects is two traces, through
every stage, on both backends."""

import json

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import HashingVectorizer

from topics_assets.embed import normalise
from topics_assets.embed.stage import embed_days
from topics_assets.facets.stage import facet_days
from topics_assets.ingest.stage import ingest_paths
from topics_assets.preprocess.stage import preprocess_days
from topics_assets.topics.naming import KeywordNamer
from topics_assets.topics.stage import classify_days, generate_topic_map

DAY = "2025-06-02"
N = 24  # traces per project: enough for two clusters of the smallest default size
IDS = [str(40 + i) for i in range(N)]  # "42" among them
ASKS = {
    "A": ["Can you refund my order {i}, it arrived broken?", "I need to cancel my subscription plan {i} please."],
    "B": ["Where is my invoice for account {i}, I need it for taxes?", "How do I reset the password of user {i}?"],
}


class HashingEmbedder:
    """A small deterministic embedder (no model to load): hashed word counts, L2-normalised."""

    model_id = "test/hashing-64"

    def embed(self, texts: list[str]) -> np.ndarray:
        return normalise(HashingVectorizer(n_features=64, alternate_sign=False).transform(texts).toarray())


def chat(trace_id: str, project: str, ask: str) -> dict:
    return {"id": trace_id, "project": project, "timestamp": f"{DAY}T10:00:00Z",
            "messages": [{"role": "user", "content": ask}, {"role": "assistant", "content": "Sure, one moment."}]}


def write(path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def project_file(tmp_path, project: str) -> str:
    asks = ASKS[project]
    return write(tmp_path / f"{project}.jsonl",
                 [chat(t, project, asks[i % 2].format(i=i)) for i, t in enumerate(IDS)])


def rows(store, sql: str) -> list[list]:
    return store.query_df(sql).values.tolist()


def test_the_same_trace_ids_in_two_projects_stay_two_sets_of_traces_through_every_stage(store, settings, tmp_path):
    a = ingest_paths(store=store, settings=settings, paths=[project_file(tmp_path, "A")])
    b = ingest_paths(store=store, settings=settings, paths=[project_file(tmp_path, "B")])
    assert (a.loaded, b.loaded, b.updated) == (N, N, 0)  # B's traces move nothing out of A
    assert rows(store, "SELECT project, count(*) FROM raw_traces GROUP BY 1 ORDER BY 1") == [["A", N], ["B", N]]

    assert preprocess_days(store=store, settings=settings, days=[DAY]).preprocessed == 2 * N
    assert rows(store, "SELECT project, count(*) FROM traces WHERE status = 'ok' GROUP BY 1 ORDER BY 1") == \
        [["A", N], ["B", N]]
    faceted = facet_days(store=store, settings=settings, days=[DAY])
    assert (faceted.traces, faceted.faceted, faceted.failed) == (2 * N, 2 * N, 0)
    n_facets = len(settings.facet_names)
    assert rows(store, "SELECT project, count(*) FROM facets GROUP BY 1 ORDER BY 1") == \
        [["A", N * n_facets], ["B", N * n_facets]]
    assert "refund" in store.query_df("SELECT text FROM facets WHERE project = 'A' AND trace_id = '42' "
                                      "AND facet = 'task'").text[0]
    embedder = HashingEmbedder()
    embed_days(store=store, settings=settings, days=[DAY], embedder=embedder)

    for project in ("A", "B"):
        result = generate_topic_map(store=store, settings=settings, project=project, facet="task",
                                    embedder_id=embedder.model_id, force=True, namer=KeywordNamer(),
                                    reducer=PCA(n_components=2, random_state=0),
                                    clusterer=KMeans(n_clusters=2, n_init=4, random_state=0))
        assert result.generated and result.n_sampled == N  # its own project's facets only
    labelled = classify_days(store=store, settings=settings, days=[DAY])
    assert {k: m.classified for k, m in labelled.maps.items()} == {"A/task": N, "B/task": N}
    assert rows(store, "SELECT project, count(*), count(DISTINCT trace_id) FROM trace_topics GROUP BY 1 ORDER BY 1") \
        == [["A", N, N], ["B", N, N]]
    # Each project's trace 42 carries its own map's label.
    t42 = store.query_df("SELECT project, topic_name FROM trace_topics WHERE trace_id = '42' ORDER BY 1")
    assert t42.project.tolist() == ["A", "B"]
    assert any(w in t42.topic_name[0].lower() for w in ("refund", "broken", "order", "arrived"))
    assert store.pending_days() == []

    # Re-ingesting A's trace 42 with new content changes A's 42 alone, down to its facets.
    before = store.query_df("SELECT project, text, created_at FROM facets WHERE trace_id = '42' AND facet = 'task' "
                            "ORDER BY 1")
    again = ingest_paths(store=store, settings=settings, paths=[write(
        tmp_path / "A2.jsonl", [chat("42", "A", "Please track my parcel 42, the courier lost it.")])])
    assert (again.loaded, again.updated) == (0, 1)
    assert rows(store, "SELECT project, version FROM raw_traces WHERE trace_id = '42' ORDER BY 1") == \
        [["A", 2], ["B", 1]]
    assert store.pending_days("B") == [] and store.pending_days("A") == [DAY]
    redone = preprocess_days(store=store, settings=settings, days=[DAY])
    assert (redone.preprocessed, redone.unchanged) == (1, 2 * N - 1)
    refaceted = facet_days(store=store, settings=settings, days=[DAY])
    assert (refaceted.faceted, refaceted.cache_hits) == (1, 2 * N - 1)
    after = store.query_df("SELECT project, text, created_at FROM facets WHERE trace_id = '42' AND facet = 'task' "
                           "ORDER BY 1")
    assert "parcel" in after.text[0] and after.text[0] != before.text[0]
    assert after.iloc[1].tolist() == before.iloc[1].tolist()  # B's facet: not rewritten
    assert rows(store, "SELECT project, count(*) FROM facets GROUP BY 1 ORDER BY 1") == \
        [["A", N * n_facets], ["B", N * n_facets]]


def test_topics_ingest_into_two_projects_keeps_both_traces(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from topics_assets.cli import cli

    monkeypatch.setenv("TOPICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    monkeypatch.delenv("TOPICS_CONFIG", raising=False)
    runner = CliRunner()

    def topics(*args: str):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    path = write(tmp_path / "one.jsonl", [chat("42", "ignored", "Can you refund my order 42, it arrived broken?")])
    assert "loaded 1, updated 0" in topics("ingest", "--project", "A", path)
    assert "loaded 1, updated 0" in topics("ingest", "--project", "B", path)  # not an update of A's
    assert "loaded 0, updated 0, unchanged 1" in topics("ingest", "--project", "B", path)
    topics("run")
    got = json.loads(topics("sql", "SELECT project, trace_id FROM traces ORDER BY 1", "--format", "json"))
    assert got == [{"project": "A", "trace_id": "42"}, {"project": "B", "trace_id": "42"}]
