"""The generated traces are pinned: moving the scenario families to data must not change a byte.

The hashes were computed with the generator as it was before the families moved to
families.yaml; a change here is a change to every demo and every test built on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from topics_assets.demo import generate_traces

PINNED = [
    # (n_traces, seed, days, end, sha256 of json.dumps(records, sort_keys=True))
    (1200, 7, 7, dt.date(2026, 11, 20), "d097f3e6da0c511df560a45a07d80d0ec147a1c49eb52ce80c40c5728cad3e71"),
    (400, 0, 7, dt.date(2025, 6, 8), "7d8c81935968bcbf81458135131e637d666b8b0ef50eaed75ac10c51f4617c50"),
    (300, 7, 3, dt.date(2025, 6, 8), "35970e57e1962d05009d35cc8f1227ee74505f4df2f79028dcbeb07b6118786b"),
    (60, 123, 30, dt.date(2025, 6, 8), "d79fcd1637bd4e147ce1a9bc12a9ce87aea5ff3a39a1f19d3db55421b6012094"),
]


@pytest.mark.parametrize(("n", "seed", "days", "end", "digest"), PINNED)
def test_generated_traces_match_the_pinned_hash(n, seed, days, end, digest):
    records = generate_traces(n_traces=n, seed=seed, days=days, end=end)
    assert hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest() == digest


def test_the_first_traces_and_their_hidden_labels_are_pinned():
    records = generate_traces(1200, days=7, seed=7, end=dt.date(2026, 11, 20))
    t = records[3]
    assert (t["trace_id"], t["started_at"]) == ("syn-7-000003", "2026-11-17T17:26:08Z")
    assert t["labels"] == {"scenario": "bug_report", "sentiment": "satisfied", "outcome": "resolved"}
