"""Map quality as users see it: the labels in `trace_topics` against banking77's intents, beside
BERTopic with its defaults on the same embeddings, in the same run.

Two sets: banking77's train split in full (77 intents, ~130 texts each) and subsampled to 30 texts
per intent. Our side runs the real stages on a fresh DuckDB store (facets and vectors written
through the store, `generate_topic_map`, `classify_days`, then `trace_topics` read back), so the
score is of the labels as they land, `no_match` counted as its own label (BERTopic's outliers, -1,
likewise). Also printed: how well classification reproduces the fit on the map's own sample (ARI
between the fit's labels, and the clusterer's own labels, and `trace_topics`), and the no_match
share beside the clusterer's noise share. Prints one JSON object.

    python benchmarks/bench_map_quality.py [--no-bertopic] [--sets full,30]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_topic_map import DATA, cached_embeddings  # noqa: E402  (same directory, same cached vectors)

MODEL = "bench/banking77"
DAY = "2026-01-05"


def scores(truth, labels) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels).astype(str)
    return {"ari": round(float(adjusted_rand_score(truth, labels)), 4),
            "nmi": round(float(normalized_mutual_info_score(truth, labels)), 4)}


def ours(texts: list[str], vectors: np.ndarray, truth) -> dict:
    """Our stages on a real store; the fit is repeated in-process (same seed, same sample) to read its labels."""
    from sklearn.metrics import adjusted_rand_score

    from topics_assets.config import Settings
    from topics_assets.store import DuckDBStore
    from topics_assets.testing.facets import write_facet_vectors
    from topics_assets.topics.stage import classify_days, generate_topic_map
    from topics_assets.topics.topic_map import TopicMap

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home)
        store = DuckDBStore(settings.database_path)
        ids = write_facet_vectors(store, MODEL, texts, vectors, project="bench", day=DAY)
        t0 = time.perf_counter()
        made = generate_topic_map(store=store, settings=settings, project="bench", facet="task", embedder_id=MODEL,
                                  force=True)
        fit_s = time.perf_counter() - t0
        labelled = classify_days(store=store, settings=settings, days=[DAY], project="bench")
        tt = store.query_df("SELECT trace_id, topic_id FROM trace_topics WHERE facet = 'task'").set_index("trace_id")
        landed = tt.topic_id.reindex(ids).fillna("unlabelled").to_numpy()
        rows, sample = store.facet_vectors(MODEL, "task", project="bench", limit_sample=settings.cluster.sample_cap,
                                           seed=settings.cluster.random_state + 1)
        tm = TopicMap.fit(sample, rows.text.tolist(), settings.cluster)
    order = pd.Series(range(len(ids)), index=ids)[rows.trace_id].to_numpy()
    in_sample = landed[order]
    same_fit = sorted(t.size for t in tm.topics) == sorted(t["size"] for t in made.topics)
    nm = float(np.mean(in_sample == "no_match"))
    return {**scores(truth, landed), "topics": made.n_topics, "no_match_share": round(float(np.mean(landed == "no_match")), 4),
            "fit_s": round(fit_s, 1), "classify_s": labelled.seconds, "min_cluster_size": made.params["min_cluster_size"],
            "min_cluster_size_scores": made.params["min_cluster_size_scores"],
            "in_sample": {"ari_fit_vs_trace_topics": round(float(adjusted_rand_score(tm.labels, in_sample)), 4),
                          "ari_clusterer_vs_trace_topics": round(float(adjusted_rand_score(tm.cluster_labels, in_sample)), 4),
                          "no_match_share": round(nm, 4), "clusterer_noise_share": round(tm.cluster_noise_share, 4),
                          "no_match_minus_noise_pt": round(100 * (nm - tm.cluster_noise_share), 2),
                          "refit_matches_stored_map": same_fit}}


def bertopic(texts: list[str], vectors: np.ndarray, truth) -> dict:
    """BERTopic as shipped (defaults: UMAP 15 neighbours / 5 dims, HDBSCAN min size 10), our embeddings."""
    from bertopic import BERTopic

    t0 = time.perf_counter()
    labels, _ = BERTopic(verbose=False).fit_transform(texts, embeddings=vectors)
    labels = np.asarray(labels)
    return {**scores(truth, labels), "topics": int(len(set(labels.tolist()) - {-1})),
            "noise_share": round(float(np.mean(labels == -1)), 4), "fit_s": round(time.perf_counter() - t0, 1),
            "version": __import__("bertopic").__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-bertopic", action="store_true")
    ap.add_argument("--sets", default="full,30", help="full and/or N (texts per intent)")
    args = ap.parse_args()
    train = pd.read_csv(DATA / "train.csv")
    vectors = cached_embeddings(train.text.tolist())
    out: dict = {"benchmark": "map_quality_banking77", "label": "category (77 intents)",
                 "target": "ours ARI (trace_topics, no_match a label) >= BERTopic's + 0.05 on every set; "
                           "in-sample ARI fit vs trace_topics >= 0.95; no_match <= clusterer noise + 2pt",
                 "sets": {}}
    met = True
    for name in args.sets.split(","):
        df = train if name == "full" else train.groupby("category").head(int(name))
        texts, vecs, truth = df.text.tolist(), vectors[df.index.to_numpy()], df.category.to_numpy()
        row = {"texts": len(texts), "ours": ours(texts, vecs, truth)}
        ins = row["ours"]["in_sample"]
        ok = ins["ari_fit_vs_trace_topics"] >= 0.95 and ins["no_match_minus_noise_pt"] <= 2.0
        if not args.no_bertopic:
            row["bertopic"] = bertopic(texts, vecs, truth)
            row["ari_margin"] = round(row["ours"]["ari"] - row["bertopic"]["ari"], 4)
            ok = ok and row["ari_margin"] >= 0.05
        row["met"] = bool(ok)
        met = met and ok
        out["sets"]["banking77" if name == "full" else f"banking77_{name}_per_intent"] = row
        print(json.dumps(row), flush=True)
    out["met"] = met
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
