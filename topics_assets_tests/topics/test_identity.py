"""Stable topic identity: a regenerated map reuses the ids of the clusters it continues."""

import numpy as np

from topics_assets.config import ClusterSettings
from topics_assets.topics.stability import resample_kept_share
from topics_assets.topics.identity import PreviousMap, PreviousTopic, assign_ids, match_ids
from topics_assets.topics.topic_map import Topic, TopicMap


def test_resampled_map_keeps_ids_of_topics_holding_90_percent(banking77_embedded):
    train, vectors, *_ = banking77_embedded
    r = resample_kept_share(vectors, train.text.tolist(), ClusterSettings(), 1, 2)
    assert r["topics_old"] > 20 and r["topics_new"] > 20
    assert r["kept_share"] >= 0.9, f"only {r['kept_share']:.1%} of texts are in topics whose id survived"


def test_match_ids_is_one_to_one_and_rejects_dissimilar():
    rng = np.random.default_rng(0)
    prev = rng.normal(size=(5, 16)).astype(np.float32)
    prev /= np.linalg.norm(prev, axis=1, keepdims=True)
    new = np.vstack([prev[[2, 0]], -prev[1]])  # two continue old topics, one is new
    out = match_ids(prev, [set()] * 5, new, [set()] * 3, min_similarity=0.75)
    assert out == [2, 0, None]


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _fitted(centroids: np.ndarray, sizes: list[int]) -> tuple[TopicMap, np.ndarray]:
    """A hand-made fit: `sizes[i]` sample rows at centroid i, so members and centroids agree."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    topics = [Topic(i, n, c, [f"kw{i}"], [f"text {i}"], name=f"name {i}", description="d")
              for i, (c, n) in enumerate(zip(centroids, sizes))]
    return TopicMap(topics, threshold=0.2, noise_share=0.0, min_cluster_size=2, labels=labels), centroids[labels]


def _previous(centroids: np.ndarray, ids: list[str]) -> PreviousMap:
    return PreviousMap(3, 0.2, tuple(PreviousTopic(i, f"old {i}", "d", ("k",), c, ("e",)) for i, c in zip(ids, centroids)))


def test_assign_ids_keeps_matched_numbers_new_and_retires_the_rest():
    axes = _unit(np.eye(4))
    previous = _previous(axes[[0, 1, 2]], ["task-001", "task-002", "task-003"])
    # New clusters: one continues task-002, one continues task-001, one is new (axis 3); task-003 is gone.
    new, sample = _fitted(axes[[1, 3, 0]], [5, 9, 4])
    out = assign_ids(previous, new, sample, next_number=7, min_similarity=0.75, project="p", facet="task")
    assert out.generation == 4 and out.n_matched == 2
    assert [t["topic_id"] for t in out.topics] == ["task-002", "task-007", "task-001"]  # 004-006 were used before
    assert all(t["generation"] == 4 and t["status"] == "active" for t in out.topics)
    assert [t["name"] for t in out.topics] == ["name 0", "name 1", "name 2"]  # names come from the new fit
    assert [(r["topic_id"], r["status"], r["size"]) for r in out.retired] == [("task-003", "retired", 0)]


def test_assign_ids_numbers_a_first_map_biggest_first():
    axes = _unit(np.eye(3))
    new, sample = _fitted(axes, [3, 8, 5])
    out = assign_ids(None, new, sample, next_number=1, min_similarity=0.75, project="p", facet="issues")
    assert out.generation == 1 and out.n_matched == 0 and out.retired == ()
    assert [t["topic_id"] for t in out.topics] == ["issues-003", "issues-001", "issues-002"]


def test_assign_ids_never_matches_a_dissimilar_cluster():
    axes = _unit(np.eye(3))
    previous = _previous(axes[[0]], ["task-001"])
    new, sample = _fitted(_unit(axes[[0]] + axes[[1]] * 1.5), [6])  # cosine 0.55 to task-001
    out = assign_ids(previous, new, sample, next_number=2, min_similarity=0.75, project="p", facet="task")
    assert [t["topic_id"] for t in out.topics] == ["task-002"]
    assert [r["topic_id"] for r in out.retired] == ["task-001"]
