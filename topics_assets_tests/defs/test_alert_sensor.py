"""The topic_alerts sensor, as the Definitions build it, ticking on an ephemeral Dagster instance over a
real DuckDB file: Slack through dagster-slack's SlackResource (slack_sdk's WebClient) and the JSON
webhook, both to loopback receivers."""

import pytest
from dagster import DefaultSensorStatus, SkipReason, build_sensor_context, instance_for_test

from topics_assets.definitions import build_defs
from topics_assets.defs.alerts import build_alert_resources
from topics_assets.defs.resources import build_resources
from topics_assets.store import open_store
from topics_assets.testing.receiver import AlertReceiver
from topics_assets_tests.insight.test_alerts import alert_row


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def slack_rx(monkeypatch):
    with AlertReceiver(slack_token="xoxb-loopback") as rx:
        monkeypatch.setenv("TOPICS_SLACK_TOKEN", rx.slack_token)
        yield rx


@pytest.fixture
def hook_rx():
    with AlertReceiver() as rx:
        yield rx


def _tick(settings, instance) -> str:
    """One evaluation as the daemon does it: the sensor of freshly built Definitions, fresh resources
    (so a fresh store object), a fresh context."""
    sensor = build_defs(settings).get_sensor_def("topic_alerts")
    ctx = build_sensor_context(instance=instance, resources={**build_resources(settings),
                                                            **build_alert_resources(settings)})
    result = sensor(ctx)
    assert isinstance(result, SkipReason)
    return result.skip_message


def test_the_sensor_runs_by_default_only_once_a_sink_is_configured(settings, instance):
    off = build_defs(settings).get_sensor_def("topic_alerts")
    assert off.default_status == DefaultSensorStatus.STOPPED and off.required_resource_keys == {"store", "settings"}
    assert "no alert sink configured" in _tick(settings, instance)
    settings.alerts.webhook.url = "http://127.0.0.1:9/hook"
    assert build_defs(settings).get_sensor_def("topic_alerts").default_status == DefaultSensorStatus.RUNNING


def test_fails_twice_then_arrives_once_and_a_restart_sends_nothing(settings, instance, hook_rx):
    settings.alerts.webhook.url = hook_rx.url + "/hook"
    settings.alerts.backoff_base_s = 0
    open_store(settings.database_path).record_alerts([alert_row()])
    hook_rx.failures = [500, 500]
    messages = [_tick(settings, instance) for _ in range(4)]
    assert "1 to retry" in messages[0] and "HTTP 500" in messages[0]
    assert messages[2] == "webhook: 1 sent" and messages[3] == "webhook: 0 sent"
    assert len(hook_rx.accepted) == 1 and len(hook_rx.requests) == 3

    # A restart: a new instance, definitions, resources and context over the same DuckDB file.
    with instance_for_test() as fresh:
        assert _tick(settings, fresh) == "webhook: 0 sent"
    assert len(hook_rx.requests) == 3
    # A new alert recorded later is sent, once.
    open_store(settings.database_path).record_alerts([alert_row(kind="new", topic_id="task-12")])
    assert _tick(settings, instance) == "webhook: 1 sent"
    assert [b["alert"]["kind"] for b in hook_rx.accepted] == ["rising", "new"]


def test_slack_fails_twice_then_gets_each_alert_once_while_the_webhook_fails_for_good(
        settings, instance, slack_rx, hook_rx):
    settings.alerts.slack.channel = "#topics-alerts"
    settings.alerts.slack.base_url = slack_rx.slack_base_url
    settings.alerts.webhook.url = hook_rx.url + "/hook"
    settings.alerts.backoff_base_s = 0
    settings.alerts.max_attempts = 3
    assert build_defs(settings).get_sensor_def("topic_alerts").required_resource_keys == {"store", "settings", "slack"}
    open_store(settings.database_path).record_alerts([
        alert_row(), alert_row(kind="new", topic_id="task-12", name="Crypto refunds"),
        alert_row(kind="falling", topic_id="task-1")])  # not a kind sent by default
    slack_rx.failures = [500, 500]
    hook_rx.fail_always = 500
    for _ in range(8):
        _tick(settings, instance)
    posts = slack_rx.accepted
    assert [p["channel"] for p in posts] == ["#topics-alerts"] * 2
    assert sorted(p["text"].splitlines()[0] for p in posts) == [
        f"New topic: “Crypto refunds” (task-12) in shop / task on {alert_row()['day']}",
        f"Rising topic: “Payment failures” (task-3) in shop / task on {alert_row()['day']}"]
    assert all(r["path"] == "/api/chat.postMessage" for r in slack_rx.requests) and len(slack_rx.requests) == 4
    assert hook_rx.accepted == [] and len(hook_rx.requests) == 6  # 2 alerts x max_attempts, then given up
    deliveries = open_store(settings.database_path).load_alert_deliveries()
    assert sorted(deliveries[deliveries.sink == "slack"]["status"]) == ["sent", "sent"]
    failed = deliveries[deliveries.sink == "webhook"]
    assert list(failed["status"]) == ["failed", "failed"] and all(e.startswith("HTTP 500") for e in failed.last_error)


def test_a_bad_slack_token_is_recorded_as_slacks_reason(settings, instance, slack_rx, monkeypatch):
    settings.alerts.slack.channel = "#topics-alerts"
    settings.alerts.slack.base_url = slack_rx.slack_base_url
    monkeypatch.setenv("TOPICS_SLACK_TOKEN", "xoxb-wrong")
    open_store(settings.database_path).record_alerts([alert_row()])
    assert "Slack HTTP 200: invalid_auth" in _tick(settings, instance)
    assert slack_rx.accepted == []
    row = open_store(settings.database_path).load_alert_deliveries().iloc[0]
    assert (row["sink"], row["status"], row["last_error"]) == ("slack", "pending", "Slack HTTP 200: invalid_auth")
