"""The topic-map stages over a Store and Settings: gates, map generation, classification, ad hoc maps.

Each function takes keyword arguments and returns a small frozen result; `to_metadata()` gives the
dict the CLI prints and the Dagster assets show. The store is read here, before and after the pure
parts (fit, identity), never in the middle of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..claims import Claim
from ..config import Settings
from ..results import StageResult
from ..store import GenerationConflict, Store
from .cluster import Clusterer, Reducer, build_components
from .curation import Curation, apply_to_rows, labels_as
from .hierarchy import Parent, assign_parent_ids, build_parents, hierarchy_rows, previous_parents
from .identity import IdentityAssignment, PreviousMap, assign_ids
from .naming import KeywordNamer, Namer, make_namer, name_parents
from .topic_map import NO_MATCH, TopicMap, classify_vectors

CONFLICT_RETRIES = 5


# ----------------------------------------------------------------------------------------
# gates and state


@dataclass(frozen=True)
class GateStatus(StageResult):
    traces: int
    unique_facets: int
    ready: bool
    reason: str | None = None  # why not ready, with the counts


def gate_status(*, store: Store, settings: Settings, project: str, facet: str) -> GateStatus:
    """Every gate the data misses is named in `reason`, not only the first."""
    counts = store.gate_counts(project, facet)
    unmet = []
    if counts["traces"] < settings.gates.min_traces:
        unmet.append(f"{counts['traces']} traces in project {project!r}, need {settings.gates.min_traces}")
    if counts["unique_facets"] < settings.gates.min_unique_facets:
        unmet.append(f"{counts['unique_facets']} unique {facet} facets in project {project!r}, "
                     f"need {settings.gates.min_unique_facets}")
    reason = "; ".join(unmet) or None
    return GateStatus(counts["traces"], counts["unique_facets"], reason is None, reason)


@dataclass(frozen=True)
class MapState(StageResult):
    traces: int
    unique_facets: int
    ready: bool
    reason: str | None
    generation: int | None
    state: str  # accumulating, ready, generating, backfilling or idle


def map_state(*, store: Store, settings: Settings, project: str, facet: str, generating: bool = False,
              backfilling: bool = False) -> MapState:
    """Where a (project, facet) stands: accumulating -> ready -> generating -> backfilling -> idle."""
    gate = gate_status(store=store, settings=settings, project=project, facet=facet)
    generation = store.latest_generation(project, facet)
    if generating:
        state = "generating"
    elif generation is None:
        state = "ready" if gate.ready else "accumulating"
    elif backfilling:
        state = "backfilling"
    else:
        state = "idle"
    return MapState(gate.traces, gate.unique_facets, gate.ready, gate.reason, generation, state)


# ----------------------------------------------------------------------------------------
# topic map generation


@dataclass(frozen=True)
class TopicMapResult(StageResult):
    """A new generation, or why there is none (`generated` False, `skipped_reason`, the gate counts;
    `busy` when another run is generating it, or landed one since the caller looked)."""

    project: str
    facet: str
    generated: bool
    skipped_reason: str | None = None
    busy: bool | None = None  # True when skipped for another run
    gate: GateStatus | None = None  # reported when skipped
    generation: int | None = None
    embedding_model: str | None = None
    naming_engine: str | None = None
    n_facets: int | None = None
    n_sampled: int | None = None
    n_topics: int | None = None
    noise_share: float | None = None
    threshold: float | None = None
    params: dict | None = None
    naming: dict = field(default_factory=dict)  # counts from the namer, flattened into the metadata
    parents: int | None = None  # topic_hierarchy: parents over the topics (none below 4 topics)
    parents_matched: int | None = None  # parents that kept a previous generation's id
    curated: int | None = None  # renames and merges re-applied (topic_curation)
    matched_previous: int | None = None
    retired: int | None = None
    new_topics: int | None = None
    topics: tuple[dict, ...] = ()
    seconds: float | None = None

    def to_metadata(self) -> dict[str, Any]:
        meta = super().to_metadata()
        gate = meta.pop("gate", None)
        meta.update(meta.pop("naming"))
        if not self.generated:
            meta.pop("topics")
            meta.update(gate or {})
        return meta


def load_previous_map(store: Store, project: str, facet: str, generation: int | None) -> PreviousMap | None:
    """The generation a new fit is matched against, read from the store (None before the first)."""
    if not generation:
        return None
    info = store.generation_info(project, facet, generation)
    return PreviousMap.from_rows(generation, info.get("threshold"),
                                 store.load_topics(project, facet, generation, with_merged=True))


UNSEEN = object()  # generate_topic_map's `seen_generation` when the caller did not say


def generate_topic_map(*, store: Store, settings: Settings, project: str, facet: str, embedder_id: str | None = None,
                       client: Any = None, force: bool = False, namer: Namer | None = None,
                       reducer: Reducer | None = None, clusterer: Clusterer | None = None,
                       seen_generation: Any = UNSEEN) -> TopicMapResult:
    """Fit a new generation for (project, facet), reusing the ids of the clusters it continues.

    `namer`, `reducer` and `clusterer` default to those built from settings (`client` serves the LLM namer).
    One generation at a time per (project, facet), whichever process asks: the map is claimed for the
    whole fit, so a second caller skips it (`busy`, saying who holds it) instead of fitting and naming
    it again. `seen_generation` is the newest generation the caller saw when it decided a map was due
    (None: there was none); if a newer one landed since (another run generated it), this one skips too."""
    t0 = time.monotonic()
    gate = gate_status(store=store, settings=settings, project=project, facet=facet)
    if not gate.ready and not force:
        return TopicMapResult(project, facet, generated=False, skipped_reason=gate.reason, gate=gate)
    with Claim(store, "topic_map", [(project, facet)]) as claim:
        if claim.busy:
            return TopicMapResult(project, facet, generated=False, busy=True, gate=gate,
                                  skipped_reason=f"another run is generating this map ({claim.holders()}); "
                                                 "skipped here")
        latest = store.latest_generation(project, facet)
        if seen_generation is not UNSEEN and (latest or 0) > (seen_generation or 0):
            return TopicMapResult(project, facet, generated=False, busy=True, gate=gate,
                                  skipped_reason=f"generation {latest} landed since this run was asked for "
                                                 f"(generation {seen_generation or 'none'} then): another run "
                                                 "generated it; skipped here")
        return _generate(store, settings, project, facet, gate, t0, embedder_id, client, namer, reducer, clusterer)


def _generate(store: Store, settings: Settings, project: str, facet: str, gate: GateStatus, t0: float,
              embedder_id: str | None, client: Any, namer: Namer | None, reducer: Reducer | None,
              clusterer: Clusterer | None) -> TopicMapResult:
    from ..embed import embedding_model_id

    cs = settings.cluster
    model_id = embedder_id or embedding_model_id(settings.embedding)
    prev_gen = store.latest_generation(project, facet)
    rows, vectors = store.facet_vectors(model_id, facet, project=project, limit_sample=cs.sample_cap,
                                        seed=cs.random_state + (prev_gen or 0) + 1)
    tm = TopicMap.fit(vectors, rows.text.tolist(), cs, reducer=reducer, clusterer=clusterer,
                      prefer_min_cluster_size=_previous_size(store, project, facet, prev_gen, len(rows)))
    if not tm.topics:
        return TopicMapResult(project, facet, generated=False,
                              skipped_reason=f"no clusters found among {len(rows)} facets", gate=gate)
    namer = namer or make_namer(settings, client)
    curation = Curation.load(store, project, facet)
    naming = (_name_topics(namer, tm, _assign(store, settings, project, facet, tm, vectors, prev_gen), curation, facet)
              if curation else namer.name(tm.topics, facet))
    info = {"project": project, "facet": facet, "embedding_model": model_id,
            "naming_engine": namer.engine, "n_facets": gate.unique_facets, "n_sampled": len(rows),
            "n_topics": len(tm.topics), "noise_share": tm.noise_share, "threshold": tm.threshold,
            "params": {"min_cluster_size": tm.min_cluster_size, "min_cluster_size_scores": {str(k): v for k, v in (tm.candidates or {}).items()},
                       "cluster_noise_share": round(tm.cluster_noise_share, 4), "n_neighbors": cs.n_neighbors,
                       "n_components": cs.n_components, "sample_cap": cs.sample_cap}}
    # Another process may land a generation while this one fits: then match against that one instead.
    for _attempt in range(CONFLICT_RETRIES):
        ids = _assign(store, settings, project, facet, tm, vectors, prev_gen)
        active, retired = apply_to_rows(curation, list(ids.topics), list(ids.retired))
        ids = replace(ids, topics=tuple(active), retired=tuple(retired))
        points = map_points(rows, tm, ids)
        points["topic_id"] = labels_as(curation, points.topic_id.tolist(),
                                       ["merged" if t in curation.merges else "active" for t in points.topic_id])
        parents, parents_matched, parent_naming = _parents(store, settings, namer, project, facet, prev_gen, ids,
                                                           points)
        try:
            store.write_generation({**info, "generation": ids.generation}, list(ids.topics + ids.retired),
                                   expected_previous=prev_gen, points=points,
                                   hierarchy=hierarchy_rows(parents, project, facet, ids.generation))
            break
        except GenerationConflict:
            prev_gen = store.latest_generation(project, facet)
    else:
        raise GenerationConflict(f"{project}/{facet}: other runs kept landing generations; try again")
    getattr(namer, "landed", lambda: None)()  # a namer from before landed() existed has nothing to drop
    shown = tuple(t for t in ids.topics if t["status"] == "active")
    return TopicMapResult(
        generated=True, generation=ids.generation, **info, naming={**naming, **parent_naming},
        matched_previous=ids.n_matched, retired=len(ids.retired), new_topics=len(ids.topics) - ids.n_matched,
        topics=shown, parents=len(parents), parents_matched=parents_matched, curated=len(curation.pins) +
        len(curation.merges), seconds=round(time.monotonic() - t0, 3))


def _previous_size(store: Store, project: str, facet: str, generation: int | None, n_sampled: int) -> int | None:
    """The previous generation's min cluster size, scaled to a sample of n_sampled facets."""
    if not generation:
        return None
    info = store.generation_info(project, facet, generation)
    params = info.get("params")
    if isinstance(params, str):
        params = json.loads(params)
    size, before = (params or {}).get("min_cluster_size"), info.get("n_sampled")
    if not size or before is None or pd.isna(before) or not before:
        return None
    return max(1, round(int(size) * n_sampled / int(before)))


def _name_topics(namer: Namer, tm: TopicMap, ids: IdentityAssignment, curation: Curation, facet: str) -> dict:
    """Name the fit's topics: those with a pinned name or merged into another get keyword names (the
    pin replaces the name when the rows are written), the rest whatever `namer` gives."""
    finals = curation.final_ids([t["topic_id"] for t in ids.topics], [int(t["size"]) for t in ids.topics])
    free = [status == "active" and fid not in curation.pins for fid, status in finals]
    named = [t for t, ok in zip(tm.topics, free) if ok]
    rest = [t for t, ok in zip(tm.topics, free) if not ok]
    KeywordNamer().name(rest, facet)
    return {**namer.name(named, facet), "pinned_names": len(rest) - sum(s == "merged" for _, s in finals)}


def _parents(store: Store, settings: Settings, namer: Namer, project: str, facet: str, prev_gen: int | None,
             ids: IdentityAssignment, points: pd.DataFrame) -> tuple[list[Parent], int, dict]:
    """Parents over the new generation's active topics, with the ids of the previous generation's
    parents they continue, named by `namer` (or keywords)."""
    active = [t for t in ids.topics if t["status"] == "active"]
    parents = build_parents(active, points.topic_id.to_numpy(dtype=object), points.text.tolist(),
                            settings.cluster.n_keywords)
    if not parents:
        return [], 0, {}
    previous = []
    if prev_gen:
        previous = previous_parents(store.load_hierarchy(project, facet, prev_gen),
                                    store.load_topics(project, facet, prev_gen, with_merged=True))
    matched = assign_parent_ids(parents, previous, store.next_parent_number(project, facet), facet,
                                settings.cluster.match_min_similarity)
    counts = name_parents(namer, parents, active, facet)
    return parents, matched, counts


def map_points(rows: pd.DataFrame, tm: TopicMap, ids: IdentityAssignment) -> pd.DataFrame:
    """The sample's rows of `topic_map_points`: each facet's place on the 2-D map and its topic id."""
    topic_ids = np.array([t["topic_id"] for t in ids.topics] + [NO_MATCH], dtype=object)
    by_index = np.full(len(tm.topics) + 1, len(ids.topics), dtype=np.int64)  # unknown -> no_match
    for topic, row in zip(tm.topics, range(len(ids.topics))):
        by_index[topic.index] = row
    labels = np.asarray(tm.labels, dtype=np.int64)
    which = np.where(labels >= 0, by_index[np.clip(labels, 0, len(tm.topics))], len(ids.topics))
    return pd.DataFrame({"trace_id": rows.trace_id.to_numpy(), "x": tm.xy[:, 0].astype(float),
                         "y": tm.xy[:, 1].astype(float), "topic_id": topic_ids[which], "text": rows.text.to_numpy()})


def _assign(store: Store, settings: Settings, project: str, facet: str, tm: TopicMap, vectors: np.ndarray,
            prev_gen: int | None) -> IdentityAssignment:
    """Read what identity needs from the store, then assign ids without it."""
    return assign_ids(load_previous_map(store, project, facet, prev_gen), tm, vectors,
                      store.next_topic_number(project, facet), settings.cluster.match_min_similarity,
                      project=project, facet=facet)


# ----------------------------------------------------------------------------------------
# classify


@dataclass(frozen=True)
class MapClassification:
    generation: int
    classified: int
    no_match: int
    no_match_rate: float | None


@dataclass(frozen=True)
class ClassifyResult(StageResult):
    classified: int
    no_match: int
    maps: dict[str, MapClassification]  # by "project/facet"
    no_match_rate: float | None
    seconds: float


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class CurrentMap:
    """One (project, facet) generation as classification uses it, stacked once: what `classify_days`
    labels a day with and what `Classifier` labels one trace with, so both give the same label."""

    project: str
    facet: str
    generation: int
    embedding_model: str
    topic_ids: np.ndarray  # object array, per centroid row
    names: dict[str, str]  # topic_id -> name
    centroids: np.ndarray
    thresholds: np.ndarray

    def label(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: (topic_id or no_match, cosine distance to the nearest centroid)."""
        idx, dist = classify_vectors(vectors, self.centroids, self.thresholds)
        if not len(self.topic_ids):
            return np.full(len(idx), NO_MATCH, dtype=object), dist
        return np.where(idx >= 0, self.topic_ids[np.maximum(idx, 0)], NO_MATCH), dist


def load_current_map(store: Store, project: str, facet: str, generation: int | None = None) -> CurrentMap | None:
    """The newest generation (or `generation`) of (project, facet); None before the first."""
    gen = store.latest_generation(project, facet) if generation is None else generation
    if gen is None:
        return None
    info = store.generation_info(project, facet, gen)
    topics = store.load_topics(project, facet, gen, with_merged=True)
    table = PreviousMap.from_rows(gen, info["threshold"], topics)
    # A merged topic's centroid labels its members as the topic it was merged into.
    labels = labels_as(Curation.load(store, project, facet), topics.topic_id.tolist(), topics.status.tolist())
    active = topics[topics.status == "active"]
    return CurrentMap(project, facet, gen, info["embedding_model"], np.array(labels, dtype=object),
                      dict(zip(active.topic_id, active.name)), table.centroids, table.thresholds)


def classify_days(*, store: Store, settings: Settings, days: list[str], project: str | None = None) -> ClassifyResult:
    """Label these days' facets with each (project, facet)'s current map; no LLM involved."""
    t0 = time.monotonic()
    maps: dict[str, MapClassification] = {}
    for proj in ([project] if project else store.projects()):
        for facet in settings.text_facet_names:
            gen = store.latest_generation(proj, facet)
            if gen is None:
                continue
            current = load_current_map(store, proj, facet, gen)
            rows, vectors = store.facet_vectors(current.embedding_model, facet, project=proj, days=days)
            ids, dist = current.label(vectors)
            df = pd.DataFrame({"trace_id": rows.trace_id, "topic_id": ids, "distance": dist.astype(float),
                               "day": rows.day})
            store.write_classifications(proj, facet, gen, days, df)
            n_nm = int((ids == NO_MATCH).sum())
            maps[f"{proj}/{facet}"] = MapClassification(gen, len(df), n_nm, _rate(n_nm, len(df)))
    classified = sum(m.classified for m in maps.values())
    no_match = sum(m.no_match for m in maps.values())
    return ClassifyResult(classified, no_match, maps, _rate(no_match, classified), round(time.monotonic() - t0, 3))


# ----------------------------------------------------------------------------------------
# ad hoc


@dataclass(frozen=True)
class AdhocResult(StageResult):
    project: str
    facet: str
    where: str | None
    n_facets: int
    n_topics: int
    noise_share: float
    min_cluster_size: int
    topics: tuple[dict, ...]  # biggest first, ids adhoc-001, ...
    seconds: float


def cluster_adhoc(*, store: Store, settings: Settings, project: str, facet: str, where: str | None = None,
                  min_cluster_size: int | None = None, sample_cap: int = 20_000) -> AdhocResult:
    """The same fit on any filtered subset (a SQL condition on `traces t`); nothing is persisted."""
    from ..embed import embedding_model_id

    t0 = time.monotonic()
    if facet not in settings.text_facet_names:
        raise ValueError(f"facet {facet!r} is not a free-text facet; choose one of {', '.join(settings.text_facet_names)}")
    model_id = embedding_model_id(settings.embedding)
    rows, vectors = store.facet_vectors(model_id, facet, project=project, where=where, limit_sample=sample_cap,
                                        seed=settings.cluster.random_state)
    if len(rows) == 0:
        raise ValueError(f"no embedded {facet} facets in project {project!r}" + (f" where {where}" if where else ""))
    # Exploration favours finer topics on small subsets.
    mcs = min_cluster_size or max(3, min(50, len(rows) // 100))
    reducer, clusterer = build_components(settings.cluster, min_cluster_size=mcs)
    tm = TopicMap.fit(vectors, rows.text.tolist(), settings.cluster, reducer=reducer, clusterer=clusterer)
    KeywordNamer().name(tm.topics, facet)
    topics = tuple({"topic_id": f"adhoc-{i + 1:03d}", "name": t.name, "size": t.size, "keywords": t.keywords,
                    "examples": t.examples} for i, t in enumerate(sorted(tm.topics, key=lambda t: -t.size)))
    return AdhocResult(project, facet, where, len(rows), len(topics), round(tm.noise_share, 4), mcs, topics,
                       round(time.monotonic() - t0, 3))
