"""Density clustering of facet embeddings: PCA, exact cosine kNN, UMAP to a few dimensions, HDBSCAN.

HDBSCAN needs no k up front and leaves noise as noise (label -1). Keywords per cluster come
from class-based TF-IDF over the members' texts. Past `core_sample` facets, UMAP + HDBSCAN run on
a seeded sample and the other facets join their nearest sampled neighbour's cluster, so map
generation grows linearly beyond it (benchmarks/bench_topic_map.py measures both claims).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from .config import ClusterSettings

NOISE = -1


def default_min_cluster_size(n: int) -> int:
    """Scale with the sample: small maps keep small topics, big maps don't shatter into crumbs."""
    return int(max(10, min(500, round(n * 0.005))))


@dataclass
class Clustering:
    labels: np.ndarray  # (n,) cluster index or NOISE
    reduced: np.ndarray  # (core, n_components) coordinates of the rows that were density-clustered
    min_cluster_size: int  # in units of the whole sample
    core: np.ndarray | None = None  # row indices that were density-clustered (None = all rows)


def _enable_numba_cache() -> None:
    # Compiled UMAP kernels are cached on disk so the second run skips the JIT.
    if "NUMBA_CACHE_DIR" not in os.environ:
        cache = os.path.join(os.path.expanduser("~"), ".cache", "topics-numba")
        os.makedirs(cache, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = cache


def project(vectors: np.ndarray, fit_rows: np.ndarray | None, settings: ClusterSettings) -> np.ndarray:
    """PCA (fitted on `fit_rows`, applied to all) to `pca_components` dims, rows re-normalised, so
    every cosine kNN search after it is several times cheaper. Eigen-decomposition of the d x d
    covariance: one pass over the rows, no iterative SVD."""
    k = settings.pca_components
    if not k or vectors.shape[1] <= k or len(vectors) <= k:
        return vectors
    fit = vectors if fit_rows is None else vectors[fit_rows]
    mean = fit.mean(axis=0, dtype=np.float64)
    centred = (fit - mean).astype(np.float32)
    _, vecs = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    basis = np.ascontiguousarray(vecs[:, ::-1][:, :k].astype(np.float32))
    x = (vectors - mean.astype(np.float32)) @ basis
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def reduce(x: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """UMAP of unit vectors to a few dimensions, on an exact cosine kNN graph."""
    n = len(x)
    if n <= settings.n_components + 2:
        return x
    _enable_numba_cache()
    import umap

    k = min(settings.n_neighbors, n - 1)
    reducer = umap.UMAP(
        n_neighbors=k,
        n_components=settings.n_components,
        min_dist=0.0,
        metric="cosine",
        n_epochs=settings.n_epochs,
        init=settings.umap_init,
        random_state=settings.random_state,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so silences its warning
        low_memory=True,
        precomputed_knn=exact_knn(x, k),
    )
    with warnings.catch_warnings():  # "no search index, so no transform": we never transform
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return reducer.fit_transform(x).astype(np.float32)


def exact_knn(x: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, None]:
    """Exact cosine kNN (self first) by blocked matrix products. On the bounded, PCA-reduced core
    sample this is a second or two of BLAS and, unlike UMAP's NN-descent, needs no numba JIT."""
    n = len(x)
    idx = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float32)
    xt = np.ascontiguousarray(x.T)
    for s in range(0, n, chunk):
        sims = x[s:s + chunk] @ xt
        rows = np.arange(len(sims))
        sims[rows, rows + s] = 2.0  # self first, as UMAP expects
        part = _top_k(sims, k)
        top = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-top, axis=1)
        idx[s:s + chunk] = np.take_along_axis(part, order, axis=1)
        d = 1.0 - np.take_along_axis(top, order, axis=1)
        d[:, 0] = 0.0
        dist[s:s + chunk] = np.maximum(d, 0.0)
    return idx, dist, None


def _top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values (unordered). Partitioning the values and masking
    is several times faster than argpartition; rows with ties at the k-th value fall back to it."""
    kth = np.partition(sims, -k, axis=1)[:, -k]
    flat = np.flatnonzero(sims >= kth[:, None])
    rows, cols = np.divmod(flat, sims.shape[1])
    counts = np.bincount(rows, minlength=len(sims))
    if np.all(counts == k):
        return cols.reshape(len(sims), k)
    out = np.empty((len(sims), k), dtype=np.int64)
    ok = counts == k
    out[ok] = cols[np.repeat(ok, counts)].reshape(-1, k)
    bad = np.flatnonzero(~ok)
    out[bad] = np.argpartition(-sims[bad], k - 1, axis=1)[:, :k]
    return out


def _density_cluster(vectors: np.ndarray, mcs: int, settings: ClusterSettings) -> tuple[np.ndarray, np.ndarray]:
    reduced = reduce(vectors, settings)
    import hdbscan

    min_samples = settings.min_samples or max(2, min(mcs, 10))
    model = hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=min_samples,
        metric="euclidean",
        cluster_selection_method="eom",
        core_dist_n_jobs=1,
    )
    return model.fit_predict(reduced).astype(int), reduced


def _nearest_core_label(vectors: np.ndarray, rest: np.ndarray, core: np.ndarray, core_labels: np.ndarray,
                        chunk: int = 1024) -> np.ndarray:
    """Each non-core row takes the label of its nearest core row (cosine, PCA space): the same
    density structure, extended to every facet at the cost of one blocked matrix product."""
    c = np.ascontiguousarray(vectors[core].T)
    out = np.empty(len(rest), dtype=int)
    for s in range(0, len(rest), chunk):
        sims = vectors[rest[s:s + chunk]] @ c
        out[s:s + chunk] = core_labels[sims.argmax(axis=1)]
    return out


def cluster(vectors: np.ndarray, settings: ClusterSettings) -> Clustering:
    """UMAP + HDBSCAN on at most `core_sample` rows (a seeded random sample), then every other row
    joins the cluster of its nearest sampled neighbour. Cost: one UMAP/HDBSCAN of bounded size plus
    a linear pass, instead of UMAP over the whole sample, the part that dominates BERTopic's time."""
    n = len(vectors)
    mcs = settings.min_cluster_size or default_min_cluster_size(n)
    if n < 2 * mcs:
        return Clustering(np.full(n, NOISE), vectors, mcs)
    core_n = settings.core_sample
    if not core_n or n <= core_n:
        labels, reduced = _density_cluster(project(vectors, None, settings), mcs, settings)
        return Clustering(labels, reduced, mcs)
    rng = np.random.default_rng(settings.random_state)
    core = np.sort(rng.choice(n, core_n, replace=False))
    x = project(vectors, core, settings)
    core_mcs = max(5, int(round(mcs * core_n / n)))
    core_labels, reduced = _density_cluster(x[core], core_mcs, settings)
    labels = np.empty(n, dtype=int)
    labels[core] = core_labels
    rest = np.setdiff1d(np.arange(n), core, assume_unique=True)
    labels[rest] = _nearest_core_label(x, rest, core, core_labels)
    return Clustering(labels, reduced, mcs, core)


def ctfidf_keywords(texts: list[str], labels: np.ndarray, n_keywords: int = 8) -> dict[int, list[str]]:
    """Class-based TF-IDF (one document per cluster): words frequent here and rare elsewhere."""
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted(int(c) for c in set(labels.tolist()) if c != NOISE)
    if not clusters:
        return {}
    members: dict[int, list[str]] = {c: [] for c in clusters}
    for t, l in zip(texts, labels.tolist()):
        if l != NOISE:
            members[l].append(t)
    docs = [" ".join(members[c]) for c in clusters]
    vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1,
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        counts = vectorizer.fit_transform(docs)
    except ValueError:  # only stop words
        return {c: [] for c in clusters}
    counts = counts.astype(np.float64)
    tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
    avg_words = counts.sum() / len(clusters)
    idf = np.log(1 + avg_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf).tocsr()
    vocab = vectorizer.get_feature_names_out()
    out: dict[int, list[str]] = {}
    for row, c in enumerate(clusters):
        r = scores.getrow(row).toarray().ravel()
        order = np.argsort(-r)
        words: list[str] = []
        for i in order:
            if r[i] <= 0 or len(words) >= n_keywords:
                break
            w = vocab[i]
            # Skip a unigram already covered by a chosen bigram and vice versa.
            if any(w in x.split() or x in w.split() for x in words):
                continue
            words.append(w)
        out[c] = words
    return out
