"""Density clustering of reduced facet embeddings: unique texts weighted by their counts, a minimum
topic size chosen from the data, and the core sample that bounds the cost.

The default clusterer is HDBSCAN: no k up front, noise stays noise (label -1). Each distinct text is
one point for the reducer (copies would only crowd its neighbour graph) and `count` points for the
clusterer (a text said 200 times is as dense as it is frequent), so one text always lands in one
cluster. Past `core_sample` unique texts, the reducer and the clusterer run on a seeded sample and
the other texts join their nearest sampled neighbour's cluster, so map generation grows linearly
beyond it (benchmarks/bench_topic_map.py measures both claims).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, clone

from ..config import ClusterSettings
from .reduce import UMAPReducer

NOISE = -1


class Reducer(Protocol):
    """UMAPReducer, sklearn's PCA, ...: rows in, fewer columns out."""

    def fit_transform(self, X: np.ndarray) -> np.ndarray: ...


class Clusterer(Protocol):
    """HDBSCANClusterer, sklearn's KMeans, ...: one label per row, NOISE (-1) for none."""

    def fit_predict(self, X: np.ndarray) -> Any: ...


def default_min_cluster_size(n: int) -> int:
    """The fallback when no candidate can be scored: 0.5% of the sample, 10 to 500."""
    return int(max(10, min(500, round(n * 0.005))))


def min_cluster_size_candidates(n: int) -> list[int]:
    """Sizes from 10 (BERTopic's default; below it templated texts shatter into near-copies) up to a
    tenth of the sample (at most 1,000), each about 1.4x the last: fine sets (~30 a class) and coarse
    ones (~1,000 a class) both have their right size among them."""
    out, k = [], 0
    while True:
        m = int(round(10 * 2 ** (k / 2)))
        if m > max(10, min(n // 10, 1_000)):
            return out
        out.append(m)
        k += 1


class HDBSCANClusterer(ClusterMixin, BaseEstimator):
    """HDBSCAN (excess of mass) on the reduced coordinates; `min_cluster_size=None` means the caller
    chooses it from the data (`cluster` tries candidates and keeps the most valid clustering)."""

    def __init__(self, min_cluster_size: int | None = None, min_samples: int | None = None):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples

    def _model(self, n: int):
        import hdbscan

        mcs = self.min_cluster_size or default_min_cluster_size(n)
        return hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=self.min_samples or max(2, min(mcs, 10)),
                               metric="euclidean", cluster_selection_method="eom", core_dist_n_jobs=1)

    def fit(self, X, y=None) -> HDBSCANClusterer:
        model = self._model(len(X))
        self.labels_ = model.fit_predict(np.asarray(X, dtype=np.float64)).astype(int)
        return self


def build_components(settings: ClusterSettings, min_cluster_size: int | None = None) -> tuple[UMAPReducer, HDBSCANClusterer]:
    """The default reducer and clusterer from settings; `min_cluster_size` overrides the setting
    (ad hoc exploration wants finer topics) without copying the settings."""
    reducer = UMAPReducer(n_components=settings.n_components, n_neighbors=settings.n_neighbors,
                          pca_components=settings.pca_components, n_epochs=settings.n_epochs,
                          init=settings.umap_init, random_state=settings.random_state)
    clusterer = HDBSCANClusterer(min_cluster_size=min_cluster_size or settings.min_cluster_size,
                                 min_samples=settings.min_samples)
    return reducer, clusterer


@dataclass
class Clustering:
    labels: np.ndarray  # (n,) per unique row: cluster index or NOISE
    reduced: np.ndarray  # (core, n_components) coordinates of the rows that were density-clustered
    min_cluster_size: int  # in units of the whole (weighted) sample
    core: np.ndarray | None = None  # row indices that were density-clustered (None = all rows)
    candidates: dict[int, float] | None = None  # min cluster size tried -> validity, when chosen from the data
    anchor: np.ndarray | None = None  # (n,) per row: the position in `core` of the reduced row standing for it


def _sized(clusterer: Clusterer, min_cluster_size: int) -> Clusterer:
    """A copy told the smallest cluster size, for clusterers that take one (HDBSCAN, sklearn's HDBSCAN);
    others (KMeans, a custom object) are used as given."""
    get_params = getattr(clusterer, "get_params", None)
    if get_params is None or "min_cluster_size" not in get_params():
        return clusterer
    return clone(clusterer).set_params(min_cluster_size=min_cluster_size)


def _chooses_size(clusterer: Clusterer) -> bool:
    get_params = getattr(clusterer, "get_params", None)
    return get_params is not None and "min_cluster_size" in get_params() and not get_params()["min_cluster_size"]


def _nearest_core(x: np.ndarray, rest: np.ndarray, core: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Each non-core row's nearest core row (its position in `core`; cosine, PCA space): the row takes
    that one's label, so the same density structure extends to every facet at the cost of one blocked
    matrix product, and its place on the 2-D map."""
    c = np.ascontiguousarray(x[core].T)
    out = np.empty(len(rest), dtype=np.int64)
    for s in range(0, len(rest), chunk):
        sims = x[rest[s:s + chunk]] @ c
        out[s:s + chunk] = sims.argmax(axis=1)
    return out


def _per_unique(expanded_labels: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """The label of each unique row from its copies' labels: the most common one (copies are identical
    points, so they agree; the vote only makes 'one text, one cluster' hold for any clusterer)."""
    owner = np.repeat(np.arange(len(rep)), rep)
    shifted = expanded_labels - NOISE  # noise -> 0
    table = np.zeros((len(rep), int(shifted.max()) + 1), dtype=np.int64)
    np.add.at(table, (owner, shifted), 1)
    return table.argmax(axis=1) + NOISE


def cluster(vectors: np.ndarray, settings: ClusterSettings, reducer: Reducer, clusterer: Clusterer,
            weights: np.ndarray | None = None,
            score: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None,
            prefer: int | None = None) -> Clustering:
    """Reduce + cluster at most `core_sample` unique rows (a seeded random sample), each seen by the
    clusterer `weight` times, then every other row joins the cluster of its nearest sampled neighbour.

    The smallest cluster is the clusterer's `min_cluster_size` (in rows of the weighted sample) when
    it has one; when it is None, each of `min_cluster_size_candidates` is tried on the same reduction
    and the one `score(vectors, weights, labels)` rates highest is kept (topic_map.validity), unless
    `prefer` (the previous generation's size) scores within `keep_size_within` of it: validity differs
    by a few percent between neighbouring sizes, and a regeneration that flips granularity on such a
    margin would retire half the topic ids. Fewer than twice the smallest candidate's rows are all noise."""
    n = len(vectors)
    weights = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    fixed = getattr(clusterer, "min_cluster_size", None)
    choose = score is not None and _chooses_size(clusterer)
    candidates = min_cluster_size_candidates(total) if choose else [fixed or default_min_cluster_size(total)]
    if n < 2 or total < 2 * candidates[0]:
        return Clustering(np.full(n, NOISE), vectors, candidates[0])
    core_n = settings.core_sample
    core = None
    if core_n and n > core_n:
        core = np.sort(np.random.default_rng(settings.random_state).choice(n, core_n, replace=False))
    core_idx = np.arange(n) if core is None else core
    reduced = reducer.fit_transform(vectors[core_idx])
    # The clusterer sees each text as often as it was said, scaled so it sees at most core_sample rows.
    w = weights[core_idx]
    scale = min(1.0, core_n / w.sum()) if core_n else 1.0
    rep = np.maximum(1, np.round(w * scale)).astype(np.int64)
    expanded = np.repeat(reduced, rep, axis=0)
    ratio = rep.sum() / total

    def run(mcs: int) -> np.ndarray:
        core_mcs = max(2, int(round(mcs * ratio)))
        labels = np.asarray(_sized(clusterer, core_mcs).fit_predict(expanded)).astype(int)
        return _per_unique(labels, rep)

    scores: dict[int, float] | None = None
    if len(candidates) == 1:
        mcs, core_labels = candidates[0], run(candidates[0])
    else:
        fits = {m: run(m) for m in candidates}
        scores = {m: round(float(score(vectors[core_idx], w, lab)), 4) for m, lab in fits.items()}
        mcs = max(candidates, key=lambda m: (scores[m], m))  # ties: the larger, coarser size
        if prefer:
            kept = min(candidates, key=lambda m: abs(np.log(m / prefer)))
            if scores[kept] >= (1 - settings.keep_size_within) * scores[mcs]:
                mcs = kept
        core_labels = fits[mcs]
    if core is None:
        return Clustering(core_labels, reduced, mcs, None, scores)
    # Rows left out find their neighbour in the reducer's linear space when it has one (the PCA).
    x = reducer.project(vectors) if hasattr(reducer, "project") else vectors
    labels = np.empty(n, dtype=int)
    labels[core] = core_labels
    rest = np.setdiff1d(np.arange(n), core, assume_unique=True)
    anchor = np.empty(n, dtype=np.int64)
    anchor[core] = np.arange(len(core))
    anchor[rest] = _nearest_core(x, rest, core)
    labels[rest] = core_labels[anchor[rest]]
    return Clustering(labels, reduced, mcs, core, scores, anchor)
