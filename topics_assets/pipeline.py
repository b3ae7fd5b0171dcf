"""The pipeline's stages as plain functions over a Store and Settings.

Each returns the metadata a person wants to see about what it did; the Dagster assets are
thin wrappers around these, and the CLI and tests call them the same way.
Every trace that enters ends faceted, failed (with a reason, retried next run) or
quarantined (with a reason); the counts say which.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from .config import Settings
from .embed.stage import EmbeddingIncomplete, embed_days  # noqa: F401
from .facets.stage import facet_days, text_hash  # noqa: F401
from .store import GenerationConflict, Store
from .topic_map import NO_MATCH, TopicMap, classify_vectors, match_ids



def text_facets(settings: Settings) -> list[str]:
    """Facets that get topic maps (free text); enum and score facets are already categorical."""
    return [f.name for f in settings.facets if f.kind == "text"]


# ----------------------------------------------------------------------------------------
# ingest


from .ingest.stage import ingest_paths  # noqa: E402,F401 - moved; callers still import it from here


# ----------------------------------------------------------------------------------------
# preprocess


from .preprocess.stage import preprocess_days  # noqa: E402,F401 - moved; callers still import it from here


# ----------------------------------------------------------------------------------------
# topic maps


def gate_status(store: Store, settings: Settings, project: str, facet: str) -> dict[str, Any]:
    counts = store.gate_counts(project, facet)
    ok_traces = counts["traces"] >= settings.gates.min_traces
    ok_unique = counts["unique_facets"] >= settings.gates.min_unique_facets
    reason = None
    if not ok_traces:
        reason = f"{counts['traces']} traces in project {project!r}, need {settings.gates.min_traces}"
    elif not ok_unique:
        reason = (f"{counts['unique_facets']} unique {facet} facets in project {project!r}, "
                  f"need {settings.gates.min_unique_facets}")
    return {**counts, "ready": reason is None, "reason": reason}


def assign_identity(store: Store, settings: Settings, project: str, facet: str, tm: TopicMap,
                    vectors: np.ndarray, prev_gen: int | None) -> tuple[list[dict], list[dict], int]:
    """Topic ids for a new fit: matched clusters keep their predecessor's id, new ones get fresh ids,
    unmatched predecessors are recorded as retired. Returns (topics, retired, n_matched)."""
    generation = (prev_gen or 0) + 1
    prev = store.load_topics(project, facet, prev_gen) if prev_gen else None
    ids: dict[int, str] = {}
    retired: list[dict] = []
    if prev is not None and len(prev):
        # Members as the previous map sees them: classify this sample with its centroids.
        prev_info = store.generation_info(project, facet, prev_gen)
        prev_centroids = np.vstack(prev.centroid.tolist()).astype(np.float32)
        prev_idx, _ = classify_vectors(vectors, prev_centroids, float(prev_info.get("threshold") or 1.0))
        prev_members = [set(np.flatnonzero(prev_idx == j).tolist()) for j in range(len(prev))]
        new_members = [set(np.flatnonzero(tm.labels == t.index).tolist()) for t in tm.topics]
        assignment = match_ids(prev_centroids, prev_members, tm.centroids, new_members,
                               settings.cluster.match_min_similarity)
        ids = {t.index: prev.topic_id.iloc[j] for t, j in zip(tm.topics, assignment) if j is not None}
        kept = set(ids.values())
        retired = [{"project": project, "facet": facet, "generation": generation, "topic_id": row.topic_id,
                    "name": row.name, "description": row.description, "keywords": list(row.keywords), "size": 0,
                    "centroid": list(row.centroid), "examples": list(row.examples), "status": "retired"}
                   for row in prev.itertuples(index=False) if row.topic_id not in kept]
    n_matched = len(ids)
    next_n = store.next_topic_number(project, facet)
    for topic in sorted(tm.topics, key=lambda t: -t.size):
        if topic.index not in ids:
            ids[topic.index] = f"{facet}-{next_n:03d}"
            next_n += 1
    topics = [{"project": project, "facet": facet, "generation": generation, "topic_id": ids[t.index],
               "name": t.name, "description": t.description, "keywords": t.keywords, "size": t.size,
               "centroid": t.centroid.tolist(), "examples": t.examples, "status": "active"} for t in tm.topics]
    return topics, retired, n_matched


def generate_topic_map(store: Store, settings: Settings, project: str, facet: str, embedder_id: str | None = None,
                       client=None, force: bool = False) -> dict[str, Any]:
    """Fit a new generation for (project, facet), reusing the ids of the clusters it continues."""
    from .embed import embedding_model_id
    from .naming import name_with_keywords, name_with_llm

    t0 = time.monotonic()
    gate = gate_status(store, settings, project, facet)
    if not gate["ready"] and not force:
        return {"generated": False, "skipped_reason": gate["reason"], **gate}
    model_id = embedder_id or embedding_model_id(settings.embedding)
    prev_gen = store.latest_generation(project, facet)
    rows, vectors = store.facet_vectors(model_id, facet, project=project, limit_sample=settings.cluster.sample_cap,
                                        seed=settings.cluster.random_state + (prev_gen or 0) + 1)
    n_total = gate["unique_facets"]
    tm = TopicMap.fit(vectors, rows.text.tolist(), settings.cluster)
    if not tm.topics:
        return {"generated": False, "skipped_reason": f"no clusters found among {len(rows)} facets", **gate}

    naming: dict[str, Any] = {}
    if settings.llm.model:
        if client is None:
            from .llm import LLMClient

            client = LLMClient(settings.llm, api_key=settings.llm_api_key())
        before = client.stats
        naming = name_with_llm(tm.topics, facet, client)
        usage = client.stats_since(before)
        naming.update({f"naming_{k}": usage[k] for k in ("calls", "requests", "retries", "input_tokens",
                                                          "output_tokens", "cost", "cost_unknown")})
        naming_engine = f"llm:{settings.llm.model}"
    else:
        name_with_keywords(tm.topics)
        naming_engine = "keywords"

    info = {"project": project, "facet": facet, "embedding_model": model_id,
            "naming_engine": naming_engine, "n_facets": n_total, "n_sampled": len(rows), "n_topics": len(tm.topics),
            "noise_share": tm.noise_share, "threshold": tm.threshold,
            "params": {"min_cluster_size": tm.min_cluster_size, "n_neighbors": settings.cluster.n_neighbors,
                       "n_components": settings.cluster.n_components, "sample_cap": settings.cluster.sample_cap}}
    # Another process may land a generation while this one fits: then match against that one instead.
    for _attempt in range(5):
        topics, retired, matched = assign_identity(store, settings, project, facet, tm, vectors, prev_gen)
        info["generation"] = (prev_gen or 0) + 1
        try:
            store.write_generation(info, topics + retired, expected_previous=prev_gen)
            break
        except GenerationConflict:
            prev_gen = store.latest_generation(project, facet)
    else:
        raise GenerationConflict(f"{project}/{facet}: other runs kept landing generations; try again")
    return {"generated": True, **info, **naming, "matched_previous": matched, "retired": len(retired),
            "new_topics": len(topics) - matched, "topics": topics, "seconds": round(time.monotonic() - t0, 3)}


# ----------------------------------------------------------------------------------------
# classify


def classify_days(store: Store, settings: Settings, days: list[str], project: str | None = None) -> dict[str, Any]:
    """Label these days' facets with each (project, facet)'s current map; no LLM involved."""
    t0 = time.monotonic()
    out: dict[str, Any] = {"classified": 0, "no_match": 0, "maps": {}}
    for proj in ([project] if project else store.projects()):
        for facet in text_facets(settings):
            gen = store.latest_generation(proj, facet)
            if gen is None:
                continue
            info = store.generation_info(proj, facet, gen)
            topics = store.load_topics(proj, facet, gen)
            rows, vectors = store.facet_vectors(info["embedding_model"], facet, project=proj, days=days)
            centroids = np.vstack(topics.centroid.tolist()).astype(np.float32)
            idx, dist = classify_vectors(vectors, centroids, float(info["threshold"]))
            ids = np.where(idx >= 0, topics.topic_id.to_numpy()[np.maximum(idx, 0)], NO_MATCH)
            df = pd.DataFrame({"trace_id": rows.trace_id, "topic_id": ids, "distance": dist.astype(float),
                               "day": rows.day})
            store.write_classifications(proj, facet, gen, days, df)
            n_nm = int((ids == NO_MATCH).sum())
            out["maps"][f"{proj}/{facet}"] = {"generation": gen, "classified": len(df), "no_match": n_nm,
                                              "no_match_rate": round(n_nm / len(df), 4) if len(df) else None}
            out["classified"] += len(df)
            out["no_match"] += n_nm
    out["no_match_rate"] = round(out["no_match"] / out["classified"], 4) if out["classified"] else None
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


# ----------------------------------------------------------------------------------------
# ad hoc clustering and state


def cluster_adhoc(store: Store, settings: Settings, project: str, facet: str, where: str | None = None,
                  min_cluster_size: int | None = None, sample_cap: int = 20_000) -> dict[str, Any]:
    """The same fit on any filtered subset (a SQL condition on `traces t`); nothing is persisted."""
    from dataclasses import replace

    from .embed import embedding_model_id
    from .naming import name_with_keywords

    t0 = time.monotonic()
    if facet not in text_facets(settings):
        raise ValueError(f"facet {facet!r} is not a free-text facet; choose one of {', '.join(text_facets(settings))}")
    model_id = embedding_model_id(settings.embedding)
    rows, vectors = store.facet_vectors(model_id, facet, project=project, where=where, limit_sample=sample_cap,
                                        seed=settings.cluster.random_state)
    if len(rows) == 0:
        raise ValueError(f"no embedded {facet} facets in project {project!r}" + (f" where {where}" if where else ""))
    # Exploration favours finer topics on small subsets.
    mcs = min_cluster_size or max(3, min(50, len(rows) // 100))
    tm = TopicMap.fit(vectors, rows.text.tolist(), replace(settings.cluster, min_cluster_size=mcs))
    name_with_keywords(tm.topics)
    topics = [{"topic_id": f"adhoc-{i + 1:03d}", "name": t.name, "size": t.size, "keywords": t.keywords,
               "examples": t.examples} for i, t in enumerate(sorted(tm.topics, key=lambda t: -t.size))]
    return {"project": project, "facet": facet, "where": where, "n_facets": len(rows), "n_topics": len(topics),
            "noise_share": round(tm.noise_share, 4), "min_cluster_size": mcs, "topics": topics,
            "seconds": round(time.monotonic() - t0, 3)}


def map_state(store: Store, settings: Settings, project: str, facet: str, generating: bool = False,
              backfilling: bool = False) -> dict[str, Any]:
    """Where a (project, facet) stands: accumulating -> ready -> generating -> backfilling -> idle."""
    gate = gate_status(store, settings, project, facet)
    generation = store.latest_generation(project, facet)
    if generating:
        state = "generating"
    elif generation is None:
        state = "ready" if gate["ready"] else "accumulating"
    elif backfilling:
        state = "backfilling"
    else:
        state = "idle"
    return {**gate, "generation": generation, "state": state}
