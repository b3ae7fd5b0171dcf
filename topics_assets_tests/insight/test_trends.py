"""trends.detect on synthetic daily counts frames: no store, no Dagster."""

import numpy as np
import pandas as pd
import pytest

from topics_assets.config import InsightSettings
from topics_assets.insight.stats import topic_stats, trace_failed
from topics_assets.insight.trends import benjamini_hochberg, detect

SHARES = np.array([0.3, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02])


def frame(days=21, volume=400, seed=0, change=None, failures=None, first_seen=()):
    """Multinomial days; `change` = (day, topic, share) sets one topic's share that day (others give way),
    `failures` = (day, topic, rate) its failure rate (else 5%)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        p = SHARES.copy()
        if change and d == change[0]:
            rest = np.arange(len(p)) != change[1]
            p[rest] *= (1 - change[2]) / p[rest].sum()
            p[change[1]] = change[2]
        counts = rng.multinomial(volume, p / p.sum())
        for t, c in enumerate(counts):
            rate = failures[2] if failures and (d, t) == failures[:2] else 0.05
            rows.append({"project": "p", "facet": "task", "day": f"2026-01-{d + 1:02d}", "topic_id": f"t{t}",
                         "traces": int(c), "failures": int(rng.binomial(c, rate)), "first_seen": t in first_seen})
    return pd.DataFrame(rows)


def test_steady_series_raise_almost_nothing():
    """20 steady series of 7 topics over 18 judged days: at most 1 false alert per 100 topic-days."""
    alerts = pd.concat([detect(frame(seed=seed).assign(project=f"p{seed}")) for seed in range(20)])
    assert len(alerts) <= 0.01 * 20 * 7 * 18, alerts


def test_a_doubled_share_rises_only_on_its_day():
    alerts = detect(frame(change=(20, 3, 0.2)))
    up = alerts[alerts.kind == "rising"]  # the others give way, and one may fall measurably: that is real
    assert list(zip(up.topic_id, up.day)) == [("t3", "2026-01-21")], alerts
    # Spike-free days may raise a rare false alert (the benchmark measures the rate); never for the spike.
    elsewhere = alerts[alerts.day != "2026-01-21"]
    assert len(elsewhere) <= 1 and "t3" not in set(elsewhere.topic_id), alerts
    a = up.iloc[0]
    assert a.baseline_share == pytest.approx(0.1, abs=0.01) and a.q_value <= 0.01 and a["count"] >= 60


def test_a_change_the_volume_cannot_support_is_not_called():
    """The same doubling at 30 traces a day is 1 trace against 2: no test passes that, and none should."""
    assert detect(frame(volume=30, change=(20, 5, 0.1))).query("topic_id == 't5'").empty


def test_falling_gone_and_new():
    f = frame(change=(20, 0, 0.1))
    assert ("t0", "falling") in set(zip(*detect(f, days=["2026-01-21"])[["topic_id", "kind"]].T.to_numpy()))
    gone = frame()
    gone.loc[(gone.day == "2026-01-21") & (gone.topic_id == "t1"), "traces"] = 0
    assert detect(gone).query("topic_id == 't1'").kind.tolist() == ["gone"]
    new = frame(first_seen=("t7",))
    new = pd.concat([new, pd.DataFrame([{"project": "p", "facet": "task", "day": "2026-01-21", "topic_id": "t7",
                                          "traces": 30, "failures": 0, "first_seen": True}])])
    assert detect(new).query("topic_id == 't7'").kind.tolist() == ["new"]
    # The same id, not first seen in this generation (it continues an older topic): rising, not new.
    assert detect(new.assign(first_seen=False)).query("topic_id == 't7'").kind.tolist() == ["rising"]


def test_a_failure_rate_jump_is_failing():
    alerts = detect(frame(failures=(20, 2, 0.4)))
    alerts = alerts[alerts.kind == "failing"]  # (the seeded frame has one rare false `falling` elsewhere)
    assert list(zip(alerts.topic_id, alerts.kind)) == [("t2", "failing")]
    assert alerts.iloc[0].failure_rate > 0.3 and alerts.iloc[0].baseline_failure_rate < 0.1


def test_day_to_day_wobble_is_not_a_trend():
    """Shares that wander 30% from day to day at high volume: the baseline's own dispersion absorbs it."""
    rng = np.random.default_rng(3)
    rows = []
    for d in range(28):
        p = SHARES * np.exp(rng.normal(0, 0.3, len(SHARES)))
        for t, c in enumerate(rng.multinomial(20_000, p / p.sum())):
            rows.append({"project": "p", "facet": "task", "day": f"2026-02-{d + 1:02d}", "topic_id": f"t{t}",
                         "traces": int(c)})
    wobbly = pd.DataFrame(rows)
    # Sampling noise alone would make most of these 175 topic-days significant (20,000 traces a day).
    exact = wobbly.assign(day=pd.to_datetime(wobbly.day)).pivot(index="day", columns="topic_id", values="traces")
    share = exact.div(exact.sum(axis=1), axis=0)
    z = (share - share.rolling(14, min_periods=3).mean().shift()) / np.sqrt(share * (1 - share) / 20_000)
    assert (z.abs() > 4).sum().sum() > 100
    assert len(detect(wobbly)) <= 2  # a 2.7-sigma swing of the wobble itself may still show
    assert len(detect(wobbly, InsightSettings(min_ratio=1.0))) <= 3


def test_benjamini_hochberg_matches_the_textbook():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    q = benjamini_hochberg(p)
    assert np.allclose(q[:4], [0.02, 0.04, 0.04, 0.02]) and np.isnan(q[4])


def test_failure_is_an_abnormal_end_or_a_score_below_its_mark():
    s = InsightSettings(pass_marks={"rating": 3})
    assert trace_failed(True, {}, s) and not trace_failed(False, {}, s) and not trace_failed(None, {}, s)
    assert trace_failed(False, {"reward": 0.0}, s) and not trace_failed(False, {"reward": 1.0}, s)
    assert not trace_failed(False, {"helpfulness": 4.0}, s)  # not on the 0-1 scale, no mark: not judged
    assert trace_failed(False, {"rating": 2.0}, s) and not trace_failed(False, {"rating": 3.0}, s)
    rows = pd.DataFrame({"project": "p", "facet": "task", "topic_id": ["a", "a", "b"], "topic_name": "n",
                         "generation": 1, "day": "2026-01-01", "status": ["error", "ok", "ok"],
                         "abnormal_end": [True, False, None], "scores": ['{"reward": 1}', '{"reward": 0.2}', None],
                         "duration_s": [1.0, 3.0, None], "input_tokens": [10, 20, None],
                         "output_tokens": [1, 2, None], "cost_usd": [0.1, 0.3, None]})
    out = topic_stats(rows, s).set_index("topic_id")
    assert out.loc["a", "failures"] == 2 and out.loc["a", "errors"] == 1 and out.loc["b", "failures"] == 0
    assert out.loc["a", "share"] == pytest.approx(2 / 3) and out.loc["a", "duration_p50"] == 2.0
    assert out.loc["a", "scores"] == '{"reward": 0.6}' and out.loc["b", "scores"] == "{}"
    assert out.loc["a", "cost_usd"] == pytest.approx(0.4) and pd.isna(out.loc["b", "cost_usd"])
