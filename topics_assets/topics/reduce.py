"""The default reducer: PCA, an exact cosine kNN graph, UMAP to a few dimensions.

PCA first makes every kNN search after it several times cheaper; the exact kNN (blocked matrix
products) replaces UMAP's NN-descent, which needs a numba JIT and is approximate.
"""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def _enable_numba_cache() -> None:
    # Compiled UMAP kernels are cached on disk so the second run skips the JIT.
    if "NUMBA_CACHE_DIR" not in os.environ:
        cache = os.path.join(os.path.expanduser("~"), ".cache", "topics-numba")
        os.makedirs(cache, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = cache


_UMAP_KERNEL_MODULES = ("umap_", "layouts", "utils", "spectral", "distances", "sparse")


@functools.cache
def _cache_umap_kernels() -> None:
    """Most of UMAP's numba kernels are compiled without `cache=True`, so every new process (each
    `topics run`, each Dagster run worker) spent ~10 s compiling them before its first map. Turning
    the disk cache on for them makes that a one-off per machine (a 200-text map in a new process: 10 s -> 2 s)."""
    import importlib

    from numba.core.registry import CPUDispatcher

    for name in _UMAP_KERNEL_MODULES:
        module = importlib.import_module(f"umap.{name}")
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                obj.enable_caching()  # harmless for the few already cached


class UMAPReducer(TransformerMixin, BaseEstimator):
    """PCA to `pca_components` dims (rows re-normalised), exact cosine kNN, UMAP to `n_components`.

    After fitting, `project` applies the fitted PCA to any rows: the space in which rows left out of
    the fit find their nearest fitted neighbour.
    """

    def __init__(self, n_components: int = 5, n_neighbors: int = 20, pca_components: int | None = 64,
                 n_epochs: int | None = None, init: str = "spectral", random_state: int | None = 42):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.pca_components = pca_components
        self.n_epochs = n_epochs
        self.init = init
        self.random_state = random_state

    def fit(self, X, y=None) -> UMAPReducer:
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32)
        self._fit_pca(x)
        x = self.project(x)
        self.embedding_ = self._umap(x)
        return self.embedding_

    def _fit_pca(self, x: np.ndarray) -> None:
        """Eigen-decomposition of the d x d covariance: one pass over the rows, no iterative SVD."""
        k = self.pca_components
        self.pca_mean_ = self.pca_basis_ = None
        if not k or x.shape[1] <= k or len(x) <= k:
            return
        mean = x.mean(axis=0, dtype=np.float64)
        centred = (x - mean).astype(np.float32)
        _, vecs = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        self.pca_mean_ = mean.astype(np.float32)
        self.pca_basis_ = np.ascontiguousarray(vecs[:, ::-1][:, :k].astype(np.float32))

    def project(self, X) -> np.ndarray:
        """The fitted PCA applied to any rows, re-normalised (unchanged rows when PCA was skipped)."""
        x = np.asarray(X, dtype=np.float32)
        if self.pca_basis_ is None:
            return x
        x = (x - self.pca_mean_) @ self.pca_basis_
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def _umap(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n <= self.n_components + 2:
            return x
        _enable_numba_cache()
        import umap

        _cache_umap_kernels()

        k = min(self.n_neighbors, n - 1)
        reducer = umap.UMAP(
            n_neighbors=k,
            n_components=self.n_components,
            min_dist=0.0,
            metric="cosine",
            n_epochs=self.n_epochs,
            init=self.init,
            random_state=self.random_state,
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
