"""Alert delivery over real stores (both backends) to a loopback HTTP receiver: each alert arrives
once, failures are retried with backoff, a restart sends nothing again, one failing sink holds up no
other. Alerts are made with store.record_alerts, the interface the trend detector writes through."""

import json
import threading
from datetime import date, datetime, timedelta, timezone

import pytest

from topics_assets.config import AlertSettings, ConfigError, WebhookSettings, load_settings
from topics_assets.insight.alerts import deliver_alerts, format_alert, retry_delay_s, webhook_sink
from topics_assets.store import SCHEMA_VERSION, open_store
from topics_assets.testing.receiver import AlertReceiver

TODAY = datetime.now(timezone.utc).date()


def alert_row(kind="rising", topic_id="task-3", day: date | str = TODAY, name="Payment failures", **extra) -> dict:
    row = {"project": "shop", "facet": "task", "topic_id": topic_id, "day": str(day), "kind": kind,
           "generation": 2, "topic_name": name, "count": 30, "expected": 4.0, "share": 0.15,
           "baseline_share": 0.02, "p_value": 1e-9, "q_value": 1e-8,
           "detail": json.dumps({"examples": ["card declined at checkout", "payment gateway timed out", "third"]})}
    return {**row, **extra}


def alert_settings(**kw) -> AlertSettings:
    return AlertSettings(**{"backoff_base_s": 0.0, **kw})


@pytest.fixture
def receiver():
    with AlertReceiver() as rx:
        yield rx


def _hook(rx, **kw):
    return webhook_sink(WebhookSettings(url=rx.url + "/hook", timeout_s=5, **kw))


def test_the_message_says_what_a_person_needs():
    p = format_alert({**alert_row(day="2026-11-07"), "count": 30})
    assert p["key"] == "shop/task/task-3/2026-11-07/rising"
    first, figures, *examples = p["text"].splitlines()
    assert first == "Rising topic: “Payment failures” (task-3) in shop / task on 2026-11-07"
    assert "30 traces vs 4.0 expected" in figures and "share 2.0% → 15.0% (+13.0 pts)" in figures
    assert examples == ["• card declined at checkout", "• payment gateway timed out"]  # two, not three
    assert p["alert"]["share_change"] == pytest.approx(0.13) and p["alert"]["examples"][1] == "payment gateway timed out"
    json.dumps(p)  # JSON-able as it is
    failing = format_alert(alert_row(kind="failing", detail=json.dumps({"failure_rate": 0.4,
                                                                       "baseline_failure_rate": 0.05})))
    assert failing["text"].startswith("Failing topic") and "failure rate 5.0% → 40.0%" in failing["text"]
    bare = format_alert(alert_row(kind="new", name=None, expected=None, baseline_share=None, detail=None))
    assert bare["text"].splitlines()[0].startswith("New topic: “task-3”") and "30 traces; share 15.0%" in bare["text"]


def test_claims_and_marks_on_the_store(store):
    store.record_alerts([alert_row(), alert_row(kind="new", topic_id="task-9")])
    t0 = datetime.now(timezone.utc)
    claim, due = store.claim_alert_deliveries("hook", ["rising", "new"], t0, 60, 10)
    assert list(due["kind"]) == ["new", "rising"] and list(due["attempts"]) == [0, 0]
    assert json.loads(due.iloc[0]["detail"])["examples"][0] == "card declined at checkout"
    # Claimed: nobody else gets them, on this sink; another sink has its own.
    assert store.claim_alert_deliveries("hook", ["rising", "new"], t0, 60, 10)[1].empty
    assert len(store.claim_alert_deliveries("other", ["rising"], t0, 60, 10)[1]) == 1
    new, rising = due.to_dict("records")
    store.finish_alert_delivery("hook", new, claim, t0)
    store.finish_alert_delivery("hook", rising, claim, t0, error="HTTP 500", retry_at=t0 + timedelta(seconds=30))
    left = store.undelivered_alerts("hook")
    assert list(left["kind"]) == ["rising"] and left.iloc[0]["status"] == "pending"
    assert left.iloc[0]["last_error"] == "HTTP 500" and int(left.iloc[0]["attempts"]) == 1
    assert store.claim_alert_deliveries("hook", ["rising", "new"], t0 + timedelta(seconds=29), 60, 10)[1].empty
    claim, due = store.claim_alert_deliveries("hook", ["rising", "new"], t0 + timedelta(seconds=31), 60, 10)
    assert list(due["kind"]) == ["rising"] and int(due.iloc[0]["attempts"]) == 1
    # A claim whose sender died is taken over once it expires; a released one is due at once.
    assert store.claim_alert_deliveries("hook", ["rising"], t0 + timedelta(seconds=60), 60, 10)[1].empty
    claim, due = store.claim_alert_deliveries("hook", ["rising"], t0 + timedelta(seconds=92), 60, 10)
    assert len(due) == 1
    store.release_alert_claims("hook", claim)
    claim, due = store.claim_alert_deliveries("hook", ["rising"], t0 + timedelta(seconds=92), 60, 10)
    store.finish_alert_delivery("hook", due.iloc[0].to_dict(), claim, t0, error="HTTP 403: bad token")
    rows = store.load_alert_deliveries("hook").set_index("kind")
    assert rows.loc["rising", "status"] == "failed" and rows.loc["rising", "last_error"] == "HTTP 403: bad token"
    assert rows.loc["new", "status"] == "sent" and int(rows.loc["new", "attempts"]) == 1
    assert store.claim_alert_deliveries("hook", ["rising", "new"], t0 + timedelta(days=9), 60, 10)[1].empty
    assert list(store.undelivered_alerts("hook", kinds=["rising"])["status"]) == ["failed"]
    assert store.undelivered_alerts("hook", kinds=["new"]).empty


def test_fails_twice_then_arrives_exactly_once_and_never_again_after_a_restart(store, receiver):
    store.record_alerts([alert_row()])
    receiver.failures = [500, 500]
    settings = alert_settings()
    results = [deliver_alerts(store, {"webhook": _hook(receiver)}, settings).sinks[0] for _ in range(4)]
    assert [(r.sent, r.retrying) for r in results] == [(0, 1), (0, 1), (1, 0), (0, 0)]
    assert "HTTP 500" in results[0].errors[0] and "attempt 1/8" in results[0].errors[0]
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    (body,) = receiver.accepted
    assert body["key"] == f"shop/task/task-3/{TODAY}/rising" and "Payment failures" in body["text"]
    assert receiver.requests[-1]["headers"]["Idempotency-Key"] == body["key"]

    # A restart: a new store object over the same database, a new sink; nothing is sent again.
    again = open_store(store.database)
    assert deliver_alerts(again, {"webhook": _hook(receiver)}, settings).sent == 0
    assert len(receiver.requests) == 3
    row = again.load_alert_deliveries().iloc[0]
    assert row["status"] == "sent" and int(row["attempts"]) == 3 and row["sent_at"] is not None


def test_retries_back_off_across_ticks_until_attempts_are_spent(store, receiver):
    store.record_alerts([alert_row()])
    receiver.fail_always = 503
    settings = alert_settings(backoff_base_s=60, backoff_max_s=100, max_attempts=3)
    assert [retry_delay_s(n, settings) for n in (1, 2, 3)] == [60, 100, 100]
    t0 = datetime.now(timezone.utc)
    hook = {"webhook": _hook(receiver)}

    def tick(after_s: float):
        return deliver_alerts(store, hook, settings, now=t0 + timedelta(seconds=after_s)).sinks[0]

    assert tick(0).retrying == 1
    assert tick(59).sent + tick(59).retrying == 0 and len(receiver.requests) == 1  # waiting out 60 s
    assert tick(60).retrying == 1 and len(receiver.requests) == 2
    assert tick(150).retrying == 0 and len(receiver.requests) == 2  # now 100 s (capped), not 120
    last = tick(160)
    assert last.failed == 1 and len(receiver.requests) == 3
    row = store.load_alert_deliveries().iloc[0]
    assert row["status"] == "failed" and row["last_error"].startswith("HTTP 503") and int(row["attempts"]) == 3
    assert tick(10_000).failed == 0 and len(receiver.requests) == 3  # given up: never tried again


def test_one_sink_failing_for_good_holds_up_no_other(store):
    store.record_alerts([alert_row(), alert_row(kind="new", topic_id="task-12", name="Crypto refunds")])
    settings = alert_settings(max_attempts=2)
    with AlertReceiver() as good, AlertReceiver() as bad:
        bad.fail_always = 500
        sinks = {"good": _hook(good), "bad": _hook(bad)}
        for _ in range(5):
            deliver_alerts(store, sinks, settings)
        assert sorted(b["alert"]["topic_id"] for b in good.accepted) == ["task-12", "task-3"]
        assert len(good.requests) == 2 and len(bad.requests) == 4  # two alerts, two attempts each
        assert bad.accepted == []
    failed = store.load_alert_deliveries("bad")
    assert list(failed["status"]) == ["failed", "failed"]
    assert all(e.startswith("HTTP 500: ") and "planned failure 500" in e for e in failed["last_error"])
    assert list(store.load_alert_deliveries("good")["status"]) == ["sent", "sent"]


def test_a_failing_sink_keeps_the_rest_of_its_batch_for_the_next_tick(store, receiver):
    """A dead endpoint costs one request a tick, not one per alert (each could wait out a timeout)."""
    store.record_alerts([alert_row(topic_id=f"task-{i}") for i in range(5)])
    receiver.fail_always = 500
    r = deliver_alerts(store, {"webhook": _hook(receiver)}, alert_settings(backoff_base_s=60)).sinks[0]
    assert (r.retrying, r.deferred, len(receiver.requests)) == (1, 4, 1)
    receiver.fail_always = None
    r = deliver_alerts(store, {"webhook": _hook(receiver)}, alert_settings(backoff_base_s=60)).sinks[0]
    assert r.sent == 4 and len(receiver.accepted) == 4  # the one that failed waits out its backoff


def test_only_the_configured_kinds_and_recent_days_are_sent(store, receiver):
    old = TODAY - timedelta(days=30)
    store.record_alerts([alert_row(kind=k) for k in ("rising", "falling", "new", "gone", "failing")]
                        + [alert_row(kind="rising", topic_id="task-1", day=old)])
    deliver_alerts(store, {"webhook": _hook(receiver)}, alert_settings())
    assert sorted(b["alert"]["kind"] for b in receiver.accepted) == ["failing", "new", "rising"]
    deliver_alerts(store, {"webhook": _hook(receiver)}, alert_settings(kinds=["falling"]))
    assert sorted(b["alert"]["kind"] for b in receiver.accepted) == ["failing", "falling", "new", "rising"]
    deliver_alerts(store, {"webhook": _hook(receiver)}, alert_settings(max_age_days=None))
    assert [b["alert"]["day"] for b in receiver.accepted[4:]] == [str(old)]
    assert len(receiver.requests) == 5


def test_two_senders_at_once_send_each_alert_once(store, receiver):
    store.record_alerts([alert_row(topic_id=f"task-{i}") for i in range(4)])
    receiver.delay_s = 0.2
    settings = alert_settings(batch_size=2)
    errors = []

    def sender():
        try:
            for _ in range(3):  # each its own store object, as two processes would have
                deliver_alerts(open_store(store.database), {"webhook": _hook(receiver)}, settings)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = [b["key"] for b in receiver.accepted]
    assert len(keys) == 4 and len(set(keys)) == 4 and len(receiver.requests) == 4


def test_a_tick_that_dies_mid_send_is_taken_over_once_its_claim_expires(store, receiver):
    """A process killed while sending: its claim holds the alerts (no other tick sends them meanwhile)
    until alerts.claim_s, then a new process sends them."""
    store.record_alerts([alert_row(topic_id="task-1"), alert_row(topic_id="task-2")])

    class Killed(BaseException):
        pass

    def dies(payload):
        raise Killed

    settings, t0 = alert_settings(claim_s=120), datetime.now(timezone.utc)
    with pytest.raises(Killed):
        deliver_alerts(store, {"webhook": dies}, settings, now=t0)
    restarted = open_store(store.database)
    assert deliver_alerts(restarted, {"webhook": _hook(receiver)}, settings, now=t0 + timedelta(seconds=60)).sent == 0
    assert deliver_alerts(restarted, {"webhook": _hook(receiver)}, settings, now=t0 + timedelta(seconds=121)).sent == 2
    assert sorted(b["alert"]["topic_id"] for b in receiver.accepted) == ["task-1", "task-2"]


def test_webhook_headers_and_secrets_from_env(receiver):
    env = {"HOOK_TOKEN": "s3cret", "HOOK_SIG": "sig-1"}
    send = webhook_sink(WebhookSettings(url=receiver.url + "/hook", headers={"X-Team": "support"},
                                        headers_env={"X-Signature": "HOOK_SIG"}, bearer_token_env="HOOK_TOKEN"), env)
    send(format_alert(alert_row()))
    h = receiver.requests[0]["headers"]
    assert (h["Authorization"], h["X-Signature"], h["X-Team"]) == ("Bearer s3cret", "sig-1", "support")
    assert h["Content-Type"] == "application/json"
    with pytest.raises(ConfigError, match="HOOK_TOKEN"):
        webhook_sink(WebhookSettings(url=receiver.url, bearer_token_env="HOOK_TOKEN"), {})


def test_an_unreachable_webhook_is_a_recorded_reason(store):
    store.record_alerts([alert_row()])
    with AlertReceiver() as gone:
        url = gone.url
    r = deliver_alerts(store, {"webhook": webhook_sink(WebhookSettings(url=url + "/hook", timeout_s=2))},
                       alert_settings()).sinks[0]
    assert r.retrying == 1 and "unreachable" in r.errors[0]
    assert "unreachable" in store.load_alert_deliveries().iloc[0]["last_error"]


def test_a_v6_store_gets_alert_deliveries_and_keeps_its_alerts(store, receiver):
    """A store the release before delivery state made (schema 6) opens migrated; its alerts are sent."""
    store.record_alerts([alert_row()])
    store.query_df("DROP TABLE alert_deliveries")
    store.query_df("DELETE FROM schema_version")
    store.query_df("INSERT INTO schema_version VALUES (6, now())")
    old = open_store(store.database)
    assert old.schema_version() == SCHEMA_VERSION
    assert len(old.load_alerts()) == 1 and old.load_alert_deliveries().empty
    assert deliver_alerts(old, {"webhook": _hook(receiver)}, alert_settings()).sent == 1


def test_bad_alert_settings_name_the_key(tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text("alerts:\n  kinds: [rising, spike]\n")
    with pytest.raises(ConfigError, match=r"alerts\.kinds: .*'spike'.*known: rising, falling, new, gone, failing"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match=r"TOPICS_ALERTS_WEBHOOK_URL.*http"):
        load_settings(env={"TOPICS_ALERTS_WEBHOOK_URL": "hooks.example.com"})
    s = load_settings(env={"TOPICS_ALERTS_WEBHOOK_URL": "https://hooks.example.com/t", "TOPICS_ALERTS_MAX_AGE_DAYS": "none"})
    assert s.alerts.sinks == ["webhook"] and s.alerts.max_age_days is None
