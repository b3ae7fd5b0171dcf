"""How stable topic identity is under resampling: the measure behind the identity test and benchmark."""

from __future__ import annotations

import numpy as np

from .config import ClusterSettings
from .topic_map import TopicMap, classify_vectors, match_ids


def resample_kept_share(vectors: np.ndarray, texts: list[str], settings: ClusterSettings, seed_a: int, seed_b: int,
                        share: float = 0.8) -> dict:
    """Fit maps on two different `share` samples, match the second to the first as a regeneration would,
    and report the share of all items (that the new map labels) whose topic kept its old id."""
    n = len(texts)
    a = np.sort(np.random.default_rng(seed_a).choice(n, int(n * share), replace=False))
    b = np.sort(np.random.default_rng(seed_b).choice(n, int(n * share), replace=False))
    old = TopicMap.fit(vectors[a], [texts[i] for i in a], settings)
    new = TopicMap.fit(vectors[b], [texts[i] for i in b], settings)
    # Members as the pipeline sees them: which old topic each row of the new sample falls in.
    old_idx, _ = classify_vectors(vectors[b], old.centroids, old.threshold)
    old_members = [set(np.flatnonzero(old_idx == j).tolist()) for j in range(len(old.topics))]
    new_members = [set(np.flatnonzero(new.labels == t.index).tolist()) for t in new.topics]
    assignment = match_ids(old.centroids, old_members, new.centroids, new_members, settings.match_min_similarity)
    kept = np.array([j is not None for j in assignment])
    idx, _ = new.classify(vectors)
    labelled = idx >= 0
    return {"kept_share": float(kept[idx[labelled]].sum() / max(labelled.sum(), 1)),
            "topics_old": len(old.topics), "topics_new": len(new.topics), "topics_kept": int(kept.sum())}
