"""Facets and their vectors written straight through a store's own methods: a map stage's input
without ingest, preprocessing or an embedding model (tests and benchmarks on embedded data sets)."""

from __future__ import annotations

import numpy as np

from ..facets.stage import text_hash


def write_facet_vectors(store, model: str, texts: list[str], vectors: np.ndarray, *, project: str, day: str,
                        facet: str = "task", prefix: str = "t") -> list[str]:
    """One trace per text (ids `{prefix}000000`, ... in text order); returns the trace ids."""
    ids = [f"{prefix}{i:06d}" for i in range(len(texts))]
    rows = [{"trace_id": tid, "facet": facet, "project": project, "day": day, "text": t, "text_hash": text_hash(t),
             "engine": "extractive", "model": "none", "content_hash": "c", "facets_hash": "f", "created_at": None}
            for tid, t in zip(ids, texts)]
    store.write_facets([day], rows, [], live=[(project, tid) for tid in ids])
    uniq = {r["text_hash"]: (r["text"], i) for i, r in enumerate(rows)}
    store.write_embeddings(model, list(uniq), [t for t, _ in uniq.values()],
                           np.asarray(vectors)[[i for _, i in uniq.values()]])
    return ids
