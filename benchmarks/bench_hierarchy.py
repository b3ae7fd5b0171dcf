"""Parents over topics on real data: do they group related topics, and do their ids survive a resample?

How: banking77 (../shared/data/banking77) has 77 intents whose names come in families (`card_arrival`,
`card_delivery_estimate`, `top_up_failed`, `transfer_timing`, ...). Each intent is a topic: its centroid
is the mean local-model embedding of up to --per texts. Parents are built over the 77 centroids (about
sqrt(77) = 9), and compared with the families (first word of the intent name): pairwise precision (two
intents under one parent share a family) and recall (two intents of one family share a parent). Stability:
parents are built again from centroids of different texts (the test split) and matched to the first
parents by shared children; `kept` is the share of topics whose parent id is the same both times.

    .venv/bin/python benchmarks/bench_hierarchy.py [--per 60]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from itertools import combinations
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from topics_assets.embed import LocalEmbedder  # noqa: E402
from topics_assets.topics.hierarchy import (  # noqa: E402
    PreviousParent, assign_parent_ids, build_parents, name_parents_with_keywords)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"


def topics_from(df: pd.DataFrame, embedder, per: int) -> tuple[list[dict], np.ndarray, list[str]]:
    df = df.groupby("category").head(per).reset_index(drop=True)
    vectors = embedder.embed(df.text.tolist())
    topics = []
    for cat, idx in df.groupby("category").indices.items():
        c = vectors[idx].mean(axis=0)
        topics.append({"topic_id": cat, "centroid": c / np.linalg.norm(c), "size": len(idx), "keywords": []})
    return topics, df.category.to_numpy(dtype=object), df.text.tolist()


def pairwise(parents, family) -> tuple[float, float]:
    parent_of = {t: p.index for p in parents for t in p.children}
    same_p = same_f = both = 0
    for a, b in combinations(sorted(parent_of), 2):
        sp, sf = parent_of[a] == parent_of[b], family[a] == family[b]
        same_p += sp
        same_f += sf
        both += sp and sf
    return both / max(same_p, 1), both / max(same_f, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=60)
    args = ap.parse_args()
    embedder = LocalEmbedder()
    train, test = pd.read_csv(DATA / "train.csv"), pd.read_csv(DATA / "test.csv")
    t0 = time.monotonic()
    topics, rows, texts = topics_from(train, embedder, args.per)
    embed_s = time.monotonic() - t0
    t0 = time.monotonic()
    first = build_parents(topics, rows, texts)
    assign_parent_ids(first, [], 1, "intent", 0.75)
    name_parents_with_keywords(first)
    build_s = time.monotonic() - t0
    family = {t["topic_id"]: t["topic_id"].split("_")[0] for t in topics}
    precision, recall = pairwise(first, family)
    # Baseline: random groups of the same sizes.
    rng = np.random.default_rng(0)
    sizes = [len(p.children) for p in first]
    rp, rr = [], []
    for _ in range(20):
        ids = list(rng.permutation([t["topic_id"] for t in topics]))
        fake, k = [], 0
        for i, s in enumerate(sizes):
            fake.append(type("P", (), {"index": i, "children": ids[k:k + s]}))
            k += s
        p, r = pairwise(fake, family)
        rp.append(p)
        rr.append(r)
    test_topics, test_rows, test_texts = topics_from(test, embedder, args.per)
    again = build_parents(test_topics, test_rows, test_texts)
    previous = [PreviousParent(p.parent_id, frozenset(p.children), p.centroid) for p in first]
    matched = assign_parent_ids(again, previous, len(first) + 1, "intent", 0.75)
    before = {t: p.parent_id for p in first for t in p.children}
    after = {t: p.parent_id for p in again for t in p.children}
    kept = np.mean([before[t] == after.get(t) for t in before])
    print(json.dumps({
        "topics": len(topics), "parents": len(first), "parent_sizes": sizes, "embed_s": round(embed_s, 1),
        "build_and_name_s": round(build_s, 3),
        "family_precision": round(precision, 3), "family_recall": round(recall, 3),
        "random_groups_precision": round(float(np.mean(rp)), 3), "random_groups_recall": round(float(np.mean(rr)), 3),
        "resample_parents_matched": matched, "resample_topics_parent_kept": round(float(kept), 3),
        "examples": [{"parent": p.name, "children": p.children[:6]} for p in first[:4]],
    }, indent=2))


if __name__ == "__main__":
    main()
