"""Curation that survives regeneration: pinned names and merged topics, kept by topic id.

`topics rename` pins a name on a topic id and `topics merge KEEP OTHER` labels OTHER's members as KEEP.
Both are stored (topic_curation) and applied to the current generation at once (by the store), and to
every later one here: the id matching gives a new cluster the id it continues, so a pin or merge made
on that id applies to it. A merged cluster keeps its own centroid (status 'merged') and labels for the
topic it was merged into; when that topic has no continuation, the merged one takes its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..store import Store
from .topic_map import NO_MATCH


class CurationError(ValueError):
    """A rename or merge that cannot be made (unknown topic, no map, a topic merged already)."""


@dataclass(frozen=True)
class Curation:
    pins: dict[str, str] = field(default_factory=dict)  # topic id -> pinned name
    merges: dict[str, str] = field(default_factory=dict)  # merged topic id -> the id it is labelled as

    @classmethod
    def load(cls, store: Store, project: str, facet: str, read_only: bool = False) -> Curation:
        df = store.load_curation(project, facet, read_only=read_only)
        pins = {r.topic_id: r.value for r in df.itertuples(index=False) if r.action == "rename"}
        merges = {r.topic_id: r.value for r in df.itertuples(index=False) if r.action == "merge"}
        return cls(pins, merges)

    def __bool__(self) -> bool:
        return bool(self.pins or self.merges)

    def final_ids(self, topic_ids: list[str], sizes: list[int]) -> list[tuple[str, str]]:
        """Per topic of a new generation (by its matched id): (the id it labels as, 'active' or 'merged').
        A merged topic whose target is absent takes the target's id (the biggest such one, if several)."""
        present = set(topic_ids)
        out: list[tuple[str, str] | None] = [None] * len(topic_ids)
        taken: set[str] = set()
        for i in sorted(range(len(topic_ids)), key=lambda i: -sizes[i]):
            tid = topic_ids[i]
            dst = self.merges.get(tid)
            if dst is None or dst == tid:
                out[i] = (tid, "active")
            elif dst in present or dst in taken:
                out[i] = (dst, "merged")
            else:
                out[i] = (dst, "active")
                taken.add(dst)
        return out  # type: ignore[return-value]


def apply_to_rows(curation: Curation, topics: list[dict], retired: list[dict]) -> tuple[list[dict], list[dict]]:
    """The new generation's topic_maps rows with curation applied: merged ones marked, their sizes added
    to their targets, pinned names set; a retired row whose id a merged topic took over is dropped."""
    if not curation:
        return topics, retired
    finals = curation.final_ids([t["topic_id"] for t in topics], [int(t["size"]) for t in topics])
    rows = [{**t, "topic_id": fid, "status": status} if status == "active" else {**t, "status": "merged"}
            for t, (fid, status) in zip(topics, finals)]
    target = {t["topic_id"]: fid for t, (fid, status) in zip(topics, finals) if status == "merged"}
    by_id = {r["topic_id"]: r for r in rows if r["status"] == "active"}
    for r in rows:
        if r["status"] == "merged" and target.get(r["topic_id"]) in by_id:
            by_id[target[r["topic_id"]]]["size"] += int(r["size"])
    for r in rows:
        if r["status"] == "active" and r["topic_id"] in curation.pins:
            r["name"] = curation.pins[r["topic_id"]]
    active = set(by_id)
    return rows, [r for r in retired if r["topic_id"] not in active]


def labels_as(curation: Curation, topic_ids: list[str], statuses: list[str]) -> list[str]:
    """What each stored topic row labels its members as: itself, or (status 'merged') its target."""
    return [curation.merges.get(t, t) if s == "merged" else t for t, s in zip(topic_ids, statuses)]


# ----- the commands ------------------------------------------------------------------------------

def _current(store: Store, project: str, facet: str) -> tuple[int, Any]:
    gen = store.latest_generation(project, facet)
    if gen is None:
        raise CurationError(f"no topic map for project {project!r}, facet {facet!r} yet")
    return gen, store.load_topics(project, facet, gen, active_only=False)


def _known(topics: Any, topic_id: str, project: str, facet: str, gen: int) -> None:
    if topic_id == NO_MATCH:
        raise CurationError(f"{NO_MATCH} is not a topic; it cannot be renamed or merged")
    status = dict(zip(topics.topic_id, topics.status)).get(topic_id)
    if status == "active":
        return
    active = sorted(topics.topic_id[topics.status == "active"])
    why = {"merged": "it was merged into another topic", "retired": "it is retired (no cluster continues it)"}
    reason = why.get(status, "there is no such topic")
    raise CurationError(f"{project}/{facet} generation {gen}: cannot use topic {topic_id!r}: {reason}; "
                        f"active topics: {', '.join(active)}")


def rename_topic(*, store: Store, project: str, facet: str, topic_id: str, name: str) -> dict:
    """Pin `name` on topic_id: shown now, and kept by every later generation (naming leaves it alone)."""
    name = " ".join(str(name).split())
    if not name:
        raise CurationError("the new name is empty")
    gen, topics = _current(store, project, facet)
    _known(topics, topic_id, project, facet, gen)
    old = topics.name[topics.topic_id == topic_id].iloc[0]
    store.rename_topic(project, facet, gen, topic_id, name)
    return {"project": project, "facet": facet, "generation": gen, "topic_id": topic_id, "old_name": old,
            "name": name}


def merge_topics(*, store: Store, project: str, facet: str, keep: str, other: str) -> dict:
    """Label `other`'s members as `keep` from now on: this generation at once, and every later one."""
    if keep == other:
        raise CurationError(f"cannot merge topic {keep!r} into itself")
    gen, topics = _current(store, project, facet)
    _known(topics, keep, project, facet, gen)
    _known(topics, other, project, facet, gen)
    sizes = dict(zip(topics.topic_id, topics["size"]))
    store.merge_topics(project, facet, gen, keep, other)
    return {"project": project, "facet": facet, "generation": gen, "topic_id": keep, "merged": other,
            "size": int(sizes[keep]) + int(sizes[other])}
