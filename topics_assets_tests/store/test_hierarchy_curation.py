"""topic_hierarchy and topic_curation on both backends: parents land with their generation, and a rename or
merge changes the current generation at once (names, labels, map points, the topic row) and is recorded."""

import pandas as pd

from .test_contract import generation, ingest_and_facet, topic


def _hierarchy(gen: int, pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"project": "shop", "facet": "task", "generation": gen, "topic_id": t, "parent_id": p,
             "parent_name": f"name of {p}", "parent_description": "d", "parent_keywords": ["a", "b"]}
            for t, p in pairs]


def test_parents_land_with_the_generation_and_curation_applies_at_once(store):
    ingest_and_facet(store, ["t1", "t2", "t3"])
    topics = [topic(1, "task-001", [1.0, 0.0]), topic(1, "task-002", [0.0, 1.0]), topic(1, "task-003", [0.6, 0.8])]
    points = pd.DataFrame({"trace_id": ["t1", "t2", "t3"], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0],
                           "topic_id": ["task-001", "task-002", "task-003"], "text": ["a", "b", "c"]})
    store.write_generation(generation(1), topics, expected_previous=None, points=points,
                           hierarchy=_hierarchy(1, [("task-001", "task-p001"), ("task-002", "task-p002"),
                                                    ("task-003", "task-p002")]))
    h = store.load_hierarchy("shop", "task", 1)
    assert list(zip(h.topic_id, h.parent_id)) == [("task-001", "task-p001"), ("task-002", "task-p002"),
                                                  ("task-003", "task-p002")]
    assert list(h.parent_keywords[0]) == ["a", "b"] and store.next_parent_number("shop", "task") == 3
    assert len(store.load_hierarchy("shop", "task", 1, read_only=True)) == 3
    store.write_classifications("shop", "task", 1, ["2025-06-01"], pd.DataFrame(
        {"trace_id": ["t1", "t2", "t3"], "topic_id": ["task-001", "task-002", "task-003"],
         "distance": [0.1, 0.1, 0.1], "day": ["2025-06-01"] * 3}))

    store.rename_topic("shop", "task", 1, "task-002", "Pinned")
    store.rename_topic("shop", "task", 1, "task-002", "Pinned again")  # replaces the pin
    store.merge_topics("shop", "task", 1, "task-002", "task-003")
    store.merge_topics("shop", "task", 1, "task-001", "task-002")  # what was merged into task-002 follows it
    cur = store.load_curation("shop", "task")
    assert sorted(zip(cur.topic_id, cur.action, cur.value)) == [
        ("task-002", "merge", "task-001"), ("task-002", "rename", "Pinned again"), ("task-003", "merge", "task-001")]
    assert set(cur.generation) == {1}
    rows = store.load_topics("shop", "task", 1, active_only=False).set_index("topic_id")
    assert rows.status.to_dict() == {"task-001": "active", "task-002": "merged", "task-003": "merged"}
    assert rows.loc["task-001", "size"] == 3 * topics[0]["size"]
    assert list(store.load_topics("shop", "task", 1).topic_id) == ["task-001"]
    assert len(store.load_topics("shop", "task", 1, with_merged=True)) == 3
    labels = store.query_df("SELECT topic_id, count(*) AS n FROM trace_topics GROUP BY 1")
    assert labels.to_dict("records") == [{"topic_id": "task-001", "n": 3}]
    assert set(store.map_points("shop", "task", 1).topic_id) == {"task-001"}
    assert list(store.load_hierarchy("shop", "task", 1).topic_id) == ["task-001"]
