"""Topic identity across generations, as a pure function of the previous map and the new one.

The cluster, not its name, is the identity: a new cluster that continues a previous one keeps its id,
a new one gets the next number, a previous one nobody continues is retired. Ids are never reused;
the caller reads the next free number (and the previous map) from the store and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .topic_map import CentroidTable, TopicMap, classify_vectors


@dataclass(frozen=True)
class PreviousTopic:
    topic_id: str
    name: str
    description: str
    keywords: tuple[str, ...]
    centroid: np.ndarray
    examples: tuple[str, ...]
    threshold: float | None = None  # None: the generation's


@dataclass(frozen=True)
class PreviousMap(CentroidTable):
    """The active topics of the generation a new fit is matched against."""

    generation: int
    threshold: float
    topics: tuple[PreviousTopic, ...]

    @classmethod
    def from_rows(cls, generation: int, threshold: float | None, rows: Any) -> PreviousMap:
        """From `topic_maps` rows as `Store.load_topics` returns them (a DataFrame)."""
        topics = tuple(PreviousTopic(r.topic_id, r.name, r.description, tuple(r.keywords),
                                     np.asarray(r.centroid, dtype=np.float32), tuple(r.examples),
                                     _threshold(getattr(r, "threshold", None)))
                       for r in rows.itertuples(index=False))
        return cls(generation, float(threshold or 1.0), topics)


@dataclass(frozen=True)
class IdentityAssignment:
    topics: tuple[dict, ...]  # topic_maps rows of the new generation, status 'active'
    retired: tuple[dict, ...]  # previous topics nobody continues, status 'retired', size 0
    n_matched: int
    generation: int


def match_ids(prev_centroids: np.ndarray, prev_members: list[set[int]], new_centroids: np.ndarray,
              new_members: list[set[int]], min_similarity: float) -> list[int | None]:
    """One-to-one match of new clusters to previous ones (Hungarian on centroid similarity,
    boosted by shared members). Returns, per new cluster, the index of the previous one or None."""
    from scipy.optimize import linear_sum_assignment

    if len(prev_centroids) == 0 or len(new_centroids) == 0:
        return [None] * len(new_centroids)
    sim = np.asarray(new_centroids, dtype=np.float64) @ np.asarray(prev_centroids, dtype=np.float64).T
    if any(prev_members) and any(new_members):
        overlap = np.zeros_like(sim)
        for i, a in enumerate(new_members):
            for j, b in enumerate(prev_members):
                if a and b:
                    overlap[i, j] = len(a & b) / len(a | b)
        score = 0.5 * sim + 0.5 * np.maximum(sim, overlap)
    else:
        score = sim
    rows, cols = linear_sum_assignment(-score)
    out: list[int | None] = [None] * len(new_centroids)
    for r, c in zip(rows, cols):
        if sim[r, c] >= min_similarity:
            out[r] = int(c)
    return out


def assign_ids(previous: PreviousMap | None, new: TopicMap, sample_vectors: np.ndarray, next_number: int,
               min_similarity: float, *, project: str, facet: str) -> IdentityAssignment:
    """Ids for `new`, fitted on `sample_vectors`: members as the previous map sees them (this sample
    classified with its centroids) and as the new fit labels them decide, with the centroids, which
    new cluster continues which previous one. Fresh ids go to the biggest new clusters first."""
    generation = (previous.generation if previous is not None else 0) + 1
    ids: dict[int, str] = {}
    retired: list[dict] = []
    if previous is not None and previous.topics:
        prev_idx, _ = classify_vectors(sample_vectors, previous.centroids, previous.thresholds)
        prev_members = [set(np.flatnonzero(prev_idx == j).tolist()) for j in range(len(previous.topics))]
        new_members = [set(np.flatnonzero(new.labels == t.index).tolist()) for t in new.topics]
        assignment = match_ids(previous.centroids, prev_members, new.centroids, new_members, min_similarity)
        ids = {t.index: previous.topics[j].topic_id for t, j in zip(new.topics, assignment) if j is not None}
        kept = set(ids.values())
        retired = [{"project": project, "facet": facet, "generation": generation, "topic_id": p.topic_id,
                    "name": p.name, "description": p.description, "keywords": list(p.keywords), "size": 0,
                    "centroid": p.centroid.tolist(), "examples": list(p.examples), "status": "retired",
                    "threshold": p.threshold}
                   for p in previous.topics if p.topic_id not in kept]
    n_matched = len(ids)
    for topic in sorted(new.topics, key=lambda t: -t.size):
        if topic.index not in ids:
            ids[topic.index] = f"{facet}-{next_number:03d}"
            next_number += 1
    topics = [{"project": project, "facet": facet, "generation": generation, "topic_id": ids[t.index],
               "name": t.name, "description": t.description, "keywords": t.keywords, "size": t.size,
               "centroid": t.centroid.tolist(), "examples": t.examples, "status": "active",
               "threshold": new.threshold if t.threshold is None else t.threshold} for t in new.topics]
    return IdentityAssignment(tuple(topics), tuple(retired), n_matched, generation)


def _threshold(value) -> float | None:
    """A stored per-topic threshold, or None where the row has none (NULL, NaN, a map made before v3)."""
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value
