"""The 2-D picture of a map's sample, made from the coordinates the clusterer already saw.

A second UMAP to two dimensions would cost about as much as the first; instead the reduced
coordinates (UMAP's few dimensions, where the clusters are dense and apart) are projected onto
their two principal axes, every row the reducer did not see takes the place of the reduced row
that stands for it (its nearest core row, or its own text), and a small seeded jitter keeps copies
of one text visible as a cloud. Milliseconds at 50,000 rows (benchmarks/bench_explore.py).
"""

from __future__ import annotations

import numpy as np

JITTER = 0.01  # of the layout's half-width


def principal_2d(x: np.ndarray) -> np.ndarray:
    """Rows onto their two principal axes (fewer columns are padded with zeros), scaled into [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    centred = x - x.mean(axis=0)
    if x.shape[1] > 2:
        _, vecs = np.linalg.eigh(centred.T @ centred)
        out = centred @ vecs[:, ::-1][:, :2]
    else:
        out = np.hstack([centred, np.zeros((len(x), 2 - x.shape[1]))])
    scale = np.abs(out).max()
    return (out / scale if scale > 0 else out).astype(np.float32)


def layout_2d(reduced: np.ndarray, anchor: np.ndarray | None, inverse: np.ndarray, seed: int = 0) -> np.ndarray:
    """(rows, 2) positions: row i sits at the projected reduced row `anchor[inverse[i]]` (its unique
    text's stand-in; `anchor` None when every unique text was reduced), jittered."""
    base = principal_2d(reduced)
    inverse = np.asarray(inverse, dtype=np.int64)
    if len(inverse) == 0 or len(base) == 0:
        return np.zeros((len(inverse), 2), dtype=np.float32)
    unique_pos = base if anchor is None else base[np.asarray(anchor, dtype=np.int64)]
    rng = np.random.default_rng(seed)
    return (unique_pos[inverse] + rng.normal(0.0, JITTER, (len(inverse), 2))).astype(np.float32)
