"""How stable topic identity is under resampling: the measure behind the identity test and benchmark."""

from __future__ import annotations

import numpy as np

from ..config import ClusterSettings
from .identity import PreviousMap, PreviousTopic, assign_ids
from .topic_map import TopicMap


def resample_kept_share(vectors: np.ndarray, texts: list[str], settings: ClusterSettings, seed_a: int, seed_b: int,
                        share: float = 0.8) -> dict:
    """Fit maps on two different `share` samples, assign the second's ids from the first exactly as a
    regeneration does (the second fit told the first's min cluster size), and report the share of all
    items (that the new map labels) whose topic kept its id."""
    n = len(texts)
    a = np.sort(np.random.default_rng(seed_a).choice(n, int(n * share), replace=False))
    b = np.sort(np.random.default_rng(seed_b).choice(n, int(n * share), replace=False))
    old = TopicMap.fit(vectors[a], [texts[i] for i in a], settings)
    new = TopicMap.fit(vectors[b], [texts[i] for i in b], settings, prefer_min_cluster_size=old.min_cluster_size)
    previous = PreviousMap(1, old.threshold, tuple(
        PreviousTopic(f"old-{t.index}", "", "", tuple(t.keywords), t.centroid, tuple(t.examples), t.threshold)
        for t in old.topics))
    ids = assign_ids(previous, new, vectors[b], 1, settings.match_min_similarity, project="", facet="new")
    old_ids = {p.topic_id for p in previous.topics}
    kept = np.array([t["topic_id"] in old_ids for t in ids.topics])
    idx, _ = new.classify(vectors)
    labelled = idx >= 0
    return {"kept_share": float(kept[idx[labelled]].sum() / max(labelled.sum(), 1)),
            "topics_old": len(old.topics), "topics_new": len(new.topics), "topics_kept": ids.n_matched}
