"""The insight stage over a Store and Settings: a day's per-topic figures, its trends, and their alerts.

`topic_stats_days` writes the figures of these days (table topic_stats), judges each day against the
trailing days' figures in the same table, and records what it finds in topic_alerts (each alert once),
where the topic_alerts sensor sends it from. Days are handled in order, so a backfill's later days are
judged against its earlier ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from ..config import Settings
from ..results import StageResult
from ..store import Store
from .stats import topic_stats
from .trends import detect

EXAMPLES = 2


@dataclass(frozen=True)
class TopicStatsResult(StageResult):
    days: tuple[str, ...]
    rows: int  # topic_stats rows written
    traces: dict[str, int]  # labelled traces per "project/facet"
    alerts: tuple[dict, ...]  # what the trends found on these days
    new_alerts: int  # of them, recorded for the first time
    seconds: float

    def alerts_of(self, project: str | None = None, facet: str | None = None) -> list[dict]:
        return [a for a in self.alerts if (project is None or a["project"] == project)
                and (facet is None or a["facet"] == facet)]


def categorical_facets(settings: Settings) -> list[str]:
    return [f.name for f in settings.facets if f.kind in ("enum", "score")]


def _shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def counts_frame(stats: pd.DataFrame, first_generations: pd.DataFrame) -> pd.DataFrame:
    """topic_stats rows as trends.detect reads them: traces, failures, and whether the topic id is
    first seen in its (project, facet)'s current generation."""
    frame = stats[["project", "facet", "day", "topic_id", "traces", "failures"]].copy()
    fresh = first_generations[first_generations.first_generation == first_generations.latest_generation]
    keys = set(zip(fresh.project, fresh.facet, fresh.topic_id))
    frame["first_seen"] = [k in keys for k in zip(frame.project, frame.facet, frame.topic_id)]
    return frame


def topic_stats_days(*, store: Store, settings: Settings, days: list[str]) -> TopicStatsResult:
    """Figures, trends and alerts of these days (each day judged against the days before it)."""
    t0 = time.monotonic()
    rows = 0
    traces: dict[str, int] = {}
    alerts: list[dict] = []
    new_alerts = 0
    insight = settings.insight
    for day in sorted(days):
        stats = topic_stats(store.topic_trace_rows([day], categorical_facets(settings)), insight)
        store.replace_topic_stats([day], stats)
        rows += len(stats)
        for (p, f), n in stats.groupby(["project", "facet"])["traces"].sum().items():
            traces[f"{p}/{f}"] = traces.get(f"{p}/{f}", 0) + int(n)
        window = store.load_topic_stats(since_day=_shift(day, -insight.baseline_days), until_day=day)
        if not len(window):
            continue
        found = detect(counts_frame(window, store.topic_first_generations()), insight, days=[day])
        if not len(found):
            continue
        day_alerts = _describe(store, found, window, day)
        new_alerts += store.record_alerts([_alert_row(a) for a in day_alerts])
        alerts += day_alerts
    return TopicStatsResult(tuple(sorted(days)), rows, traces, tuple(alerts), new_alerts,
                            round(time.monotonic() - t0, 3))


def _describe(store: Store, found: pd.DataFrame, window: pd.DataFrame, day: str) -> list[dict]:
    """Alerts with the topic's name, generation and two example texts of the day."""
    latest = window.sort_values("day").groupby(["project", "facet", "topic_id"]).last()
    out = []
    for (p, f), g in found.groupby(["project", "facet"]):
        examples = store.topic_examples(p, f, day, list(g.topic_id.unique()), EXAMPLES)
        for a in g.to_dict("records"):
            info = latest.loc[(p, f, a["topic_id"])] if (p, f, a["topic_id"]) in latest.index else None
            name = info["topic_name"] if info is not None else None
            generation = info["generation"] if info is not None else None
            texts = examples.get(a["topic_id"]) or ([a["topic_id"]] if name == a["topic_id"] else [])
            out.append({**{k: _plain(v) for k, v in a.items()}, "topic_name": name,
                        "generation": None if generation is None or pd.isna(generation) else int(generation),
                        "examples": texts})
    return out


def _plain(v):
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _alert_row(a: dict) -> dict:
    """A topic_alerts row: the figures as columns, the rest (examples, failures, ratio) in `detail`."""
    detail = {k: a[k] for k in ("ratio", "failures", "failure_rate", "baseline_failure_rate", "day_traces",
                                "examples")}
    return {"project": a["project"], "facet": a["facet"], "topic_id": a["topic_id"], "day": a["day"],
            "kind": a["kind"], "generation": a["generation"], "topic_name": a["topic_name"], "count": a["count"],
            "expected": a["expected"], "share": a["share"], "baseline_share": a["baseline_share"],
            "p_value": a["p_value"], "q_value": a["q_value"], "detail": json.dumps(detail)}
