"""Parents over the topics (topic_hierarchy) and curation (topic_curation) through map generation, on a real
DuckDB store built from the demo's traces (PCA + k-means so no UMAP runs), with the LLM a loopback server."""

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from topics_assets.config import LLMSettings
from topics_assets.llm import LLMClient
from topics_assets.testing.llm_server import FakeLLMServer
from topics_assets.topics.curation import CurationError, merge_topics, rename_topic
from topics_assets.topics.hierarchy import build_parents, n_parents
from topics_assets.topics.stage import classify_days, generate_topic_map
from topics_assets_tests.explore.conftest import PROJECT, build_demo_store


def regenerate(store, settings, facet="task", **kw):
    return generate_topic_map(store=store, settings=settings, project=PROJECT, facet=facet, force=True,
                              reducer=PCA(n_components=5, random_state=0),
                              clusterer=KMeans(n_clusters=6, n_init=3, random_state=0), **kw)


@pytest.fixture
def demo(tmp_path):
    return build_demo_store(str(tmp_path / "home"), n_traces=160, days=2)


def _topic(tid, centroid, size, keywords=()):
    return {"topic_id": tid, "centroid": np.asarray(centroid, dtype=np.float32), "size": size,
            "keywords": list(keywords)}


def test_parents_group_similar_centroids_about_sqrt_of_the_topic_count():
    assert [n_parents(n) for n in (1, 3, 4, 9, 16, 30)] == [0, 0, 2, 3, 4, 5]
    rng = np.random.default_rng(0)
    axes = np.eye(8, dtype=np.float32)
    topics = []
    for g in range(3):  # three directions, three topics each
        for j in range(3):
            v = axes[g] + 0.1 * rng.standard_normal(8).astype(np.float32)
            topics.append(_topic(f"task-{g}{j}", v / np.linalg.norm(v), 10 * (g + 1) + j, [f"word{g}", f"w{g}{j}"]))
    parents = build_parents(topics)
    assert len(parents) == 3
    assert sorted(sorted(p.children) for p in parents) == [[f"task-{g}{j}" for j in range(3)] for g in range(3)]
    assert [p.size for p in parents] == sorted((p.size for p in parents), reverse=True)  # biggest first
    assert parents[0].keywords[0] == "word2"  # keywords from the children's, most frequent first
    assert build_parents(topics[:3]) == []  # three topics: no level above them


def test_generation_writes_parents_keyword_named_and_keeps_their_ids(demo):
    store, settings = demo
    h1 = store.load_hierarchy(PROJECT, "task", 1)
    topics = store.load_topics(PROJECT, "task", 1)
    assert sorted(h1.topic_id) == sorted(topics.topic_id)  # every topic has exactly one parent
    assert h1.parent_id.nunique() == n_parents(len(topics)) == 2
    assert all(pid.startswith("task-p") for pid in h1.parent_id)
    # Offline names from the c-TF-IDF keywords of each parent's members.
    for name, kws in zip(h1.parent_name, h1.parent_keywords):
        assert name == " / ".join(list(kws)[:3])
    again = regenerate(store, settings)
    assert again.generation == 2 and again.parents == 2 and again.parents_matched == 2
    h2 = store.load_hierarchy(PROJECT, "task", 2)
    assert {(r.topic_id, r.parent_id) for r in h2.itertuples()} == {(r.topic_id, r.parent_id) for r in h1.itertuples()}
    # Parent ids are never reused: a new parent would get the next number.
    assert store.next_parent_number(PROJECT, "task") == 3


def _naming_handler(body):
    system = body["messages"][0]["content"]
    user = body["messages"][1]["content"]
    if "groups of related topics" in system:
        first = user.split("Topics IN the group:\n- ", 1)[1].split(" (keywords", 1)[0]
        return json.dumps({"name": f"Group of {first}", "description": "A group of topics."})
    kw = user.split("Keywords: ", 1)[1].split("\n", 1)[0]
    return json.dumps({"name": f"About {kw.split(',')[0]}", "description": "A topic."})


def test_llm_names_parents_from_their_children_and_contrasting_siblings(demo):
    store, settings = demo
    with FakeLLMServer(chat_handler=_naming_handler) as server:
        settings.llm.model = "openai/test-model"
        client = LLMClient(LLMSettings(model="openai/test-model", api_base=server.url, backoff_base_s=0.01),
                           api_key="k")
        result = regenerate(store, settings, client=client)
        chats = [b for path, b, _ in server.requests if path.endswith("/chat/completions")]
    parent_calls = [b for b in chats if "groups of related topics" in b["messages"][0]["content"]]
    assert result.naming_engine == "llm:openai/test-model"
    assert len(parent_calls) == result.parents == 2 == result.to_metadata()["parents_named_llm"]
    assert result.to_metadata()["parent_naming_calls"] == 2
    h = store.load_hierarchy(PROJECT, "task", result.generation)
    names = dict(zip(store.load_topics(PROJECT, "task", result.generation).topic_id,
                     store.load_topics(PROJECT, "task", result.generation).name))
    for pid, rows in h.groupby("parent_id"):
        prompt = next(b["messages"][1]["content"] for b in parent_calls
                      if all(names[t] in b["messages"][1]["content"].split("OTHER groups")[0] for t in rows.topic_id))
        # The other parent's topics are shown as contrast, after its own.
        others = [names[t] for t in h.topic_id if t not in set(rows.topic_id)]
        assert all(n in prompt.split("OTHER groups", 1)[1] for n in others)
        assert rows.parent_name.iloc[0].startswith("Group of About ")


def test_rename_and_merge_survive_regeneration(demo):
    store, settings = demo
    topics = store.load_topics(PROJECT, "task", 1)
    keep, other, pinned = topics.topic_id[0], topics.topic_id[1], topics.topic_id[2]
    rename_topic(store=store, project=PROJECT, facet="task", topic_id=pinned, name="Hand-picked name")
    merge_topics(store=store, project=PROJECT, facet="task", keep=keep, other=other)
    labels = store.query_df("SELECT topic_id, topic_name FROM trace_topics WHERE facet = 'task'")
    assert other not in set(labels.topic_id) and (labels.topic_name == "Hand-picked name").any()
    with pytest.raises(CurationError, match="merged into another topic"):
        rename_topic(store=store, project=PROJECT, facet="task", topic_id=other, name="x")
    with pytest.raises(CurationError, match="no such topic"):
        merge_topics(store=store, project=PROJECT, facet="task", keep=keep, other="task-999")

    result = regenerate(store, settings)
    classify_days(store=store, settings=settings, days=store.days_with_traces())
    assert result.generation == 2 and result.curated == 2 and result.to_metadata()["pinned_names"] == 1
    now = store.load_topics(PROJECT, "task", 2)
    assert now.name[now.topic_id == pinned].tolist() == ["Hand-picked name"]
    assert other not in set(now.topic_id)  # merged again: its cluster labels for `keep`
    merged = store.load_topics(PROJECT, "task", 2, active_only=False)
    assert merged.status[merged.topic_id == other].tolist() == ["merged"]
    assert int(now["size"][now.topic_id == keep].iloc[0]) == int(topics["size"][:2].sum())
    labels = store.query_df("SELECT topic_id, topic_name, generation FROM trace_topics WHERE facet = 'task'")
    assert set(labels.generation) == {2} and other not in set(labels.topic_id)
    assert (labels.topic_id == keep).sum() == int(topics["size"][:2].sum())
    assert other not in set(store.load_hierarchy(PROJECT, "task", 2).topic_id)


def test_parent_ids_follow_shared_children_and_new_parents_get_the_next_number():
    from topics_assets.topics.hierarchy import Parent, PreviousParent, assign_parent_ids

    e = np.eye(4, dtype=np.float32)
    previous = [PreviousParent("task-p001", frozenset({"task-001", "task-002"}), e[0]),
                PreviousParent("task-p002", frozenset({"task-003", "task-004"}), e[1])]
    parents = [Parent(0, ["task-003", "task-004", "task-007"], e[1], 30),  # gained a child: still p002
               Parent(1, ["task-001", "task-002"], e[0], 20),
               Parent(2, ["task-008", "task-009"], e[2], 10)]  # nothing like it before
    assert assign_parent_ids(parents, previous, 3, "task", 0.75) == 2
    assert [p.parent_id for p in parents] == ["task-p002", "task-p001", "task-p003"]
    # A parent that only resembles an old one, sharing none of its topics, is new.
    lone = [Parent(0, ["task-010"], e[0], 5)]
    assert assign_parent_ids(lone, previous, 4, "task", 0.75) == 0 and lone[0].parent_id == "task-p004"


def test_a_merged_topic_takes_the_id_of_a_target_that_nothing_continues():
    from topics_assets.topics.curation import Curation, apply_to_rows

    cur = Curation(pins={"task-002": "Pinned"}, merges={"task-003": "task-001", "task-004": "task-002"})
    rows = [{"topic_id": t, "size": s, "name": t, "status": "active"}
            for t, s in (("task-002", 10), ("task-003", 7), ("task-004", 3))]
    retired = [{"topic_id": "task-001", "size": 0, "status": "retired"}]
    active, gone = apply_to_rows(cur, rows, retired)
    assert [(r["topic_id"], r["status"], r["size"], r["name"]) for r in active] == [
        ("task-002", "active", 13, "Pinned"), ("task-001", "active", 7, "task-003"), ("task-004", "merged", 3, "task-004")]
    assert gone == []  # task-001 lives on in the cluster that continued task-003
