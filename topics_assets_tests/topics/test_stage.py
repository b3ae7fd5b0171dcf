"""The topic-map stage on a real DuckDB store, with injected components so no UMAP runs."""

import json
import os
import time

from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from topics_assets.config import Settings
from topics_assets.facets.stage import text_hash
from topics_assets.store import DuckDBStore, Store
from topics_assets.topics.naming import KeywordNamer
from topics_assets.topics.stage import (
    ClassifyResult, TopicMapResult, _previous_size, classify_days, gate_status, generate_topic_map, map_state)
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


def test_the_next_generation_is_told_the_previous_size_scaled_to_its_sample(tmp_path):
    store, settings = seeded_store(tmp_path)
    assert _previous_size(store, "p", "task", None, 120) is None
    first = fit(store, settings)
    size = first.params["min_cluster_size"]
    assert store.generation_info("p", "task", 1)["n_sampled"] == 120
    assert _previous_size(store, "p", "task", 1, 120) == size
    assert _previous_size(store, "p", "task", 1, 240) == 2 * size


def test_each_generation_lands_its_sample_on_the_2d_map(tmp_path):
    """topic_map_points: one row per sampled facet with its topic id (the one classification gives the
    same text) and a place on the map where the topics are apart."""
    store, settings = seeded_store(tmp_path)
    first = fit(store, settings, namer=KeywordNamer())
    classify_days(store=store, settings=settings, days=[DAY], project="p")
    second = fit(store, settings, namer=KeywordNamer())
    gens = store.map_generations()
    assert gens[["generation", "n_points"]].values.tolist() == [[2, 120], [1, 120]]
    pts = store.map_points("p", "task", first.generation)
    assert len(pts) == 120 and pts.trace_id.is_unique and set(pts.day) == {DAY}
    labels = store.query_df("SELECT trace_id, topic_id FROM classifications WHERE generation = 1")
    assert dict(zip(pts.trace_id, pts.topic_id)) == dict(zip(labels.trace_id, labels.topic_id))
    texts = store.query_df("SELECT trace_id, text FROM facets")
    assert dict(zip(pts.trace_id, pts.text)) == dict(zip(texts.trace_id, texts.text))
    assert pts[["x", "y"]].abs().max().max() <= 1.1
    centres = pts.groupby("topic_id")[["x", "y"]].mean()
    spread = pts.groupby("topic_id")[["x", "y"]].std().max().max()
    gaps = [((centres.iloc[i] - centres.iloc[j]) ** 2).sum() ** 0.5 for i in range(3) for j in range(i)]
    assert min(gaps) > 3 * spread, (centres, spread)
    assert len(store.map_points("p", "task", second.generation)) == 120
    assert store.map_points("p", "task", 1, start="2030-01-01").empty


class ServerNamer:
    """Names each topic with one chat call to the loopback server (plain HTTP: the child processes need
    no LLM stack), so the server counts the naming calls a generation paid for."""

    engine = "llm:test-model"

    def __init__(self, api_base: str):
        self.api_base = api_base

    def name(self, topics, facet: str) -> dict:
        import urllib.request

        for t in topics:
            body = json.dumps({"model": "test-model", "messages": [{"role": "user", "content": ", ".join(t.keywords)}]})
            req = urllib.request.Request(f"{self.api_base}/chat/completions", body.encode(),
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                answer = json.loads(json.loads(resp.read())["choices"][0]["message"]["content"])
            t.name, t.description = answer["name"], answer["description"]
        return {"named": len(topics)}

    def landed(self) -> None:
        pass


def _naming_answer(body: dict) -> str:
    return json.dumps({"name": f"Topic {body['messages'][-1]['content'][:30]}", "description": "A cluster."})


def _fit_in_a_process(path: str, api_base: str, go, results) -> None:
    """A child process's own store, fitting the map once `go` is set."""
    settings, store = Settings(home=os.path.dirname(path), database=path), DuckDBStore(path)
    go.wait(120)
    try:
        r = fit(store, settings, namer=ServerNamer(api_base))
        results.put((os.getpid(), r.generated, getattr(r, "busy", None), r.skipped_reason, r.generation))
    except BaseException as e:  # noqa: BLE001 - the test reports it
        results.put((os.getpid(), repr(e), None, None, None))


def test_two_processes_fitting_one_map_at_once_make_one_generation(tmp_path):
    """The second caller, while the first is naming, skips the map and says who has it: one generation,
    one set of naming calls. Once it landed, a caller that saw no map when it decided skips too."""
    import multiprocessing

    from topics_assets.testing.llm_server import FakeLLMServer

    store, settings = seeded_store(tmp_path)
    ctx = multiprocessing.get_context("spawn")  # a fork of this process can inherit a BLAS pool mid-use
    results, go_first, go_second = ctx.Queue(), ctx.Event(), ctx.Event()
    with FakeLLMServer(chat_handler=_naming_answer, latency_s=0.5) as server:
        first, second = (ctx.Process(target=_fit_in_a_process, args=(settings.database_path, server.url, go, results))
                         for go in (go_first, go_second))
        first.start(), second.start()
        go_first.set()
        deadline = time.monotonic() + 120
        while not server.requests_to("/chat/completions") and time.monotonic() < deadline and first.is_alive():
            time.sleep(0.01)
        assert first.is_alive(), "the first fit ended before it named anything"
        go_second.set()  # while the first is naming its topics
        got = {pid: rest for pid, *rest in (results.get(timeout=60) for _ in range(2))}
        first.join(10), second.join(10)
        naming_calls = len(server.requests_to("/chat/completions"))
    assert got[first.pid][:2] == [True, None] and got[first.pid][3] == 1, got
    generated, busy, reason, _ = got[second.pid]
    assert not generated and busy
    assert reason.startswith(f"another run is generating this map (process {first.pid} on "), reason
    assert store.query_df("SELECT count(*) n FROM topic_map_generations").n[0] == 1
    assert naming_calls == 3  # one per topic, asked once
    assert store.query_df("SELECT count(*) n FROM work_claims").n[0] == 0  # released when the map landed

    late = fit(store, settings, namer=KeywordNamer(), seen_generation=None)
    assert not late.generated and late.busy and "generation 1 landed since this run was asked for" in late.skipped_reason
    assert fit(store, settings, namer=KeywordNamer(), seen_generation=1).generation == 2
