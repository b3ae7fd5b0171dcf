"""The demo's last day: a payment gateway outage and a brand-new family, planted for trends and alerts to find."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from topics_assets.demo import generate_traces
from topics_assets.demo.generator import LAUNCH_FAMILY, OUTAGE_FAMILY, PLANTED, PLANTED_FAMILIES
from topics_assets.ingest import parse_record
from topics_assets.preprocess.signals import extract

END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def week() -> list[dict]:
    return generate_traces(1200, days=7, seed=7, end=END)  # what `topics demo` generates


def by_day(traces):
    days = collections.defaultdict(list)
    for t in traces:
        days[t["started_at"][:10]].append(t)
    return days


def share(traces, family) -> float:
    return sum(t["labels"]["scenario"] == family for t in traces) / len(traces)


def test_the_outage_lifts_the_payment_family_from_about_2_to_about_15_percent(week):
    days = by_day(week)
    last = days.pop(END.isoformat())
    assert 0.12 <= share(last, OUTAGE_FAMILY) <= 0.18, share(last, OUTAGE_FAMILY)
    before = [t for ts in days.values() for t in ts]
    assert 0.01 <= share(before, OUTAGE_FAMILY) <= 0.035
    assert all(share(ts, OUTAGE_FAMILY) < 0.06 for ts in days.values())  # no earlier day looks like the outage


def test_every_outage_trace_shows_the_failing_gateway_as_a_tool_error(week):
    last = [t for t in by_day(week)[END.isoformat()] if t["labels"]["scenario"] == OUTAGE_FAMILY]
    assert last
    for t in last:
        errors = [s["error"] for s in t["spans"] if s["type"] == "tool" and s["name"] == "process_payment" and s["error"]]
        assert errors and all("payment-gateway" in e and ("502" in e or "504" in e or "Timeout" in e) for e in errors)
        outcome = extract(parse_record(t, "demo", None)[0])  # what trace_outcomes will hold
        assert outcome.status == "error" and "process_payment" in outcome.failed_tools, t["trace_id"]
    assert sum(t["labels"]["outcome"] == "tool_error" for t in last) >= len(last) / 3


def test_a_new_family_arrives_on_the_last_day_only_with_enough_traces_for_a_topic(week):
    days = by_day(week)
    new = [t for t in week if t["labels"]["scenario"] == LAUNCH_FAMILY]
    assert {t["started_at"][:10] for t in new} == {END.isoformat()}
    assert 30 <= len(new) <= 60
    assert len({t["spans"][0]["input"]["user"] for t in new}) >= 25
    assert share(days[END.isoformat()], LAUNCH_FAMILY) == pytest.approx(PLANTED["launch"]["share"], abs=0.06)


def test_short_windows_have_nothing_planted():
    """A baseline week is needed for an incident to stand out: below min_days nothing is planted."""
    for days in range(1, PLANTED["min_days"]):
        assert not {t["labels"]["scenario"] for t in generate_traces(300, days=days, seed=3, end=END)} & set(PLANTED_FAMILIES)


def test_the_planted_traces_are_deterministic_by_seed():
    a = [t["trace_id"] for t in generate_traces(600, days=7, seed=4, end=END) if t["labels"]["scenario"] in PLANTED_FAMILIES]
    b = [t["trace_id"] for t in generate_traces(600, days=7, seed=4, end=END) if t["labels"]["scenario"] in PLANTED_FAMILIES]
    c = [t["trace_id"].replace("syn-5", "syn-4") for t in generate_traces(600, days=7, seed=5, end=END)
         if t["labels"]["scenario"] in PLANTED_FAMILIES]
    assert a == b and a != c
