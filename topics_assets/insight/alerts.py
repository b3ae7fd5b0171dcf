"""Alert delivery: each alert the trend detector recorded (topic_alerts) reaches each sink once.

A sink is any callable that takes the message payload and returns once the far end accepted it
(raising otherwise): the JSON webhook here, Slack in the Dagster layer (defs/alert_sensor.py). The
store keeps one delivery row per (alert, sink): a sender claims due alerts before sending (so two
ticks or processes never both send one), marks each sent right after the sink accepted it (so a
restart never sends it again), and on a failure schedules the next try with exponential backoff,
until `alerts.max_attempts` marks it failed with the reason. The only duplicate left possible is a
crash between a sink accepting and the store recording it; the webhook's Idempotency-Key header (the
alert's key) lets a receiver drop that one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..config import AlertSettings, ConfigError, WebhookSettings
from ..results import StageResult
from ..store import Store, now_utc
from ..store.schema import ALERT_KEY

Sink = Callable[[dict], None]

N_EXAMPLES = 2
EXAMPLE_CHARS = 200
KIND_TITLES = {"rising": "Rising topic", "falling": "Falling topic", "new": "New topic", "gone": "Topic gone",
               "failing": "Failing topic"}


class SinkError(RuntimeError):
    """The sink did not accept a message; the text is the reason recorded with the delivery."""


def alert_key(alert: Mapping) -> str:
    """project/facet/topic_id/day/kind: what makes an alert one alert."""
    return "/".join(str(alert[k]) for k in ALERT_KEY)


def _value(v: Any) -> Any:
    """A JSON-able scalar: numpy's as Python's, NaN / NaT as None."""
    if v is None:
        return None
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _detail(raw: Any) -> dict:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.1f}%"


def _examples(detail: dict) -> list[str]:
    found = detail.get("examples") or []
    if not isinstance(found, list):
        found = [found]
    out = []
    for e in found[:N_EXAMPLES]:
        text = " ".join(str(e.get("text", e) if isinstance(e, dict) else e).split())
        out.append(text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…")
    return out


def format_alert(alert: Mapping) -> dict:
    """The message payload every sink gets: `text` for people, `alert` (the figures) for programs,
    and `key`, the alert's identity."""
    a = {k: _value(alert.get(k)) for k in ("project", "facet", "topic_id", "day", "kind", "generation",
                                           "topic_name", "count", "expected", "share", "baseline_share",
                                           "p_value", "q_value")}
    detail = _detail(alert.get("detail"))
    examples = _examples(detail)
    share, base = a["share"], a["baseline_share"]
    a["share_change"] = None if share is None or base is None else share - base
    a["examples"] = examples
    a["detail"] = detail
    name = a["topic_name"] or a["topic_id"]
    title = KIND_TITLES.get(a["kind"], str(a["kind"]).capitalize())
    figures = []
    if a["count"] is not None:
        expected = f" vs {a['expected']:.1f} expected" if a["expected"] is not None else ""
        figures.append(f"{int(a['count'])} traces{expected}")
    if share is not None:
        change = f" ({100 * a['share_change']:+.1f} pts)" if a["share_change"] is not None else ""
        figures.append(f"share {_pct(base)} → {_pct(share)}{change}" if base is not None else f"share {_pct(share)}")
    if "failure_rate" in detail:
        figures.append(f"failure rate {_pct(_value(detail.get('baseline_failure_rate')))} → "
                       f"{_pct(_value(detail.get('failure_rate')))}")
    if a["q_value"] is not None:
        figures.append(f"q = {a['q_value']:.2g}")
    lines = [f"{title}: “{name}” ({a['topic_id']}) in {a['project']} / {a['facet']} on {a['day']}"]
    if figures:
        lines.append("; ".join(figures))
    lines += [f"• {e}" for e in examples]
    return {"source": "topics", "key": alert_key(a), "text": "\n".join(lines), "alert": a}


def webhook_sink(settings: WebhookSettings, env: Mapping[str, str] | None = None) -> Sink:
    """POST each payload as JSON to `settings.url`; any 2xx is accepted. Secret headers and the bearer
    token come from the env vars the settings name (a missing one is a ConfigError, raised here, so a
    misconfigured sink fails loudly before any alert is marked)."""
    env = os.environ if env is None else env
    if not settings.url:
        raise ConfigError("alerts.webhook.url is not set")
    def secret(var: str, what: str) -> str:
        if not env.get(var):
            raise ConfigError(f"alerts.webhook: env var {var} ({what}) is not set")
        return env[var]

    headers = {"Content-Type": "application/json", "User-Agent": "topics-alerts", **settings.headers,
               **{h: secret(var, f"the {h} header") for h, var in settings.headers_env.items()}}
    if settings.bearer_token_env:
        headers["Authorization"] = f"Bearer {secret(settings.bearer_token_env, 'the bearer token')}"
    url, timeout = settings.url, settings.timeout_s

    def send(payload: dict) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={**headers, "Idempotency-Key": payload["key"]})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:
            text = " ".join(e.read(300).decode("utf-8", "replace").split())
            raise SinkError(f"HTTP {e.code}" + (f": {text}" if text else "")) from None
        except urllib.error.URLError as e:
            raise SinkError(f"{url} unreachable: {e.reason}") from None
        except TimeoutError:
            raise SinkError(f"{url}: no answer in {timeout:g} s") from None

    return send


def retry_delay_s(attempts: int, settings: AlertSettings) -> float:
    """Wait before the next try after `attempts` failed ones: base, doubling, capped."""
    return min(settings.backoff_base_s * 2 ** max(attempts - 1, 0), settings.backoff_max_s)


@dataclasses.dataclass(frozen=True)
class SinkResult(StageResult):
    sink: str
    sent: int = 0
    retrying: int = 0   # failed this time, tried again after a backoff
    failed: int = 0     # attempts spent: marked failed, not tried again
    deferred: int = 0   # claimed but not tried: the sink had just failed, next tick
    errors: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.sent} sent"]
        parts += [f"{n} {what}" for n, what in ((self.retrying, "to retry"), (self.failed, "failed"),
                                                 (self.deferred, "deferred")) if n]
        return f"{self.sink}: {', '.join(parts)}" + (f" ({'; '.join(self.errors)})" if self.errors else "")


@dataclasses.dataclass(frozen=True)
class DeliveryResult(StageResult):
    sinks: list[SinkResult]

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.sinks)

    def summary(self) -> str:
        if not self.sinks:
            return "no alert sink configured (alerts.slack.channel, alerts.webhook.url)"
        return "; ".join(s.summary() for s in self.sinks)


def deliver_alerts(store: Store, sinks: Mapping[str, Sink], settings: AlertSettings,
                   now: datetime | None = None) -> DeliveryResult:
    """Send every due alert once to each sink (at most `settings.batch_size` per sink). A sink that
    fails keeps the rest of its alerts for the next call, so a dead endpoint costs one try a call, not
    one per alert; the other sinks are not held up. `now` fixes the clock (tests)."""
    clock: Callable[[], datetime] = (lambda: now) if now is not None else now_utc
    start = clock()
    since = None if settings.max_age_days is None else (start.date() - timedelta(days=settings.max_age_days)).isoformat()
    results = []
    for name, send in sinks.items():
        counts = {"sent": 0, "retrying": 0, "failed": 0, "deferred": 0}
        errors: list[str] = []
        claim_id, due = store.claim_alert_deliveries(name, settings.kinds, start, settings.claim_s,
                                                     settings.batch_size, since)
        for i, alert in enumerate(due.to_dict("records")):
            try:
                send(format_alert(alert))
            except Exception as e:  # whatever the sink raised (or a bad alert row) is the reason, recorded
                reason = str(e) if isinstance(e, SinkError) else f"{type(e).__name__}: {e}"
                attempts = int(alert["attempts"]) + 1
                retry = attempts < settings.max_attempts
                at = clock()
                store.finish_alert_delivery(name, alert, claim_id, at, error=reason,
                                            retry_at=at + timedelta(seconds=retry_delay_s(attempts, settings))
                                            if retry else None)
                counts["retrying" if retry else "failed"] += 1
                counts["deferred"] = len(due) - i - 1
                errors.append(f"{alert_key(alert)}: {reason} (attempt {attempts}/{settings.max_attempts})")
                break
            store.finish_alert_delivery(name, alert, claim_id, clock())
            counts["sent"] += 1
        # Not in a `finally`: if the store failed to record a send, its claim must stand (and expire)
        # rather than make the alert due again at once.
        store.release_alert_claims(name, claim_id)
        results.append(SinkResult(sink=name, errors=errors, **counts))
    return DeliveryResult(sinks=results)
