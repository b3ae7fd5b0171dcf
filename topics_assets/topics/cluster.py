"""Density clustering of reduced facet embeddings, and the core sample that bounds its cost.

The default clusterer is HDBSCAN: no k up front, noise stays noise (label -1). Past `core_sample`
facets, the reducer and the clusterer run on a seeded sample and the other facets join their nearest
sampled neighbour's cluster, so map generation grows linearly beyond it
(benchmarks/bench_topic_map.py measures both claims).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

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
    """Scale with the sample: small maps keep small topics, big maps don't shatter into crumbs."""
    return int(max(10, min(500, round(n * 0.005))))


class HDBSCANClusterer(ClusterMixin, BaseEstimator):
    """HDBSCAN (excess of mass) on the reduced coordinates; `min_cluster_size=None` scales it with the rows."""

    def __init__(self, min_cluster_size: int | None = None, min_samples: int | None = None):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples

    def fit(self, X, y=None) -> HDBSCANClusterer:
        import hdbscan

        mcs = self.min_cluster_size or default_min_cluster_size(len(X))
        model = hdbscan.HDBSCAN(
            min_cluster_size=mcs,
            min_samples=self.min_samples or max(2, min(mcs, 10)),
            metric="euclidean",
            cluster_selection_method="eom",
            core_dist_n_jobs=1,
        )
        self.labels_ = model.fit_predict(X).astype(int)
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
    labels: np.ndarray  # (n,) cluster index or NOISE
    reduced: np.ndarray  # (core, n_components) coordinates of the rows that were density-clustered
    min_cluster_size: int  # in units of the whole sample
    core: np.ndarray | None = None  # row indices that were density-clustered (None = all rows)


def _sized(clusterer: Clusterer, min_cluster_size: int) -> Clusterer:
    """A copy told the smallest cluster size, for clusterers that take one (HDBSCAN, sklearn's HDBSCAN);
    others (KMeans, a custom object) are used as given."""
    get_params = getattr(clusterer, "get_params", None)
    if get_params is None or "min_cluster_size" not in get_params():
        return clusterer
    return clone(clusterer).set_params(min_cluster_size=min_cluster_size)


def _nearest_core_label(x: np.ndarray, rest: np.ndarray, core: np.ndarray, core_labels: np.ndarray,
                        chunk: int = 1024) -> np.ndarray:
    """Each non-core row takes the label of its nearest core row (cosine, PCA space): the same
    density structure, extended to every facet at the cost of one blocked matrix product."""
    c = np.ascontiguousarray(x[core].T)
    out = np.empty(len(rest), dtype=int)
    for s in range(0, len(rest), chunk):
        sims = x[rest[s:s + chunk]] @ c
        out[s:s + chunk] = core_labels[sims.argmax(axis=1)]
    return out


def cluster(vectors: np.ndarray, settings: ClusterSettings, reducer: Reducer, clusterer: Clusterer) -> Clustering:
    """Reduce + cluster at most `core_sample` rows (a seeded random sample), then every other row
    joins the cluster of its nearest sampled neighbour. Cost: one reduction/clustering of bounded size
    plus a linear pass, instead of UMAP over the whole sample, the part that dominates BERTopic's time.

    The smallest cluster is the clusterer's `min_cluster_size`, else derived from the sample size;
    fewer than twice that many rows are all noise."""
    n = len(vectors)
    mcs = getattr(clusterer, "min_cluster_size", None) or default_min_cluster_size(n)
    if n < 2 * mcs:
        return Clustering(np.full(n, NOISE), vectors, mcs)
    core_n = settings.core_sample
    if not core_n or n <= core_n:
        reduced = reducer.fit_transform(vectors)
        labels = np.asarray(_sized(clusterer, mcs).fit_predict(reduced)).astype(int)
        return Clustering(labels, reduced, mcs)
    rng = np.random.default_rng(settings.random_state)
    core = np.sort(rng.choice(n, core_n, replace=False))
    reduced = reducer.fit_transform(vectors[core])
    core_mcs = max(5, int(round(mcs * core_n / n)))
    core_labels = np.asarray(_sized(clusterer, core_mcs).fit_predict(reduced)).astype(int)
    # Rows left out find their neighbour in the reducer's linear space when it has one (the PCA).
    x = reducer.project(vectors) if hasattr(reducer, "project") else vectors
    labels = np.empty(n, dtype=int)
    labels[core] = core_labels
    rest = np.setdiff1d(np.arange(n), core, assume_unique=True)
    labels[rest] = _nearest_core_label(x, rest, core, core_labels)
    return Clustering(labels, reduced, mcs, core)
