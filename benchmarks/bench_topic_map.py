"""Topic map generation (reduction, clustering, keywords, centroids) vs BERTopic, side by side.

Both systems get the same embeddings and texts: banking77's train split grown to 50,000 facets with
light, label-keeping variation (greetings, sign-offs, case, one typo), embedded once with our local
model and cached. Prints one JSON object: fit time, ARI, NMI and noise share for both, the no_match
rate of the test split, a foreign-domain no_match rate, and the cost-growth table.

    python benchmarks/bench_topic_map.py            # 50k, with BERTopic and the scaling table
    python benchmarks/bench_topic_map.py --quick    # 10k, no scaling table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77"
CACHE = Path(os.environ.get("TOPICS_BENCH_CACHE", Path.home() / ".cache" / "topics-bench"))

PREFIXES = ["", "", "hi, ", "hello, ", "hey ", "quick question: ", "please help: ", "excuse me, ", "hi there. "]
SUFFIXES = ["", "", " thanks", " thank you!", " please", " asap", "??", " Thanks in advance."]

# Texts from other domains: they should mostly come out as no_match against a banking map.
FOREIGN = [
    "What's the best way to cook risotto without it turning mushy?",
    "My tomato plants have yellow leaves at the bottom, what should I do?",
    "Can you recommend a good sci-fi novel for a long flight?",
    "How do I fix a segmentation fault in my C program?",
    "The python script throws KeyError when reading the config file",
    "Who won the football world cup in 2010?",
    "How many moons does Jupiter have?",
    "Write a haiku about autumn rain",
    "What is the difference between a violin and a viola?",
    "My cat keeps scratching the sofa, how do I stop her?",
    "Translate 'good morning' into Japanese",
    "Is it safe to hike in the Alps in early spring?",
    "How long should I boil an egg for a runny yolk?",
    "Explain the theory of relativity in simple words",
    "My docker container exits immediately after starting",
    "What are the symptoms of vitamin D deficiency?",
    "Suggest a workout routine for building leg strength",
    "How do I change the oil in a 2015 Honda Civic?",
    "What time does the museum open on Sundays?",
    "Recommend some board games for a family of four",
    "The kubernetes pod is stuck in CrashLoopBackOff",
    "Summarise the plot of Hamlet",
    "How do I get red wine out of a white carpet?",
    "What's the weather going to be like in Lisbon next week?",
    "How do I tune my guitar to drop D?",
    "Which houseplants are safe for dogs?",
    "Write a SQL query that returns the top five customers by order count",
    "How do volcanoes form?",
    "Plan a three day itinerary for Kyoto",
    "The printer says paper jam but there is no paper inside",
    "Why is the sky blue?",
    "How do I make sourdough starter from scratch?",
    "What's a good name for a golden retriever puppy?",
    "My laptop fan is very loud when I play games",
    "Help me write a cover letter for a nursing job",
    "What are the rules of cricket?",
    "How do I set up a React project with TypeScript?",
    "When is the best time to plant tulip bulbs?",
    "Tell me a joke about penguins",
    "How far is the moon from the earth?",
]


def vary(text: str, rng: random.Random) -> str:
    """A light, label-keeping rewrite: greeting, sign-off, case, at most one adjacent-letter swap."""
    t = text.strip()
    if rng.random() < 0.4:
        t = t.lower()
    if rng.random() < 0.5:
        words = t.split()
        long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if long:
            i = rng.choice(long)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            t = " ".join(words)
    return (rng.choice(PREFIXES) + t + rng.choice(SUFFIXES)).strip()


def banking77_grown(n: int, seed: int = 0) -> pd.DataFrame:
    """The train split, then label-keeping variants of it until there are n rows (shuffled)."""
    train = pd.read_csv(DATA / "train.csv")
    rng = random.Random(seed)
    rows = list(zip(train.text, train.category))
    out = rows[:n] if n <= len(rows) else list(rows)
    while len(out) < n:
        text, cat = rows[rng.randrange(len(rows))]
        out.append((vary(text, rng), cat))
    rng.shuffle(out)
    return pd.DataFrame(out, columns=["text", "category"])


def embedder():
    """all-MiniLM-L6-v2 on PyTorch, the reference model: both systems get the same vectors either way
    (bench_embed.py shows the shipped ONNX runtime keeps clustering quality)."""
    from topics_assets.embed import TorchEmbedder

    return TorchEmbedder()


def cached_embeddings(texts: list[str]) -> np.ndarray:
    """Embed once per (model, texts); later runs read the cache."""
    from topics_assets.embed import embed_unique

    emb = embedder()
    key = hashlib.sha256((emb.model_id + "\n" + "\n".join(texts)).encode()).hexdigest()[:20]
    path = CACHE / f"emb-{key}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    vecs = embed_unique(emb, texts)
    np.save(path, vecs)
    return vecs


def dataset(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The first n rows of one shuffled 50k set (a random sample of it), embeddings cached once."""
    full = banking77_grown(max(n, 50_000))
    vectors = cached_embeddings(full.text.tolist())
    return full.iloc[:n].reset_index(drop=True), vectors[:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scores(categories, labels) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels)
    return {"ari": round(float(adjusted_rand_score(categories, labels)), 4),
            "nmi": round(float(normalized_mutual_info_score(categories, labels)), 4),
            "noise_share": round(float(np.mean(labels == -1)), 4),
            "topics": int(len(set(labels.tolist()) - {-1}))}


def fit_ours(vectors, texts, settings):
    from topics_assets.topics.topic_map import TopicMap

    t0 = time.perf_counter()
    tm = TopicMap.fit(vectors, texts, settings)
    return tm, time.perf_counter() - t0


def fit_bertopic(vectors, texts, min_topic_size: int):
    """BERTopic as shipped: default UMAP + HDBSCAN + c-TF-IDF, our minimum topic size, our embeddings."""
    from bertopic import BERTopic

    model = BERTopic(min_topic_size=min_topic_size, calculate_probabilities=False, verbose=False)
    t0 = time.perf_counter()
    topics, _ = model.fit_transform(texts, embeddings=vectors)
    return np.asarray(topics), time.perf_counter() - t0


def scaling_table(sizes: list[int]) -> list[dict]:
    """Each size in a fresh process, so peak memory is that size's own."""
    import subprocess

    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for r in rows:
        r["peak_alloc_per_n_vs_smallest"] = round((r["peak_alloc_mb"] / r["n"]) / (base["peak_alloc_mb"] / base["n"]), 2)
        r["time_per_n_log_n_vs_smallest"] = round(
            (r["fit_s"] / (r["n"] * np.log(r["n"]))) / (base["fit_s"] / (base["n"] * np.log(base["n"]))), 2)
    return rows


def one_size(n: int) -> dict:
    from topics_assets.config import ClusterSettings

    df, vectors = dataset(n)
    texts = df.text.tolist()
    import tracemalloc

    fit_ours(vectors[:1000], texts[:1000], ClusterSettings())  # imports and numba cache loads are not the fit
    tracemalloc.start()
    tm, secs = fit_ours(vectors, texts, ClusterSettings())
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"n": n, "fit_s": round(secs, 2), "peak_alloc_mb": round(peak, 1),
            "input_mb": round(vectors.nbytes / 2**20, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "topics": len(tm.topics), **scores(df.category, tm.labels)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10k facets, no scaling table")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--no-bertopic", action="store_true")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--scaling-only", action="store_true")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    if args.scaling_only:
        print(json.dumps({"benchmark": "topic_map_scaling", "scaling": scaling_table([5_000, 10_000, 25_000, 50_000]),
                          "target": "time and memory grow no faster than n log n"}, indent=1))
        return
    from topics_assets.topics.cluster import default_min_cluster_size
    from topics_assets.config import ClusterSettings
    n = args.n or (10_000 if args.quick else 50_000)
    df, vectors = dataset(n)
    texts = df.text.tolist()
    settings = ClusterSettings()
    mcs = settings.min_cluster_size or default_min_cluster_size(n)

    # Warm both systems' imports and JIT on a small slice so neither pays compilation in the timing.
    fit_ours(vectors[:5000], texts[:5000], settings)
    tm, ours_s = fit_ours(vectors, texts, settings)
    ours = {"fit_s": round(ours_s, 2), **scores(df.category, tm.labels), "min_cluster_size": tm.min_cluster_size}

    test = pd.read_csv(DATA / "test.csv")
    emb = embedder()
    idx, _ = tm.classify(emb.embed(test.text.tolist()))
    ours["test_no_match_rate"] = round(float(np.mean(idx < 0)), 4)
    fidx, _ = tm.classify(emb.embed(FOREIGN))
    ours["foreign_no_match_rate"] = round(float(np.mean(fidx < 0)), 4)
    ours["threshold"] = round(tm.threshold, 4)

    result = {"benchmark": "topic_map_generation", "n_facets": n, "data": "banking77 train grown with variants",
              "machine": f"{os.cpu_count()} cores, {platform.machine()}", "ours": ours}
    if not args.no_bertopic:
        fit_bertopic(vectors[:5000], texts[:5000], mcs)  # >4096 rows: NN-descent's JIT too
        labels, bt_s = fit_bertopic(vectors, texts, mcs)
        result["bertopic"] = {"fit_s": round(bt_s, 2), **scores(df.category, labels), "min_topic_size": mcs,
                              "version": __import__("bertopic").__version__}
        result["speedup"] = round(bt_s / ours_s, 2)
        result["target"] = "ours.fit_s <= bertopic.fit_s / 2 and ours ARI, NMI >= bertopic's"
        result["met"] = bool(ours_s <= bt_s / 2 and ours["ari"] >= result["bertopic"]["ari"]
                             and ours["nmi"] >= result["bertopic"]["nmi"])
    if not args.quick and not args.no_scaling:
        result["scaling"] = scaling_table([5_000, 10_000, 25_000, 50_000])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
