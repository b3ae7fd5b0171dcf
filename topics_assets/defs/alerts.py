"""The topic_alerts sensor and the Slack sink: each recorded alert, once, to each configured sink.

Delivery itself (claims, retries with backoff, never twice) is insight/alerts.py; this wires its
sinks to Dagster: Slack through dagster-slack's SlackResource, the JSON webhook from the settings.
The sensor sends in the tick itself (a bounded batch per sink) rather than launching a run: a send
is one short request, and a run per alert would bury the runs that matter.
"""

from __future__ import annotations

import urllib.error

from dagster import DefaultSensorStatus, EnvVar, SensorEvaluationContext, SkipReason, sensor
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk.errors import SlackApiError
from slack_sdk.web.client import WebClient

from ..config import Settings
from ..insight.alerts import Sink, SinkError, deliver_alerts, webhook_sink
from .automation import SENSOR_LOCK_WAIT_S
from .resources import TopicsSettingsResource, TopicsStoreResource

SLACK = "slack"


class TopicsSlackResource(SlackResource):
    """dagster-slack's SlackResource, whose Web API root can be set (GovSlack, a proxy, a test server)."""

    base_url: str = Field(default=WebClient.BASE_URL, description="Slack's Web API root, ending in /.")

    def get_client(self) -> WebClient:
        client = super().get_client()
        client.base_url = self.base_url
        return client


def slack_sink(slack: SlackResource, channel: str) -> Sink:
    """Post each payload's text to `channel` (chat.postMessage); accepted when Slack answers ok."""
    client = slack.get_client()

    def send(payload: dict) -> None:
        try:
            client.chat_postMessage(channel=channel, text=payload["text"], unfurl_links=False, unfurl_media=False)
        except SlackApiError as e:
            data = e.response.data if isinstance(e.response.data, dict) else {}
            raise SinkError(f"Slack HTTP {e.response.status_code}: {data.get('error') or 'not ok'}") from None
        except (urllib.error.URLError, OSError) as e:
            raise SinkError(f"Slack unreachable ({client.base_url}): {e}") from None

    return send


def build_alert_resources(settings: Settings) -> dict:
    """The Slack resource, only where a channel is configured; its token is read from the env var
    alerts.slack.token_env names when the sensor runs (Dagster's EnvVar: never stored)."""
    slack = settings.alerts.slack
    if not slack.channel:
        return {}
    return {SLACK: TopicsSlackResource(token=EnvVar(slack.token_env), base_url=slack.base_url)}


def _tick(context: SensorEvaluationContext, store: TopicsStoreResource, settings: TopicsSettingsResource,
          slack: SlackResource | None) -> SkipReason:
    alerts = settings.get_settings().alerts
    sinks: dict[str, Sink] = {}
    if slack is not None and alerts.slack.channel:
        sinks[SLACK] = slack_sink(slack, alerts.slack.channel)
    if alerts.webhook.url:
        sinks["webhook"] = webhook_sink(alerts.webhook)
    result = deliver_alerts(store.get_store(SENSOR_LOCK_WAIT_S), sinks, alerts)
    (context.log.warning if any(s.errors for s in result.sinks) else context.log.info)(result.summary())
    return SkipReason(result.summary())


def build_alert_sensor(settings: Settings):
    alerts = settings.alerts
    decorate = sensor(
        name="topic_alerts", minimum_interval_seconds=alerts.interval_s,
        default_status=DefaultSensorStatus.RUNNING if alerts.sinks else DefaultSensorStatus.STOPPED,
        description="Sends each alert the trend detector recorded (topic_alerts; kinds: "
                    f"{', '.join(alerts.kinds)}) once to each sink in settings (alerts.slack, alerts.webhook); a "
                    "failed send is retried on later ticks with backoff, a sent one never again. Runs by default "
                    "once a sink is configured.")
    # The Slack resource exists only where a channel is configured (its token env var is read then).
    if alerts.slack.channel:
        @decorate
        def topic_alerts(context: SensorEvaluationContext, store: TopicsStoreResource,
                         settings: TopicsSettingsResource, slack: TopicsSlackResource):
            return _tick(context, store, settings, slack)
    else:
        @decorate
        def topic_alerts(context: SensorEvaluationContext, store: TopicsStoreResource,
                         settings: TopicsSettingsResource):
            return _tick(context, store, settings, None)

    return topic_alerts
