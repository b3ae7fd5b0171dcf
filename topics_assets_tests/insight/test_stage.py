"""topic_stats, its views and the alerts it records, on a real store of each kind after classifying."""

import json

import pandas as pd
import pytest

from topics_assets.insight.stage import topic_stats_days
from topics_assets.testing.topic_days import centroids, day_list, write_day, write_topic_map
from topics_assets.topics.stage import classify_days

PROJECT, FACET = "shop", "task"
DAYS = day_list("2026-11-01", 10)
BASE = {0: 40, 1: 30, 2: 20, 3: 6, 4: 4}  # traces a day per topic
TOPICS = [f"task-{i:03d}" for i in range(6)]  # task-005 only appears on the last day


def build(store, settings):
    vectors = centroids(len(TOPICS))
    write_topic_map(store, PROJECT, FACET, TOPICS, vectors)
    for i, day in enumerate(DAYS):
        counts, failing = dict(BASE), {3: 0.1}
        if day == DAYS[-1]:
            counts[3], failing[3] = 40, 0.8  # the incident: topic 3 from ~6% to ~30%, mostly failing
            counts[5] = 15  # a brand-new topic
        write_day(store, PROJECT, FACET, day, counts, vectors, failing=failing, seed=i)
    classify_days(store=store, settings=settings, days=DAYS)


@pytest.fixture
def built(store, settings):
    settings.facets = ["task"]
    build(store, settings)
    return store, settings


def test_figures_trends_and_alerts(built):
    store, settings = built
    result = None
    for day in DAYS:
        result = topic_stats_days(store=store, settings=settings, days=[day])
    stats = store.load_topic_stats(project=PROJECT, facet=FACET, since_day=DAYS[-1])
    by_topic = stats.set_index("topic_id")
    assert by_topic.loc["task-003", "traces"] == 40 and by_topic.loc["task-000", "traces"] == 40
    assert by_topic.loc["task-003", "share"] == pytest.approx(40 / 149)
    assert by_topic.loc["task-003", "failure_rate"] > 0.5  # abnormal ends and reward 0
    assert by_topic.loc["task-003", "error_rate"] == by_topic.loc["task-003", "failure_rate"]
    assert by_topic.loc["task-000", "failure_rate"] == 0
    assert json.loads(by_topic.loc["task-000", "scores"]) == {"reward": 1.0}
    assert by_topic.loc["task-000", "cost_usd"] == pytest.approx(0.4)
    assert by_topic.loc["task-000", "duration_p50"] == pytest.approx(4.0)
    # The last day's alerts: the incident rises and fails, the new topic is new; nothing else.
    kinds = {(a["topic_id"], a["kind"]) for a in result.alerts}
    assert kinds == {("task-003", "rising"), ("task-003", "failing"), ("task-005", "new")}, result.alerts
    assert result.new_alerts == 3
    rising = next(a for a in result.alerts if a["kind"] == "rising")
    assert rising["count"] == 40 and rising["expected"] == pytest.approx(149 * 6 / 100, rel=0.01)
    assert len(rising["examples"]) == 2 and all("topic 3" in t for t in rising["examples"])
    recorded = store.load_alerts(project=PROJECT)
    assert sorted(zip(recorded.topic_id, recorded.kind)) == sorted(kinds)
    assert set(recorded.day) == {DAYS[-1]}
    assert json.loads(recorded[recorded.kind == "new"].detail.iloc[0])["examples"]
    # Earlier, steady days raised nothing; a rerun records nothing twice.
    again = topic_stats_days(store=store, settings=settings, days=[DAYS[-1]])
    assert again.new_alerts == 0 and len(store.load_alerts()) == 3


def test_views_summarise_the_last_week(built):
    store, settings = built
    topic_stats_days(store=store, settings=settings, days=DAYS)
    daily = store.query_df("SELECT * FROM topic_daily WHERE topic_id = 'task-000' ORDER BY day")
    assert len(daily) == len(DAYS) and daily.cost_per_trace.iloc[0] == pytest.approx(0.01)
    assert daily.tokens_per_trace.iloc[0] == pytest.approx(120)
    s = store.query_df("SELECT * FROM topic_summary WHERE project = 'shop'").set_index("topic_id")
    # Last 7 days: 6 steady days and the incident day; the 3 days before are the prior window.
    assert s.loc["task-000", "traces_7d"] == 7 * 40 and s.loc["task-000", "traces_prior_28d"] == 3 * 40
    assert s.loc["task-000", "share_prior_28d"] == pytest.approx(0.4)
    assert s.loc["task-003", "share_change"] > 0.02
    low, rate, high = s.loc["task-003", ["failure_rate_low", "failure_rate_7d", "failure_rate_high"]]
    assert 0 < low < rate < high < 1
    assert s.loc["task-005", "traces_prior_28d"] == 0 and s.loc["task-005", "share_prior_28d"] == 0
    assert s.loc["task-000", "cost_per_trace_7d"] == pytest.approx(0.01)


def test_enum_facets_get_figures_per_value(store, settings):
    settings.facets = ["task", {"name": "channel", "prompt": "Which channel?", "kind": "enum",
                                "categories": ["web", "phone"]}]
    build(store, settings)
    # The enum facet's value of each of the last day's traces: the incident's traces came by phone.
    ids = store.query_df(f"SELECT trace_id FROM facets WHERE day = DATE '{DAYS[-1]}' ORDER BY trace_id").trace_id
    texts = ["phone" if "topic 3" in t else "web"
             for t in store.query_df(f"SELECT text FROM facets WHERE day = DATE '{DAYS[-1]}' ORDER BY trace_id").text]
    assert len(ids) == len(texts)
    rows = [{"trace_id": t, "facet": "channel", "project": PROJECT, "day": DAYS[-1], "text": v, "text_hash": v,
             "engine": "extractive", "model": "none", "content_hash": "c", "facets_hash": "f", "created_at": None}
            for t, v in zip(ids, texts)]
    task_rows = store.query_df(f"SELECT * FROM facets WHERE day = DATE '{DAYS[-1]}'")
    rows += task_rows.drop(columns=["day"]).assign(day=DAYS[-1]).to_dict("records")
    store.write_facets([DAYS[-1]], rows, [], live=[(PROJECT, t) for t in ids])
    topic_stats_days(store=store, settings=settings, days=[DAYS[-1]])
    channel = store.load_topic_stats(facet="channel").set_index("topic_id")
    assert channel.loc["phone", "traces"] == 40 and channel.loc["web", "traces"] == 109
    assert channel.loc["phone", "failure_rate"] > 0.5 and channel.loc["web", "topic_name"] == "web"
    assert pd.isna(channel.loc["phone", "generation"])  # a value, not a map's topic
