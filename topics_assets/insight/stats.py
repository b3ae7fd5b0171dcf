"""Per-topic figures of a day, as a pure function of per-trace rows: traces, share, error and failure
rates, mean scores, duration percentiles, tokens and cost.

A trace failed when it ended abnormally or a score is below its pass mark. Scores have no common scale:
one in [0, 1] (tau rewards, evaluator scores) passes at `default_pass_mark`; any other value counts only
where `pass_marks` names its score, so a 1-5 rating is never judged against 0.5 by accident.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from ..config import InsightSettings

KEY = ["project", "facet", "topic_id", "day"]


def parse_scores(text) -> dict[str, float]:
    """A trace_outcomes.scores value (JSON text, or NULL) as {name: number}."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return {}
    data = json.loads(text) if isinstance(text, str) else text
    return {k: float(v) for k, v in (data or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v))}


def score_failed(name: str, value: float, insight: InsightSettings) -> bool:
    """Below its pass mark; a score without a mark of its own is judged only on the [0, 1] scale."""
    if name in insight.pass_marks:
        return value < insight.pass_marks[name]
    return 0.0 <= value <= 1.0 and value < insight.default_pass_mark


def trace_failed(abnormal_end, scores: dict[str, float], insight: InsightSettings) -> bool:
    ended_badly = False if abnormal_end is None or pd.isna(abnormal_end) else bool(abnormal_end)
    return ended_badly or any(score_failed(k, v, insight) for k, v in scores.items())


def topic_stats(rows: pd.DataFrame, insight: InsightSettings | None = None) -> pd.DataFrame:
    """One row per (project, facet, topic_id, day) of `rows` (as Store.topic_trace_rows returns them),
    with the topic_stats columns."""
    insight = insight or InsightSettings()
    columns = KEY + ["generation", "topic_name", "traces", "day_traces", "share", "errors", "error_rate", "failures",
                     "failure_rate", "scored", "scores", "duration_p50", "duration_p95", "input_tokens",
                     "output_tokens", "cost_usd"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    df = rows.reset_index(drop=True).copy()
    scores = [parse_scores(s) for s in df["scores"]]
    df["_error"] = (df["status"] == "error").fillna(False).astype(int)
    df["_failed"] = [int(trace_failed(a, s, insight)) for a, s in zip(df["abnormal_end"].astype(object), scores)]
    df["_scored"] = [int(bool(s)) for s in scores]
    for c in ("duration_s", "input_tokens", "output_tokens", "cost_usd", "generation"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    g = df.groupby(KEY, sort=True)
    out = pd.DataFrame({
        "generation": g["generation"].max(),
        "topic_name": g["topic_name"].first(),
        "traces": g.size(),
        "errors": g["_error"].sum(),
        "failures": g["_failed"].sum(),
        "scored": g["_scored"].sum(),
        "duration_p50": g["duration_s"].quantile(0.5),
        "duration_p95": g["duration_s"].quantile(0.95),
        "input_tokens": g["input_tokens"].sum(min_count=1),
        "output_tokens": g["output_tokens"].sum(min_count=1),
        "cost_usd": g["cost_usd"].sum(min_count=1),
    }).reset_index()
    out["day_traces"] = out.groupby(["project", "facet", "day"])["traces"].transform("sum")
    out["share"] = out["traces"] / out["day_traces"]
    out["error_rate"] = out["errors"] / out["traces"]
    out["failure_rate"] = out["failures"] / out["traces"]
    long = [(i, k, v) for i, s in enumerate(scores) for k, v in s.items()]
    means: dict[tuple, dict[str, float]] = {}
    if long:
        ls = pd.DataFrame(long, columns=["_row", "name", "value"]).join(df[KEY], on="_row")
        for (*key, name), value in ls.groupby(KEY + ["name"])["value"].mean().items():
            means.setdefault(tuple(key), {})[name] = round(float(value), 6)
    out["scores"] = [json.dumps(means.get(tuple(k), {}), sort_keys=True) for k in out[KEY].itertuples(index=False)]
    for c in ("input_tokens", "output_tokens"):
        out[c] = out[c].astype("Int64")
    out["generation"] = out["generation"].astype("Int64")
    return out[columns]
