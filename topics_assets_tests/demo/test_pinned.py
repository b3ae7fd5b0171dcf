"""The generated traces are pinned: moving the scenario families to data must not change a byte, and the
families planted on the last day (generator.PLANTED) change only the traces they take.

The full hashes are of the generator with the planted families. The `kept` hashes were computed with the
generator as it was before them, over the traces that the planted families do not take: those traces are
still byte for byte what they were. A change here is a change to every demo and every test built on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from topics_assets.demo import generate_traces
from topics_assets.demo.generator import PLANTED_FAMILIES

PINNED = [
    # (n_traces, seed, days, end, sha256 of json.dumps(records, sort_keys=True),
    #  sha256 of the concatenated per-record sha256s of the records no planted family took, before planting)
    (1200, 7, 7, dt.date(2026, 11, 20), "75b497f8904e9c203100cf7f131163b2d8ada726ebab41b13b7bfaaeae4a6337",
     "b1563242109b34b2f91435d783f1cd44ab91ae4756f4783866de47f722da1da5"),
    (400, 0, 7, dt.date(2025, 6, 8), "a92b04c32a967dbb304fb6376d5a5ca7bf2d835c7d85e386e6f4cbff1186ecde",
     "8380641d3a1ceb1816ab739c72b9182a990c59bdde67057651e586253125ef0d"),
    (300, 7, 3, dt.date(2025, 6, 8), "35970e57e1962d05009d35cc8f1227ee74505f4df2f79028dcbeb07b6118786b",
     "655d1bc1fa2dcbd47fd89d5dd1b8168fddf5c22c6d03daccc1bfc3aff030b59f"),
    (60, 123, 30, dt.date(2025, 6, 8), "dbbdbd6343f3d127d2e97240ee9d6bf34b871d2882173210d4d15899e37f4060",
     "3fe14f2d9a64274aa29fae0b8f9735160c0597a12ea996da5c0e74d477958d15"),
]


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(("n", "seed", "days", "end", "digest", "kept"), PINNED)
def test_generated_traces_match_the_pinned_hash(n, seed, days, end, digest, kept):
    records = generate_traces(n_traces=n, seed=seed, days=days, end=end)
    assert _sha(records) == digest
    untouched = [r for r in records if r["labels"]["scenario"] not in PLANTED_FAMILIES]
    assert hashlib.sha256("".join(_sha(r) for r in untouched).encode()).hexdigest() == kept


def test_the_first_traces_and_their_hidden_labels_are_pinned():
    records = generate_traces(1200, days=7, seed=7, end=dt.date(2026, 11, 20))
    t = records[3]
    assert (t["trace_id"], t["started_at"]) == ("syn-7-000003", "2026-11-17T17:26:08Z")
    assert t["labels"] == {"scenario": "bug_report", "sentiment": "satisfied", "outcome": "resolved"}
