"""The pipeline's stages as plain functions over a Store and Settings.

Each returns the metadata a person wants to see about what it did; the Dagster assets are
thin wrappers around these, and the CLI and tests call them the same way.
Every trace that enters ends faceted, failed (with a reason, retried next run) or
quarantined (with a reason); the counts say which.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from .config import Settings
from .journal import FacetJournal
from .store import GenerationConflict, Store, now_utc
from .topic_map import NO_MATCH, TopicMap, classify_vectors, match_ids
from .traces import Quarantined, Trace, sha256_text

INGEST_BATCH = 2_000
FACET_FLUSH_EVERY = 256  # traces per facets write: bounds what a crash can lose
EMBED_CHUNK = 2048  # texts per embeddings write: bounds what a failed remote batch can lose


def text_hash(text: str) -> str:
    return sha256_text(text)[:32]


def text_facets(settings: Settings) -> list[str]:
    """Facets that get topic maps (free text); enum and score facets are already categorical."""
    return [f.name for f in settings.facets if f.kind == "text"]


# ----------------------------------------------------------------------------------------
# ingest


def ingest_paths(store: Store, settings: Settings, paths: Iterable[str], project: str | None = None,
                 on_record: Callable[[str], None] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Parse files into raw_traces; a later version of the same trace id replaces the earlier one.

    OTLP traces are the exception: their spans may come in several exports (batches, rotated files),
    so the spans of a trace id already stored, or seen earlier in this call, are merged with the
    new ones (otel.merge_exports) instead of replaced.
    """
    from .formats import read_file
    from .otel import SPAN_FORMATS, merge_exports

    now = now or datetime.now(timezone.utc)
    start = date.fromisoformat(settings.partitions_start)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    rows: list[dict] = []
    quarantined: list[dict] = []
    days: set[str] = set()
    projects: set[str] = set()

    span_traces: dict[str, tuple[Trace, str]] = {}  # OTLP traces of this batch, by id, with their file

    def add_row(trace: Trace, path: str) -> None:
        payload = trace.to_json()
        rows.append({"trace_id": trace.trace_id, "project": trace.project, "day": trace.day,
                     "started_at": trace.started_at, "format": trace.format, "source": path,
                     "payload": payload, "payload_hash": sha256_text(payload)})
        days.add(trace.day)
        projects.add(trace.project)

    def merge(earlier: Trace, later: Trace) -> Trace:
        merged = merge_exports(earlier, later)
        counts["merged"] += len(merged.spans) > len(later.spans)  # the earlier part brought spans of its own
        return merged

    def flush() -> None:
        stored = store.raw_payloads(list(span_traces), SPAN_FORMATS)
        for tid, (trace, path) in span_traces.items():
            add_row(merge(Trace.from_json(stored[tid]), trace) if tid in stored else trace, path)
        span_traces.clear()
        counts.update(store.upsert_raw_traces(rows))
        store.add_quarantined(quarantined)
        rows.clear()
        quarantined.clear()

    def quarantine(q: Quarantined) -> None:
        counts["quarantined"] += 1
        reasons[q.reason.split(":")[0][:80]] += 1
        quarantined.append({"source": q.source, "line": q.line, "trace_id": q.trace_id, "reason": q.reason,
                            "snippet": q.snippet[:200]})

    for path in paths:
        for item in read_file(path, project=project, default_project=settings.default_project, now=now):
            if on_record:
                on_record(str(path))
            if isinstance(item, Quarantined):
                quarantine(item)
            elif item.started_at.date() < start:
                quarantine(Quarantined(str(path), None, (
                    f"trace {item.trace_id} started {item.day}, before partitions_start {settings.partitions_start} "
                    "(set TOPICS_PARTITIONS_START or partitions_start in topics.yaml)"), "", item.trace_id))
            elif item.format in SPAN_FORMATS:
                if item.trace_id in span_traces:
                    item = merge(span_traces[item.trace_id][0], item)
                span_traces[item.trace_id] = (item, str(path))
            else:
                add_row(item, str(path))
            if len(rows) + len(span_traces) + len(quarantined) >= INGEST_BATCH:
                flush()
    flush()
    return {"loaded": counts["loaded"], "updated": counts["updated"], "unchanged": counts["unchanged"],
            "merged": counts["merged"],
            "quarantined": counts["quarantined"], "quarantine_reasons": dict(reasons),
            "days": sorted(days), "projects": sorted(projects)}


# ----------------------------------------------------------------------------------------
# preprocess


def preprocess_days(store: Store, settings: Settings, days: list[str]) -> dict[str, Any]:
    from .preprocess import CustomPreprocessorError, load_custom, preprocess

    t0 = time.monotonic()
    # A custom preprocessor that cannot be imported is a bad setting: fail the run once, up front.
    custom = load_custom(settings.preprocess.custom) if settings.preprocess.custom else None
    raw = store.raw_traces_for_days(days)
    settings_hash = settings.preprocess_hash()
    rows: list[dict] = []
    counts: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    tokens_before = tokens_after = 0
    for r in raw.itertuples(index=False):
        if r.done_hash == r.payload_hash and r.done_status == "ok" and r.done_preprocess_hash == settings_hash:
            counts["unchanged"] += 1
            continue
        base = {"trace_id": r.trace_id, "project": r.project, "day": r.day, "started_at": r.started_at,
                "format": r.format, "version": r.version, "payload_hash": r.payload_hash,
                "preprocessed_at": now_utc(), "preprocess_hash": settings_hash}
        try:
            p = preprocess(Trace.from_json(r.payload), settings.preprocess, custom=custom)
        except CustomPreprocessorError as e:  # the user's callable: its own error and full traceback
            counts["failed"] += 1
            rows.append({**base, "status": "failed", "error": f"{e}\n{e.details}"})
            continue
        except Exception as e:  # one bad trace fails alone, with its reason
            counts["failed"] += 1
            rows.append({**base, "status": "failed",
                         "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"})
            continue
        counts["preprocessed"] += 1
        tokens_before += p.tokens_before
        tokens_after += p.tokens_after
        redactions.update(p.redactions)
        rows.append({**base, "content": p.text, "content_hash": p.content_hash, "n_spans": p.n_spans,
                     "n_messages": p.n_messages, "tokens_before": p.tokens_before, "tokens_after": p.tokens_after,
                     "truncated": p.truncated, "redactions": json.dumps(p.redactions), "status": "ok", "error": None})
    store.replace_traces(days, rows, keep_ids=raw.trace_id.tolist())
    return {"raw_traces": len(raw), "preprocessed": counts["preprocessed"], "unchanged": counts["unchanged"],
            "failed": counts["failed"], "tokens_before": tokens_before, "tokens_after": tokens_after,
            "redactions": dict(redactions), "seconds": round(time.monotonic() - t0, 3)}


# ----------------------------------------------------------------------------------------
# facet


def facet_days(store: Store, settings: Settings, days: list[str], engine=None,
               flush_every: int = FACET_FLUSH_EVERY) -> dict[str, Any]:
    """Facet every trace of these days whose content, facet definitions or model changed.

    LLM calls run at most llm.max_in_flight at a time; answers are written every `flush_every`
    traces, so a crash or a cancelled run keeps what was already paid for. A trace that fails is
    recorded in facet_failures with its reason and, having no current facets, is tried again on
    the next run.
    """
    from .facets import make_engine

    t0 = time.monotonic()
    engine = engine or make_engine(settings)
    traces = store.query_df(
        """SELECT trace_id, project, day::VARCHAR AS day, content, content_hash FROM traces
           WHERE status = 'ok' AND day::VARCHAR IN (SELECT unnest(?::VARCHAR[])) ORDER BY trace_id""", [days])
    have = store.query_df(
        """SELECT f.trace_id, f.facet, f.content_hash, f.facets_hash, f.model FROM facets f
           WHERE f.day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))""", [days])
    fhash = settings.facets_hash()
    wanted = set(settings.facet_names)
    current: dict[str, set[str]] = {}
    for r in have.itertuples(index=False):
        current.setdefault(r.trace_id, set())
        if r.facets_hash == fhash and r.model == engine.model:
            current[r.trace_id].add(f"{r.facet}\0{r.content_hash}")
    todo = [t for t in traces.itertuples(index=False)
            if {f"{f}\0{t.content_hash}" for f in wanted} - current.get(t.trace_id, set())]

    live_ids = traces.trace_id.tolist()
    rows: list[dict] = []
    failures: list[dict] = []
    reasons: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    pending = 0

    def flush() -> None:
        nonlocal pending
        store.write_facets(days, rows, failures, live_ids=live_ids)
        rows.clear()
        failures.clear()
        pending = 0

    client = getattr(engine, "client", None)
    # LLM answers are journaled as they arrive, so a killed run's answers are not paid for again.
    journal = FacetJournal.beside(store.database) if client is not None else None
    journaled = journal.load() if journal is not None else {}

    def key(t) -> tuple[str, str, str, str]:
        return (t.trace_id, t.content_hash, fhash, engine.model)

    def on_done(i: int, res: Any) -> None:
        nonlocal pending
        t = todo[i]
        if journal is not None and not isinstance(res, BaseException) and key(t) not in journaled:
            journal.append(key(t), res)
        if isinstance(res, BaseException):
            reason = getattr(res, "reason", None) or type(res).__name__
            reasons[reason] += 1
            counts["failed"] += 1
            failures.append({"trace_id": t.trace_id, "project": t.project, "day": t.day, "reason": reason,
                             "detail": f"{type(res).__name__}: {res}"[:2000]})
        else:
            counts["faceted"] += 1
            created = now_utc()
            for name, text in res.items():
                rows.append({"trace_id": t.trace_id, "facet": name, "project": t.project, "day": t.day,
                             "text": text, "text_hash": text_hash(text), "engine": engine.engine,
                             "model": engine.model, "content_hash": t.content_hash, "facets_hash": fhash,
                             "created_at": created})
        pending += 1
        if pending >= flush_every:
            flush()

    def run_one(t):
        return engine.facet(t.content)

    before = client.stats if client is not None else None
    if client is not None:
        fresh = []
        for i, t in enumerate(todo):
            if key(t) in journaled:
                counts["journal_hits"] += 1
                on_done(i, journaled[key(t)])
            else:
                fresh.append(i)
        client.map(lambda i: run_one(todo[i]), fresh, on_done=lambda j, res: on_done(fresh[j], res))
    else:
        for i, t in enumerate(todo):
            try:
                res = run_one(t)
            except Exception as e:  # noqa: BLE001 - recorded per trace
                res = e
            on_done(i, res)
    flush()  # also drops facets of traces that left these days, when nothing was to do
    if journal is not None:
        journal.finish(stored={key(t) for t in todo})
    meta: dict[str, Any] = {"traces": len(traces), "faceted": counts["faceted"],
                            "cache_hits": len(traces) - len(todo), "journal_hits": counts["journal_hits"],
                            "failed": counts["failed"],
                            "failures_by_reason": dict(reasons), "engine": engine.engine, "model": engine.model,
                            "seconds": round(time.monotonic() - t0, 3)}
    if client is not None:
        meta.update({f"llm_{k}": v for k, v in client.stats_since(before).items()})
    return meta


# ----------------------------------------------------------------------------------------
# embed


class EmbeddingIncomplete(RuntimeError):
    """Some new facet texts could not be embedded; the ones before them were stored."""


def embed_days(store: Store, settings: Settings, days: list[str], embedder=None,
               chunk: int = EMBED_CHUNK) -> dict[str, Any]:
    """Embed the distinct facet texts of these days not yet embedded with this model.

    Vectors are stored `chunk` texts at a time, so when a remote batch fails for good (after its
    retries) the run stops there but keeps every vector already paid for; the next run embeds
    only the rest.
    """
    from .embed import make_embedder

    t0 = time.monotonic()
    embedder = embedder or make_embedder(settings.embedding)
    missing = store.texts_missing_embeddings(days, embedder.model_id, text_facets(settings))
    done = 0
    for start in range(0, len(missing), max(1, chunk)):
        part = missing.iloc[start:start + chunk]
        try:
            vectors = embedder.embed(part.text.tolist())
        except Exception as e:
            raise EmbeddingIncomplete(
                f"embedding with {embedder.model_id} stopped after {done} of {len(missing)} new texts "
                f"({type(e).__name__}: {e}); the {done} are stored, the next run embeds the other "
                f"{len(missing) - done}") from e
        store.write_embeddings(embedder.model_id, part.text_hash.tolist(), part.text.tolist(), vectors)
        done += len(part)
    return {"model": embedder.model_id, "embedded": done, "seconds": round(time.monotonic() - t0, 3)}


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
    tm = TopicMap.fit(vectors, rows.text.tolist(), settings.cluster.model_copy(update={"min_cluster_size": mcs}))
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
