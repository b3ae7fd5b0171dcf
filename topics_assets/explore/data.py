"""What the explorer shows, as plain JSON-ready dicts built from the store's named reads.

The web app (app.py) and the self-contained report serve the same dicts, so the two cannot
disagree. Nothing here fits or writes anything: the 2-D layout was stored with its generation
(`topic_map_points`), and counts come from the labels the pipeline already wrote.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..store import Store
from ..topics.topic_map import NO_MATCH

N_NEAREST = 5


class NotFound(LookupError):
    """A project, facet, generation, topic or trace the store does not have (the app answers 404)."""


def jsonable(v: Any) -> Any:
    """Numpy, pandas and missing values as JSON takes them."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def records(df: pd.DataFrame) -> list[dict]:
    return [jsonable(r) for r in df.to_dict(orient="records")]


def maps(store: Store) -> list[dict]:
    """Every (project, facet) with a map, and its generations newest first: what the filters offer."""
    out: dict[tuple[str, str], dict] = {}
    for g in records(store.map_generations()):
        entry = out.setdefault((g["project"], g["facet"]), {"project": g["project"], "facet": g["facet"],
                                                           "generations": []})
        entry["generations"].append({k: g[k] for k in ("generation", "created_at", "n_topics", "n_sampled",
                                                         "n_points", "naming_engine", "noise_share")})
    return list(out.values())


def _resolve(store: Store, project: str, facet: str, generation: int | None) -> int:
    gens = store.map_generation_numbers(project, facet)
    if not gens:
        raise NotFound(f"no topic map for project {project!r}, facet {facet!r}")
    if generation is None:
        return gens[0]
    if int(generation) in gens:
        return int(generation)
    raise NotFound(f"{project}/{facet} has no generation {generation} (it has {gens})")


def _topics(store: Store, project: str, facet: str, generation: int) -> pd.DataFrame:
    return store.load_topics(project, facet, generation, active_only=True, read_only=True)


def overview(store: Store, project: str, facet: str, generation: int | None = None, start: str | None = None,
             end: str | None = None) -> dict:
    """Per topic of one generation: traces it labelled (and share), a daily series, its failure rate."""
    generation = _resolve(store, project, facet, generation)
    topics = _topics(store, project, facet, generation)
    daily = store.topic_daily(project, facet, generation, start, end)
    days = sorted(set(daily.day))
    pos = {d: i for i, d in enumerate(days)}
    total = int(daily.n.sum()) if len(daily) else 0
    by_topic: dict[str, dict] = {}
    for r in daily.itertuples(index=False):
        t = by_topic.setdefault(r.topic_id, {"n": 0, "failed": 0, "daily": [0] * len(days)})
        t["n"] += int(r.n)
        t["failed"] += int(r.failed)
        t["daily"][pos[r.day]] += int(r.n)
    empty = {"n": 0, "failed": 0, "daily": [0] * len(days)}
    # Flags: the trend alerts (rising, new, failing, ...) of the newest day shown.
    flags: dict[str, list[str]] = {}
    if days:
        for a in store.topic_alert_kinds(project, facet, days[-1]).itertuples(index=False):
            flags.setdefault(a.topic_id, []).append(a.kind)
    hierarchy = store.load_hierarchy(project, facet, generation, read_only=True)
    parents = {r.topic_id: (r.parent_id, r.parent_name) for r in hierarchy.itertuples(index=False)}
    rows = []
    for t in topics.itertuples(index=False):
        c = by_topic.get(t.topic_id, empty)
        parent_id, parent_name = parents.get(t.topic_id, (None, None))
        rows.append({"topic_id": t.topic_id, "name": t.name, "description": t.description,
                     "parent_id": parent_id, "parent_name": parent_name,
                     "keywords": jsonable(t.keywords), "size": jsonable(t.size), "n": c["n"],
                     "share": round(c["n"] / total, 4) if total else None, "failed": c["failed"],
                     "failure_rate": round(c["failed"] / c["n"], 4) if c["n"] else None, "daily": c["daily"],
                     "flags": flags.get(t.topic_id, [])})
    rows.sort(key=lambda r: (-r["n"], -(r["size"] or 0), r["topic_id"]))
    nm = by_topic.get(NO_MATCH, empty)
    return {"project": project, "facet": facet, "generation": generation, "start": start, "end": end,
            "days": days, "total": total, "topics": rows, "flags_day": days[-1] if days else None,
            "no_match": {"n": nm["n"], "share": round(nm["n"] / total, 4) if total else None,
                         "failed": nm["failed"], "daily": nm["daily"]}}


def points(store: Store, project: str, facet: str, generation: int | None = None, start: str | None = None,
           end: str | None = None, text: bool = True) -> dict:
    """The generation's 2-D map, column-wise (one list per field) so 50,000 points stay a small payload:
    topics and days are indices into `topics` / `days`. With text=False no facet texts (most of the
    payload): the page draws the map first and asks for them after (point_texts)."""
    generation = _resolve(store, project, facet, generation)
    df = store.map_points(project, facet, generation, start, end, text=text)
    topics = _topics(store, project, facet, generation)
    names = dict(zip(topics.topic_id, topics.name))
    topic_ids = topics.topic_id.tolist()
    topic_ids += sorted(set(df.topic_id) - set(topic_ids) - {NO_MATCH}) + [NO_MATCH]
    tpos = {t: i for i, t in enumerate(topic_ids)}
    days = sorted({d for d in df.day if isinstance(d, str)})
    dpos = {d: i for i, d in enumerate(days)}
    return {"project": project, "facet": facet, "generation": generation, "topics": topic_ids,
            "names": [names.get(t) or t for t in topic_ids], "days": days,
            "n": len(df),
            "x": np.round(df.x.to_numpy(dtype=float), 4).tolist(),
            "y": np.round(df.y.to_numpy(dtype=float), 4).tolist(),
            "topic": df.topic_id.map(tpos).to_numpy(dtype=np.int64).tolist(),
            "day": df.day.map(dpos).fillna(-1).to_numpy(dtype=np.int64).tolist(),
            "failed": df.failed.fillna(False).to_numpy(dtype=bool).astype(np.int8).tolist(),
            "trace_id": df.trace_id.tolist(), **({"text": _texts(df)} if text else {})}


def _texts(df: pd.DataFrame) -> list[str]:
    return df.text.where(df.text.map(type) == str, "").tolist()


def point_texts(store: Store, project: str, facet: str, generation: int | None = None, start: str | None = None,
                end: str | None = None) -> dict:
    """The facet text of each point of `points`, in the same order (the map's tooltips)."""
    generation = _resolve(store, project, facet, generation)
    return {"generation": generation, "text": _texts(store.map_points(project, facet, generation, start, end))}


def topic(store: Store, project: str, facet: str, topic_id: str, generation: int | None = None,
          start: str | None = None, end: str | None = None, limit: int = 200, _known: tuple | None = None) -> dict:
    """One topic: what the map says of it, its nearest topics by centroid cosine, its trend and its traces.

    `_known` is (generation, its topics frame, its overview) already read for this scope (the report
    builds every topic page of a generation from one read)."""
    if _known is None:
        generation = _resolve(store, project, facet, generation)
        topics = _topics(store, project, facet, generation)
        ov = overview(store, project, facet, generation, start, end)
    else:
        generation, topics, ov = _known
    match = topics.index[topics.topic_id == topic_id]
    if topic_id != NO_MATCH and not len(match):
        raise NotFound(f"{project}/{facet} generation {generation} has no topic {topic_id!r}")
    stats = next((t for t in ov["topics"] if t["topic_id"] == topic_id), None) or {**ov["no_match"],
                                                                                  "topic_id": NO_MATCH}
    info: dict[str, Any] = {"topic_id": topic_id, "name": "no_match", "description":
                            "traces farther from every topic than its threshold", "keywords": [], "examples": []}
    nearest: list[dict] = []
    if topic_id != NO_MATCH:
        row = topics.loc[match[0]]
        info = {k: jsonable(row[k]) for k in ("topic_id", "name", "description", "keywords", "examples", "size",
                                              "threshold")}
        c = np.vstack(topics.centroid.tolist()).astype(np.float32)
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        sims = c @ c[match[0]]
        order = [i for i in np.argsort(-sims, kind="stable") if i != match[0]][:N_NEAREST]
        nearest = [{"topic_id": topics.topic_id[i], "name": topics.name[i], "similarity": round(float(sims[i]), 4)}
                   for i in order]
    traces = store.topic_traces(project, facet, generation, topic_id, limit, start, end)
    return {"project": project, "facet": facet, "generation": generation, "days": ov["days"],
            "topic": {**info, **{k: stats.get(k) for k in ("n", "share", "failed", "failure_rate", "daily")}},
            "parent": parent(store, project, facet, generation, topic_id, topics),
            "nearest": nearest, "traces": records(traces)}


def parent(store: Store, project: str, facet: str, generation: int, topic_id: str,
           topics: pd.DataFrame | None = None) -> dict | None:
    """The topic's parent in topic_hierarchy (id, name, description, keywords) and the parent's children
    (this topic among them), biggest first; None when the generation has no parent for it."""
    hierarchy = store.load_hierarchy(project, facet, generation, read_only=True)
    mine = hierarchy[hierarchy.topic_id == topic_id]
    if not len(mine):
        return None
    topics = _topics(store, project, facet, generation) if topics is None else topics
    names = dict(zip(topics.topic_id, topics.name))
    sizes = dict(zip(topics.topic_id, topics["size"]))
    row = mine.iloc[0]
    kids = hierarchy[hierarchy.parent_id == row.parent_id].topic_id.tolist()
    kids.sort(key=lambda t: (-int(sizes.get(t) or 0), t))
    return {"parent_id": row.parent_id, "name": row.parent_name, "description": row.parent_description,
            "keywords": jsonable(row.parent_keywords),
            "children": [{"topic_id": t, "name": names.get(t, t), "size": jsonable(sizes.get(t))} for t in kids]}


def trace(store: Store, project: str, trace_id: str) -> dict:
    """One trace: the text the facet model saw, every facet, the outcome signals and its topic labels."""
    return traces(store, project, [trace_id])[trace_id]


def traces(store: Store, project: str, trace_ids: list[str]) -> dict[str, dict]:
    """`trace` for many traces of a project, read on one connection; one missing raises NotFound."""
    parts = store.trace_details(project, trace_ids)
    by: dict[str, dict[str, list]] = {}
    for name, df in parts.items():
        for r in records(df):
            tid = r["trace_id"] if name == "trace" else r.pop("trace_id")
            by.setdefault(tid, {}).setdefault(name, []).append(r)
    out = {}
    for trace_id in trace_ids:
        p = by.get(trace_id)
        if not p or not (p.get("trace") or p.get("facets")):
            raise NotFound(f"no trace {trace_id!r} in project {project!r}")
        out[trace_id] = {"project": project, "trace_id": trace_id, "trace": (p.get("trace") or [None])[0],
                         "facets": p.get("facets", []), "outcome": (p.get("outcome") or [None])[0],
                         "labels": p.get("labels", [])}
    return out
