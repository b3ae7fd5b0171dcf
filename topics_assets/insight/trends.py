"""Trends per topic and day, as pure functions over a daily counts frame: rising, falling, new, gone, failing.

Every verdict is a test on counts against a trailing baseline, never a raw percentage change:
- share (rising / falling): Fisher's exact test on the 2x2 table (the topic's traces and the rest, today
  against the baseline days), and, so that day-to-day variation beyond sampling noise does not read as
  a trend, a quasi-binomial score test whose variance is inflated by the topic's dispersion over the
  baseline days (at least binomial), shrunk toward the whole facet's (a few days say little on their
  own), against Student's t. A topic must pass both (the larger p-value is kept);
- failure rate (failing): Fisher's exact test on the topic's failures today against its baseline
  (or the whole facet's, where the topic has too few baseline traces to judge by).
p-values are adjusted with Benjamini-Hochberg across the topics of a (project, facet, day), one family
per direction. `new` is a rising topic whose id is first seen in the current generation and that was
(nearly) absent from the baseline; `gone` a falling one with no trace today. A minimum count and a
minimum ratio keep statistically certain but tiny changes (at very high volume) out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..config import InsightSettings

NO_MATCH = "no_match"
KINDS = ("rising", "falling", "new", "gone", "failing")
ALERT_FIELDS = ["project", "facet", "topic_id", "day", "kind", "count", "expected", "share", "baseline_share",
                "ratio", "p_value", "q_value", "failures", "failure_rate", "baseline_failure_rate", "day_traces"]


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values along the last axis (NaN entries are not tested and stay NaN)."""
    p = np.asarray(p, dtype=float)
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    out = np.full_like(flat, np.nan)
    for i, row in enumerate(flat):
        ok = ~np.isnan(row)
        m = int(ok.sum())
        if not m:
            continue
        vals = row[ok]
        order = np.argsort(vals)
        ranked = vals[order] * m / np.arange(1, m + 1)
        q = np.minimum.accumulate(ranked[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(q, 1.0)
        out[i, ok] = res
    return out.reshape(p.shape)


def _windowed(a: np.ndarray, w: int) -> np.ndarray:
    """Sum over the `w` rows before each row (not including it), along axis 0."""
    cs = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    idx = np.arange(a.shape[0])
    return cs[idx] - cs[np.maximum(idx - w, 0)]


def _dense(group: pd.DataFrame, values: list[str], days: pd.DatetimeIndex, topics: list[str]) -> list[np.ndarray]:
    """(days, topics) matrices of these columns, zero where a topic had no row."""
    d = days.get_indexer(group["day"])
    t = pd.Index(topics).get_indexer(group["topic_id"])
    out = []
    for v in values:
        m = np.zeros((len(days), len(topics)))
        np.add.at(m, (d, t), group[v].to_numpy(dtype=float))
        out.append(m)
    return out


def _where(mask: np.ndarray, fn, *args) -> np.ndarray:
    """fn(*args) where mask holds (NaN elsewhere): the exact tests are computed only where they are needed."""
    out = np.full(mask.shape, np.nan)
    if mask.any():
        out[mask] = fn(*(np.broadcast_to(a, mask.shape)[mask] for a in args))
    return out


def detect(counts: pd.DataFrame, params: InsightSettings | None = None, days: list[str] | None = None) -> pd.DataFrame:
    """The alerts of each (project, facet, topic, day) in `counts` (or only of `days`).

    `counts` has one row per (project, facet, day, topic_id) with `traces`, optionally `failures`
    and `first_seen` (the topic id first appears in the current generation; without it every id may be
    new); the day's total is the sum over its topics, `no_match` included. Returns one row per alert
    (columns ALERT_FIELDS) with the test's p-value and BH q-value. `params`: the insight settings."""
    params = params or InsightSettings()
    out = [_detect_group(g, params, days) for _, g in counts.groupby(["project", "facet"], sort=True)]
    out = [o for o in out if len(o)]
    if not out:
        return pd.DataFrame(columns=ALERT_FIELDS)
    return pd.concat(out, ignore_index=True)[ALERT_FIELDS]


def _detect_group(g: pd.DataFrame, params: InsightSettings, only_days: list[str] | None) -> pd.DataFrame:
    g = g.assign(day=pd.to_datetime(g["day"]))
    if "failures" not in g:
        g = g.assign(failures=0)
    calendar = pd.date_range(g.day.min(), g.day.max(), freq="D")
    topics = sorted(g.topic_id.unique())
    k, f = _dense(g, ["traces", "failures"], calendar, topics)  # (days, topics)
    first_seen = (g.groupby("topic_id")["first_seen"].max().reindex(topics).fillna(False).to_numpy(bool)
                  if "first_seen" in g else np.ones(len(topics), bool))
    is_topic = np.array([t != NO_MATCH for t in topics])
    n = k.sum(axis=1, keepdims=True)  # the day's traces
    w = params.baseline_days
    kb, nb = _windowed(k, w), _windowed(n, w)
    fb = _windowed(f, w)
    days_b = _windowed((n > 0).astype(float), w)  # baseline days with traces
    # Pearson dispersion of each topic's daily share over the baseline days: sum k_j^2/n_j - K^2/N.
    with np.errstate(divide="ignore", invalid="ignore"):
        k2n = _windowed(np.where(n > 0, k ** 2 / np.where(n > 0, n, 1), 0.0), w)
        pb = np.where(nb > 0, kb / nb, 0.0)
        chi2 = k2n - np.where(nb > 0, kb ** 2 / nb, 0.0)
        dof = np.maximum(days_b - 1, 1)
        # Each topic's own dispersion, shrunk toward the facet's (a few baseline days say little alone).
        tested = pb * (1 - pb) > 0
        own = np.where(tested, chi2 / np.where(tested, pb * (1 - pb), 1), 0.0)
        pool = own.sum(axis=1, keepdims=True) / np.maximum((dof * tested).sum(axis=1, keepdims=True), 1)
        prior = params.dispersion_prior_days
        disp = np.maximum((own + prior * pool) / (np.where(tested, dof, 0) + prior), 1.0)
        dof = dof + prior
        p_today = np.where(n > 0, k / np.where(n > 0, n, 1), 0.0)
        pooled = (k + kb) / np.maximum(n + nb, 1)
        se = np.sqrt(disp * pooled * (1 - pooled) * (1 / np.maximum(n, 1) + 1 / np.maximum(nb, 1)))
        z = np.where(se > 0, (p_today - pb) / np.where(se > 0, se, 1), 0.0)
    judged = (days_b >= params.min_baseline_days) & (n > 0)  # (days, 1)
    if only_days is not None:
        judged &= np.isin(calendar.strftime("%Y-%m-%d"), list(only_days))[:, None]
    judged = np.broadcast_to(judged, k.shape)
    total = n + nb
    # Fisher, one-sided each way: today's count among the traces of both periods that are this topic's.
    rise_q, fall_q = stats.t.sf(z, dof), stats.t.cdf(z, dof)
    # The exact test only where the other leaves a chance: past alpha, a p-value cannot be rejected
    # whatever it is, and cannot change the q-values of those that are (so it stays the t-test's).
    rise_exact = _where(judged & (k >= params.min_count) & (rise_q <= params.alpha),
                        stats.hypergeom.sf, k - 1, total, k + kb, n)
    fall_exact = _where(judged & (n * pb >= params.min_count) & (fall_q <= params.alpha),
                        stats.hypergeom.cdf, k, total, k + kb, n)
    # A topic too small to rise (or to fall) is still one of the day's hypotheses: p = 1, not untested.
    small_rise, small_fall = judged & (k < params.min_count), judged & (n * pb < params.min_count)
    rise_exact = np.where(small_rise, 1.0, np.where(np.isnan(rise_exact), rise_q, rise_exact))
    fall_exact = np.where(small_fall, 1.0, np.where(np.isnan(fall_exact), fall_q, fall_exact))
    p_rise = np.where(judged, np.maximum(rise_exact, rise_q), np.nan)
    p_fall = np.where(judged, np.maximum(fall_exact, fall_q), np.nan)
    q_rise, q_fall = benjamini_hochberg(p_rise), benjamini_hochberg(p_fall)
    expected = n * pb
    rising = judged & (q_rise <= params.alpha) & (k >= params.min_count) & (p_today >= params.min_ratio * pb)
    falling = (judged & (q_fall <= params.alpha) & (expected >= params.min_count)
               & (p_today * params.min_ratio <= pb))
    # Failure rate: against the topic's own baseline, or the facet's where it has too little of one.
    own = kb >= params.min_topic_baseline
    fac_f, fac_k = fb.sum(axis=1, keepdims=True), kb.sum(axis=1, keepdims=True)
    base_f, base_k = np.where(own, fb, fac_f), np.where(own, kb, fac_k)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(k > 0, f / np.maximum(k, 1), 0.0)
        base_rate = np.where(base_k > 0, base_f / np.maximum(base_k, 1), np.nan)
    judged_f = judged & (k > 0) & (base_k > 0)
    p_fail = _where(judged_f & (f >= params.min_failures), stats.hypergeom.sf, f - 1, k + base_k, f + base_f, k)
    p_fail = np.where(judged_f & np.isnan(p_fail), 1.0, p_fail)
    q_fail = benjamini_hochberg(p_fail)
    failing = (judged_f & (q_fail <= params.alpha) & (f >= params.min_failures)
               & (rate >= params.min_ratio * np.nan_to_num(base_rate)))
    new = rising & first_seen[None, :] & is_topic[None, :] & (pb <= params.new_max_baseline_ratio * p_today)
    gone = falling & is_topic[None, :] & (k == 0)
    rows = []
    day_text = calendar.strftime("%Y-%m-%d")
    for kind, mask, pv, qv in (("new", new, p_rise, q_rise), ("rising", rising & ~new, p_rise, q_rise),
                               ("gone", gone, p_fall, q_fall), ("falling", falling & ~gone, p_fall, q_fall),
                               ("failing", failing, p_fail, q_fail)):
        for d, t in zip(*np.nonzero(mask)):
            rows.append({"project": g.project.iloc[0], "facet": g.facet.iloc[0], "topic_id": topics[t],
                         "day": day_text[d], "kind": kind, "count": int(k[d, t]),
                         "expected": float(expected[d, t]), "share": float(p_today[d, t]),
                         "baseline_share": float(pb[d, t]),
                         "ratio": float(p_today[d, t] / pb[d, t]) if pb[d, t] > 0 else None,
                         "p_value": float(pv[d, t]), "q_value": float(qv[d, t]), "failures": int(f[d, t]),
                         "failure_rate": float(rate[d, t]),
                         "baseline_failure_rate": None if np.isnan(base_rate[d, t]) else float(base_rate[d, t]),
                         "day_traces": int(n[d, 0])})
    return pd.DataFrame(rows, columns=ALERT_FIELDS)
