"""Stable topic identity: a regenerated map reuses the ids of the clusters it continues."""

import numpy as np

from topics_assets.config import ClusterSettings
from topics_assets.topics.stability import resample_kept_share
from topics_assets.topics.identity import match_ids


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
