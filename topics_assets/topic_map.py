"""A topic map: clusters of facet embeddings with centroids in the ORIGINAL embedding space.

`fit` builds one from a sample; `classify` labels any vector by nearest centroid (no LLM,
`no_match` beyond the threshold); `match_ids` carries topic identities from the previous
generation to the clusters that continue them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cluster import NOISE, cluster, ctfidf_keywords
from .config import ClusterSettings

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
    def fit(cls, vectors: np.ndarray, texts: list[str], settings: ClusterSettings, n_examples: int = 5) -> TopicMap:
        vectors = np.asarray(vectors, dtype=np.float32)
        result = cluster(vectors, settings)
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


def match_ids(prev_centroids: np.ndarray, prev_members: list[set[str]], new_centroids: np.ndarray,
              new_members: list[set[str]], min_similarity: float) -> list[int | None]:
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
