"""Labelled days written straight through a store's own methods: traces with outcomes and facet vectors
around known topic centroids, and a topic map generation holding those centroids, so that classifying
and the per-topic figures run on real tables without ingest, preprocessing, an embedding model or UMAP."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np

from .facets import write_facet_vectors

MODEL = "test-model"
DIM = 16


def centroids(n: int, seed: int = 0) -> np.ndarray:
    """n well-separated unit vectors."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def day_list(first: str, n: int) -> list[str]:
    return [(date.fromisoformat(first) + timedelta(days=i)).isoformat() for i in range(n)]


def write_topic_map(store, project: str, facet: str, topic_ids: list[str], vectors: np.ndarray,
                    names: list[str] | None = None, generation: int = 1) -> None:
    names = names or [f"{t} name" for t in topic_ids]
    info = {"project": project, "facet": facet, "generation": generation, "embedding_model": MODEL,
            "naming_engine": "keywords", "n_facets": 0, "n_sampled": 0, "n_topics": len(topic_ids),
            "noise_share": 0.0, "threshold": 0.5, "params": {}}
    topics = [{"project": project, "facet": facet, "generation": generation, "topic_id": t, "name": n,
               "description": "", "keywords": [n], "size": 1, "centroid": c.tolist(), "examples": [n],
               "status": "active", "threshold": 0.5} for t, n, c in zip(topic_ids, names, vectors)]
    store.write_generation(info, topics, expected_previous=generation - 1 or None)


def write_day(store, project: str, facet: str, day: str, topic_counts: dict[int, int], vectors: np.ndarray, *,
              failing: dict[int, float] | None = None, seed: int = 0, cost: float = 0.01) -> list[str]:
    """Traces of one day: `topic_counts[i]` near centroid i (its facet text 'topic i, case j'), their
    outcomes (a share `failing[i]` of topic i ends abnormally with a tool error; every trace scores and costs)."""
    rng = np.random.default_rng(seed)
    failing = failing or {}
    texts, vecs, fails = [], [], []
    for i, n in topic_counts.items():
        for j in range(n):
            texts.append(f"topic {i} case {j} on {day}")
            v = vectors[i] + rng.normal(scale=0.05, size=DIM)
            vecs.append(v / np.linalg.norm(v))
            fails.append(bool(rng.random() < failing.get(i, 0.0)))
    prefix = f"{project}-{day}-"
    ids = write_facet_vectors(store, MODEL, texts, np.asarray(vecs, dtype=np.float32), project=project, day=day,
                              facet=facet, prefix=prefix)
    stamp = f"{day}T12:00:00+00:00"
    store.upsert_raw_traces([{"trace_id": t, "project": project, "day": day, "started_at": stamp, "format": "chat",
                              "source": "test", "payload": "{}", "payload_hash": t} for t in ids])
    store.replace_traces([day], [{"trace_id": t, "project": project, "day": day, "started_at": stamp, "format": "chat",
                                  "version": 1, "payload_hash": t, "content": text, "content_hash": t, "n_spans": 1,
                                  "n_messages": 1, "tokens_before": 10, "tokens_after": 10, "truncated": False,
                                  "redactions": "{}", "status": "ok", "error": None, "preprocessed_at": None,
                                  "preprocess_hash": "h"} for t, text in zip(ids, texts)],
                         keep=[(project, t) for t in ids])
    store.replace_outcomes([day], [{
        "project": project, "trace_id": t, "day": day, "status": "error" if f else "ok", "n_errors": int(f),
        "error_kinds": ["http_error"] if f else [], "errors": "[]", "failed_tools": ["pay"] if f else [],
        "termination_reason": "error" if f else "stop", "abnormal_end": f,
        "scores": json.dumps({"reward": 0.0 if f else 1.0}), "duration_s": 2.0 + (k % 5), "llm_calls": 1,
        "input_tokens": 100, "output_tokens": 20, "cost_usd": cost, "cost_source": "trace", "models": ["m"],
        "tools": ["pay"], "agents": []} for k, (t, f) in enumerate(zip(ids, fails))],
        keep=[(project, t) for t in ids])
    return ids
