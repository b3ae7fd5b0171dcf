"""A topic map: clusters of facet embeddings with centroids in the ORIGINAL embedding space.

`fit` builds one from a sample with an injectable reducer and clusterer; `classify` labels any
vector by nearest centroid (no LLM, `no_match` beyond that topic's own distance threshold). The map
describes exactly what classification will do with its own sample: its labels, sizes, keywords and
examples are those of the sample classified by it. Carrying topic ids across generations is
identity.py's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ClusterSettings
from .cluster import NOISE, Clusterer, Reducer, build_components, cluster
from .keywords import ctfidf_keywords
from .layout import layout_2d

NO_MATCH = "no_match"
# Rows per block: the similarity block (CHUNK x topics float32) stays a few MB, so memory is bounded
# by the chunk, not by the input (a memory-mapped file of any length works).
CHUNK = 8_192


@dataclass
class Topic:
    index: int  # position within this fit (labels hold it)
    size: int  # sample rows classification gives this topic
    centroid: np.ndarray
    keywords: list[str]
    examples: list[str]  # members closest to the centroid
    dominant_text: str | None = None  # the text of at least half the members, if there is one
    topic_id: str | None = None
    name: str | None = None
    description: str | None = None
    threshold: float | None = None  # cosine distance beyond which a row is no_match for this topic


class CentroidTable:
    """Stacked centroids and per-topic thresholds of a map's `topics` (each with `centroid` and
    `threshold`; a topic without one uses the map's `threshold`): what classification takes."""

    topics: list
    threshold: float

    @property
    def centroids(self) -> np.ndarray:
        if not self.topics:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([t.centroid for t in self.topics]).astype(np.float32)

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([self.threshold if t.threshold is None else t.threshold for t in self.topics], dtype=np.float32)


@dataclass
class TopicMap(CentroidTable):
    topics: list[Topic]
    threshold: float  # the median of the topics' thresholds: a summary for the generation row
    noise_share: float  # share of the sample that classification leaves no_match
    min_cluster_size: int
    labels: np.ndarray  # per sampled row: topic index as classification gives it, or NOISE
    cluster_labels: np.ndarray | None = None  # per sampled row: the clusterer's own label (merged), or NOISE
    cluster_noise_share: float = 0.0  # share the clusterer left as noise
    candidates: dict[int, float] | None = None  # min cluster sizes tried -> validity
    xy: np.ndarray | None = None  # per sampled row: its place on the 2-D map (layout.py)
    @classmethod
    def fit(cls, vectors: np.ndarray, texts: list[str], settings: ClusterSettings, reducer: Reducer | None = None,
            clusterer: Clusterer | None = None, n_examples: int = 5,
            prefer_min_cluster_size: int | None = None) -> TopicMap:
        """Any object with `fit_transform` (reducer) or `fit_predict` (clusterer) may replace the
        defaults that `build_components(settings)` makes. `prefer_min_cluster_size`: the previous
        generation's size, in rows of this sample, kept unless another is clearly more valid.

        Distinct texts are clustered once, weighted by their counts; clusters whose centroids are
        near-identical (`merge_similarity`) are merged; each topic's threshold comes from its own
        members' distances; then the sample is classified with the result, so that a topic's size,
        keywords and examples are what the map will label."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if reducer is None or clusterer is None:
            default_reducer, default_clusterer = build_components(settings)
            reducer = default_reducer if reducer is None else reducer
            clusterer = default_clusterer if clusterer is None else clusterer
        keys = np.asarray([str(t) for t in texts], dtype=object)
        if len(keys) == 0:
            return cls([], 0.0, 0.0, 0, np.zeros(0, dtype=int), np.zeros(0, dtype=int), xy=np.zeros((0, 2), np.float32))
        uniq, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        x = vectors[first]
        result = cluster(x, settings, reducer, clusterer, weights=counts,
                         score=lambda v, w, lab: validity(v, w, lab, settings), prefer=prefer_min_cluster_size)
        raw = _merge_near_identical(x, counts, result.labels, settings.merge_similarity)
        centroids = _centroids(x, counts, raw)
        thresholds = _thresholds(x, counts, raw, centroids, settings)
        while True:  # a topic that labels nothing is dropped and the rest classify again, until none is empty
            labels, _ = classify_vectors(x, centroids, thresholds)
            sizes = np.bincount(labels[labels >= 0], weights=counts[labels >= 0], minlength=len(centroids))
            keep = sizes > 0
            if keep.all() or not keep.any():
                break
            centroids, thresholds = centroids[keep], thresholds[keep]
        row_labels = labels[inverse]
        texts_list = [str(t) for t in keys]
        keywords = ctfidf_keywords(texts_list, row_labels, settings.n_keywords)
        topics: list[Topic] = []
        for k in range(len(centroids)):
            members = np.flatnonzero(labels == k)
            d = 1.0 - x[members] @ centroids[k]
            examples = [str(uniq[i]) for i in members[np.argsort(d, kind="stable")][:n_examples]]
            size = int(counts[members].sum())
            top = members[np.argmax(counts[members])]
            dominant = str(uniq[top]) if counts[top] * 2 >= size else None
            topics.append(Topic(k, size, centroids[k], keywords.get(k, []), examples, dominant,
                                threshold=float(thresholds[k])))
        threshold = float(np.median(thresholds)) if len(thresholds) else 0.0
        n = len(keys)
        raw_rows = raw[inverse]
        xy = layout_2d(result.reduced, result.anchor, inverse, settings.random_state)
        return cls(topics, threshold, float(np.mean(row_labels == NOISE)), result.min_cluster_size, row_labels,
                   raw_rows, float(np.mean(raw_rows == NOISE)) if n else 0.0, result.candidates, xy)

    def classify(self, vectors: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid per row: (topic position or -1 for no_match, cosine distance)."""
        return classify_vectors(vectors, self.centroids, self.thresholds, chunk)


def validity(x: np.ndarray, weights: np.ndarray, labels: np.ndarray, settings: ClusterSettings,
             max_rows: int = 3_000) -> float:
    """How good a map these cluster labels make: how well the map's own classification reproduces them
    (weighted ARI) times how well the classified topics separate the original embeddings (weighted
    silhouette, no_match counted as unexplained). Too fine a size splits one meaning over centroids
    that classification cannot tell apart; too coarse a size merges meanings the silhouette sees."""
    labels = _dense(np.asarray(labels, dtype=int))
    if labels.max(initial=NOISE) < 1:
        return -1.0
    centroids = _centroids(x, weights, labels)
    classified, _ = classify_vectors(x, centroids, _thresholds(x, weights, labels, centroids, settings))
    return _weighted_ari(labels, classified, weights) * _silhouette(x, classified, weights, max_rows,
                                                                      settings.random_state)


def _weighted_ari(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Adjusted Rand index with row weights (a row of weight 3 is three identical rows); noise is a label."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), w.astype(np.float64))

    def pairs(v):
        return float((v * (v - 1) / 2).sum())

    n = float(w.sum())
    index, ra, rb, total = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0)), n * (n - 1) / 2
    expected = ra * rb / total if total else 0.0
    top = (ra + rb) / 2 - expected
    return 1.0 if top == 0 else (index - expected) / top


def _silhouette(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, max_rows: int, seed: int) -> float:
    """Weighted mean cosine silhouette of the labelled rows (copies of a text are members at distance
    0) times the labelled share, on a seeded subsample that bounds the cost."""
    labelled = labels != NOISE
    share = float(weights[labelled].sum() / max(weights.sum(), 1))
    idx = np.flatnonzero(labelled)
    if len(np.unique(labels[idx])) < 2:
        return -1.0
    if len(idx) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_rows, replace=False))
    v, lab, w = x[idx], labels[idx], weights[idx].astype(np.float64)
    ks, own = np.unique(lab, return_inverse=True)
    onehot = (own[:, None] == np.arange(len(ks))[None, :]) * w[:, None]
    tot = onehot.sum(axis=0)
    mean_d = 1.0 - (v @ v.T) @ onehot / np.maximum(tot, 1e-12)
    rows = np.arange(len(lab))
    own_tot = tot[own] - 1
    a = mean_d[rows, own] * tot[own] / np.maximum(own_tot, 1e-12)
    mean_d[rows, own] = np.inf
    b = mean_d.min(axis=1)
    s = np.where(own_tot > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(np.average(s, weights=w) * share)


def _centroids(x: np.ndarray, counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length weighted mean per label 0..k-1 (labels are dense)."""
    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    out = np.zeros((k, x.shape[1]), dtype=np.float64)
    ok = labels >= 0
    np.add.at(out, labels[ok], x[ok].astype(np.float64) * counts[ok, None])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def _dense(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in order of first appearance of each sorted label; noise stays noise."""
    ks = np.unique(labels[labels >= 0])
    return np.where(labels >= 0, np.searchsorted(ks, labels), NOISE)


def _merge_near_identical(x: np.ndarray, counts: np.ndarray, labels: np.ndarray, min_similarity: float) -> np.ndarray:
    """Clusters whose centroids are at least `min_similarity` alike are one meaning: merged (transitively)."""
    labels = _dense(np.asarray(labels, dtype=int))
    c = _centroids(x, counts, labels)
    if len(c) < 2:
        return labels
    parent = list(range(len(c)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sims = c @ c.T
    for i, j in zip(*np.nonzero(np.triu(sims >= min_similarity, 1))):
        a, b = root(int(i)), root(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(len(c))])
    return _dense(np.where(labels >= 0, roots[np.maximum(labels, 0)], NOISE))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(np.searchsorted(cum, q), len(values) - 1)])


# A member whose distance IS the quantile sits on the threshold; float32 products computed in other
# block shapes (the fit's unique texts vs a day's rows) differ in the last bits, so without slack such
# a member could fall out of its own topic at classification.
THRESHOLD_SLACK = 1e-5


def _thresholds(x: np.ndarray, counts: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                settings: ClusterSettings) -> np.ndarray:
    """Per topic: the `threshold_quantile` of its members' distances to its centroid, and at least half
    the distance to the nearest other centroid (a topic of one text still takes its close rewordings).
    An explicit `threshold` setting applies to every topic."""
    k = len(centroids)
    if settings.threshold is not None:
        return np.full(k, float(settings.threshold), dtype=np.float32)
    out = np.zeros(k, dtype=np.float32)
    gaps = np.full(k, 2.0)
    if k > 1:
        sims = centroids @ centroids.T
        np.fill_diagonal(sims, -np.inf)
        gaps = 1.0 - sims.max(axis=1)
    for j in range(k):
        members = np.flatnonzero(labels == j)
        d = 1.0 - x[members] @ centroids[j]
        out[j] = max(_weighted_quantile(d, counts[members].astype(np.float64), settings.threshold_quantile),
                     min(gaps[j] / 2.0, 1.0)) + THRESHOLD_SLACK
    return out


def classify_vectors(vectors: np.ndarray, centroids: np.ndarray, threshold: float | np.ndarray,
                     chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by cosine (unit vectors), streamed over `vectors` in blocks of `chunk` rows.
    `threshold` is one distance for all topics or one per centroid."""
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


def classify_chunks(chunks, centroids: np.ndarray, threshold: float | np.ndarray):
    """Generator form for unbounded streams: yields (topic position or -1, distance) per input chunk."""
    c = np.ascontiguousarray(np.asarray(centroids, dtype=np.float32).T)
    limits = np.broadcast_to(np.asarray(threshold, dtype=np.float32), (c.shape[1],))
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
        yield np.where(d <= limits[best], best, -1), d
