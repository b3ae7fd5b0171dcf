"""topic_alerts keeps each alert once, on both backends: the alert sensor relies on it."""

import json


def _alert(kind="rising", day="2026-11-07", count=30):
    return {"project": "p", "facet": "task", "topic_id": "task-3", "day": day, "kind": kind, "generation": 2,
            "topic_name": "Payment failures", "count": count, "expected": 4.0, "share": 0.15,
            "baseline_share": 0.02, "p_value": 1e-9, "q_value": 1e-8,
            "detail": json.dumps({"examples": ["card declined", "gateway timeout"]})}


def test_an_alert_is_recorded_once(store):
    assert store.record_alerts([_alert(), _alert(kind="new")]) == 2
    assert store.record_alerts([_alert(count=99), _alert(day="2026-11-08")]) == 1
    df = store.load_alerts(project="p")
    assert list(df["day"]) == ["2026-11-07", "2026-11-07", "2026-11-08"]
    first = df[(df["kind"] == "rising") & (df["day"] == "2026-11-07")].iloc[0]
    assert int(first["count"]) == 30  # the first detection is kept
    assert json.loads(first["detail"])["examples"][0] == "card declined"
    assert len(store.load_alerts(project="p", since_day="2026-11-08")) == 1
    assert store.load_alerts(project="other").empty
