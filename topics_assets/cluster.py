"""Density clustering of facet embeddings: UMAP down to a few dimensions, then HDBSCAN.

HDBSCAN needs no k up front and leaves noise as noise (label -1). Keywords per cluster come
from class-based TF-IDF over the members' texts.
"""

from __future__ import annotations

import os
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
    reduced: np.ndarray  # (n, n_components) coordinates used for clustering
    min_cluster_size: int


def _enable_numba_cache() -> None:
    # Compiled UMAP kernels are cached on disk so the second run skips the JIT.
    if "NUMBA_CACHE_DIR" not in os.environ:
        cache = os.path.join(os.path.expanduser("~"), ".cache", "topics-numba")
        os.makedirs(cache, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = cache


def reduce(vectors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    n = len(vectors)
    if n <= settings.n_components + 2:
        return vectors
    _enable_numba_cache()
    import umap

    reducer = umap.UMAP(
        n_neighbors=min(settings.n_neighbors, n - 1),
        n_components=settings.n_components,
        min_dist=0.0,
        metric="cosine",
        random_state=settings.random_state,
        low_memory=True,
    )
    return reducer.fit_transform(vectors).astype(np.float32)


def cluster(vectors: np.ndarray, settings: ClusterSettings) -> Clustering:
    n = len(vectors)
    mcs = settings.min_cluster_size or default_min_cluster_size(n)
    if n < 2 * mcs:
        return Clustering(np.full(n, NOISE), vectors, mcs)
    reduced = reduce(vectors, settings)
    import hdbscan

    model = hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=max(2, min(mcs, 10)),
        metric="euclidean",
        cluster_selection_method="eom",
        core_dist_n_jobs=1,
    )
    labels = model.fit_predict(reduced)
    return Clustering(labels.astype(int), reduced, mcs)


def ctfidf_keywords(texts: list[str], labels: np.ndarray, n_keywords: int = 8) -> dict[int, list[str]]:
    """Class-based TF-IDF (one document per cluster): words frequent here and rare elsewhere."""
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted(int(c) for c in set(labels.tolist()) if c != NOISE)
    if not clusters:
        return {}
    docs = [" ".join(t for t, l in zip(texts, labels) if l == c) for c in clusters]
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
