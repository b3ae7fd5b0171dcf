"""Classification of 1,000,000 facet embeddings against a 300-topic map, streamed in chunks.

The vectors live in a .npy file on disk (memory-mapped), so the classifier only ever holds one chunk
and its similarity block. Time is wall time over all 1M rows (file in page cache); memory is the peak
of Python/numpy allocations during classification (tracemalloc), i.e. what the classifier itself
allocates. Peers in the same run: the same nearest-centroid maths done naively (one full similarity
matrix), and BERTopic's `transform` with precomputed embeddings (UMAP transform + HDBSCAN
approximate_predict), timed on a slice and scaled to 1M.

    python benchmarks/bench_classify.py [--quick] [--no-bertopic]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("TOPICS_BENCH_CACHE", Path.home() / ".cache" / "topics-bench"))
DIM = 384


def synthetic(n: int, k: int, seed: int = 0) -> tuple[Path, np.ndarray]:
    """k unit centroids and n unit vectors scattered around them (10% far from all), written once."""
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((k, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    path = CACHE / f"classify-{n}-{k}-{seed}.npy"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, DIM))
        for s in range(0, n, 100_000):
            m = min(100_000, n - s)
            x = centroids[rng.integers(0, k, m)] + 0.06 * rng.standard_normal((m, DIM)).astype(np.float32)
            far = rng.random(m) < 0.1
            x[far] = rng.standard_normal((int(far.sum()), DIM)).astype(np.float32)
            out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        out.flush()
        del out
        os.replace(path.with_suffix(".tmp.npy"), path)
    return path, centroids


def timed(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    secs = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, secs, peak / 2**20


def naive(vectors: np.ndarray, centroids: np.ndarray, threshold: float):
    sims = np.asarray(vectors) @ centroids.T
    best = sims.argmax(axis=1)
    d = 1.0 - sims[np.arange(len(sims)), best]
    return np.where(d <= threshold, best, -1), d


def bertopic_rate(n_slice: int) -> dict:
    """BERTopic fitted on 10k banking77 facets; transform() rate on n_slice of their variants."""
    import bench_topic_map as btm
    from bertopic import BERTopic

    df, vecs = btm.dataset(10_000 + n_slice)
    model = BERTopic(min_topic_size=50, calculate_probabilities=False, verbose=False)
    model.fit(df.text[:10_000].tolist(), embeddings=vecs[:10_000])
    texts = df.text[10_000:].tolist()
    model.transform(texts[:200], embeddings=vecs[10_000:10_200])  # numba JIT of UMAP's transform
    t0 = time.perf_counter()
    model.transform(texts, embeddings=vecs[10_000:])
    secs = time.perf_counter() - t0
    return {"rows_timed": n_slice, "seconds": round(secs, 2), "rows_per_s": round(n_slice / secs),
            "extrapolated_1m_s": round(secs * 1_000_000 / n_slice, 1), "topics": len(model.get_topic_info()) - 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100k rows")
    ap.add_argument("--no-bertopic", action="store_true")
    args = ap.parse_args()
    from topics_assets.topics.topic_map import classify_vectors

    n, k = (100_000 if args.quick else 1_000_000), 300
    path, centroids = synthetic(n, k)
    vectors = np.load(path, mmap_mode="r")
    threshold = 0.35
    np.asarray(vectors[:]).sum()  # page the file in: we time classification, not the disk
    classify_vectors(vectors[:1000], centroids, threshold)  # BLAS warm-up

    # Best of three: the machine is shared, the minimum is the least disturbed run.
    runs = [timed(lambda: classify_vectors(vectors, centroids, threshold)) for _ in range(3)]
    (idx, dist), secs, peak_mb = min(runs, key=lambda r: r[1])
    all_secs = sorted(round(r[1], 3) for r in runs)
    result = {"benchmark": "classify", "rows": n, "topics": k, "dim": DIM,
              "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "ours": {"seconds": round(secs, 3), "all_runs_s": all_secs, "rows_per_s": round(n / secs),
                       "peak_alloc_mb": round(peak_mb, 1), "output_mb": round((idx.nbytes + dist.nbytes) / 2**20, 1),
                       "no_match_rate": round(float(np.mean(idx < 0)), 4)}}
    (nidx, ndist), nsecs, npeak = timed(lambda: naive(vectors, centroids, threshold))
    assert np.array_equal(nidx, idx), "chunked and naive classification disagree"
    result["naive_numpy"] = {"seconds": round(nsecs, 3), "peak_alloc_mb": round(npeak, 1)}
    if not args.no_bertopic:
        result["bertopic_transform"] = bertopic_rate(5_000)
    result["target"] = "1M rows x 300 topics in < 5 s, memory bounded by the chunk size"
    result["met"] = bool(n == 1_000_000 and secs < 5.0 and peak_mb < 200)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
