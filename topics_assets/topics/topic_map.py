"""A topic map: clusters of facet embeddings with centroids in the ORIGINAL embedding space.

`fit` builds one from a sample with an injectable reducer and clusterer; `classify` labels any
vector by nearest centroid (no LLM, `no_match` beyond the threshold). Carrying topic ids across
generations is identity.py's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ClusterSettings
from .cluster import NOISE, Clusterer, Reducer, build_components, cluster
from .keywords import ctfidf_keywords

NO_MATCH = "no_match"
# Rows per block: the similarity block (CHUNK x topics float32) stays a few MB, so memory is bounded
# by the chunk, not by the input (a memory-mapped file of any length works).
CHUNK = 8_192


@dataclass
class Topic:
    index: int  # cluster index within this fit
    size: int
    centroid: np.ndarray
    keywords: list[str]
    examples: list[str]  # members closest to the centroid
    dominant_text: str | None = None  # the text of at least half the members, if there is one
    topic_id: str | None = None
    name: str | None = None
    description: str | None = None


@dataclass
class TopicMap:
    topics: list[Topic]
    threshold: float
    noise_share: float
    min_cluster_size: int
    labels: np.ndarray  # per sampled row: cluster index or NOISE

    @property
    def centroids(self) -> np.ndarray:
        if not self.topics:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([t.centroid for t in self.topics]).astype(np.float32)

    @classmethod
    def fit(cls, vectors: np.ndarray, texts: list[str], settings: ClusterSettings, reducer: Reducer | None = None,
            clusterer: Clusterer | None = None, n_examples: int = 5) -> TopicMap:
        """Any object with `fit_transform` (reducer) or `fit_predict` (clusterer) may replace the
        defaults that `build_components(settings)` makes; topics are the non-noise labels."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if reducer is None or clusterer is None:
            default_reducer, default_clusterer = build_components(settings)
            reducer = default_reducer if reducer is None else reducer
            clusterer = default_clusterer if clusterer is None else clusterer
        result = cluster(vectors, settings, reducer, clusterer)
        labels = result.labels
        keywords = ctfidf_keywords(texts, labels, settings.n_keywords)
        topics: list[Topic] = []
        member_dists: list[np.ndarray] = []
        for c in sorted(keywords):
            idx = np.flatnonzero(labels == c)
            centroid = vectors[idx].mean(axis=0)
            centroid /= max(np.linalg.norm(centroid), 1e-12)
            d = 1.0 - vectors[idx] @ centroid
            member_dists.append(d)
            seen: list[str] = []
            for i in idx[np.argsort(d)]:
                if texts[i] not in seen:
                    seen.append(texts[i])
                if len(seen) >= n_examples:
                    break
            values, counts = np.unique(np.asarray([texts[i] for i in idx], dtype=object), return_counts=True)
            dominant = str(values[counts.argmax()]) if counts.max() * 2 >= len(idx) else None
            topics.append(Topic(int(c), len(idx), centroid.astype(np.float32), keywords[c], seen, dominant))
        if settings.threshold is not None:
            threshold = float(settings.threshold)
        elif member_dists:
            # From the map's own spread: most members fall inside it, outliers do not.
            threshold = float(np.quantile(np.concatenate(member_dists), settings.threshold_quantile))
        else:
            threshold = 0.0
        noise_share = float(np.mean(labels == NOISE)) if len(labels) else 0.0
        return cls(topics, threshold, noise_share, result.min_cluster_size, labels)

    def classify(self, vectors: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid per row: (topic position or -1 for no_match, cosine distance)."""
        return classify_vectors(vectors, self.centroids, self.threshold, chunk)


def classify_vectors(vectors: np.ndarray, centroids: np.ndarray, threshold: float,
                     chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by cosine (unit vectors), streamed over `vectors` in blocks of `chunk` rows."""
    n = len(vectors)
    idx = np.full(n, -1, dtype=np.int64)
    dist = np.ones(n, dtype=np.float32)
    if n == 0 or len(centroids) == 0:
        return idx, dist
    for start, (i, d) in zip(range(0, n, chunk), classify_chunks(
            (vectors[s:s + chunk] for s in range(0, n, chunk)), centroids, threshold)):
        idx[start:start + len(i)] = i
        dist[start:start + len(d)] = d
    return idx, dist


def classify_chunks(chunks, centroids: np.ndarray, threshold: float):
    """Generator form for unbounded streams: yields (topic position or -1, distance) per input chunk."""
    c = np.ascontiguousarray(np.asarray(centroids, dtype=np.float32).T)
    buf = None
    for block in chunks:
        block = np.asarray(block, dtype=np.float32)
        m = len(block)
        if m == 0 or c.shape[1] == 0:
            yield np.full(m, -1, dtype=np.int64), np.ones(m, dtype=np.float32)
            continue
        if buf is None or len(buf) < m:
            buf = np.empty((m, c.shape[1]), dtype=np.float32)
        sims = np.matmul(block, c, out=buf[:m])
        best = sims.argmax(axis=1)
        d = 1.0 - np.take_along_axis(sims, best[:, None], axis=1).ravel()
        yield np.where(d <= threshold, best, -1), d
