"""Stable topic identity: a regenerated map reuses the ids of the clusters it continues."""

import numpy as np

from topics_assets.config import ClusterSettings
from topics_assets.topic_map import TopicMap, classify_vectors, match_ids


def kept_share(vectors, texts, settings, seed_a, seed_b, share=0.8):
    """Fit on two different 80% samples; the share of all items whose new topic kept an old id."""
    rng_a, rng_b = np.random.default_rng(seed_a), np.random.default_rng(seed_b)
    n = len(texts)
    a = np.sort(rng_a.choice(n, int(n * share), replace=False))
    b = np.sort(rng_b.choice(n, int(n * share), replace=False))
    old = TopicMap.fit(vectors[a], [texts[i] for i in a], settings)
    new = TopicMap.fit(vectors[b], [texts[i] for i in b], settings)
    # Members as the pipeline sees them: which old topic each row of the new sample falls in.
    old_idx, _ = classify_vectors(vectors[b], old.centroids, old.threshold)
    old_members = [set(np.flatnonzero(old_idx == j).tolist()) for j in range(len(old.topics))]
    new_members = [set(np.flatnonzero(new.labels == t.index).tolist()) for t in new.topics]
    assignment = match_ids(old.centroids, old_members, new.centroids, new_members, settings.match_min_similarity)
    idx, _ = new.classify(vectors)
    kept = np.array([j is not None for j in assignment])
    labelled = idx >= 0
    return float(kept[idx[labelled]].sum() / labelled.sum()), len(old.topics), len(new.topics)


def test_resampled_map_keeps_ids_of_topics_holding_90_percent(banking77_embedded):
    train, vectors, *_ = banking77_embedded
    share, n_old, n_new = kept_share(vectors, train.text.tolist(), ClusterSettings(), 1, 2)
    assert n_old > 20 and n_new > 20
    assert share >= 0.9, f"only {share:.1%} of texts are in topics whose id survived"


def test_match_ids_is_one_to_one_and_rejects_dissimilar():
    rng = np.random.default_rng(0)
    prev = rng.normal(size=(5, 16)).astype(np.float32)
    prev /= np.linalg.norm(prev, axis=1, keepdims=True)
    new = np.vstack([prev[[2, 0]], -prev[1]])  # two continue old topics, one is new
    out = match_ids(prev, [set()] * 5, new, [set()] * 3, min_similarity=0.75)
    assert out == [2, 0, None]
