"""The facet stage claims the traces it facets: what another live run holds is skipped and reported,
faceted by a later run once that run lets go or dies; on both backends."""

import json
import subprocess
import sys

from topics_assets.claims import HOST, Claim
from topics_assets.facets.stage import facet_days
from topics_assets.ingest.stage import ingest_paths
from topics_assets.preprocess.stage import preprocess_days

DAY = "2025-06-02"
N = 12


def _traces(store, settings, tmp_path) -> list[tuple[str, str]]:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps({
        "id": f"t{i:02d}", "project": "shop", "timestamp": f"{DAY}T10:00:00Z",
        "messages": [{"role": "user", "content": f"Where is my parcel number {i}?"},
                     {"role": "assistant", "content": "Let me check."}]}) + "\n" for i in range(N)))
    ingest_paths(store=store, settings=settings, paths=[str(path)])
    preprocess_days(store=store, settings=settings, days=[DAY])
    return [("shop", f"t{i:02d}") for i in range(N)]


def test_traces_another_run_holds_are_skipped_then_faceted_once_it_lets_go(store, settings, tmp_path):
    keys = _traces(store, settings, tmp_path)
    with Claim(store, "facet", keys[:5]) as other_run:
        assert other_run.held == set(keys[:5])
        meanwhile = facet_days(store=store, settings=settings, days=[DAY])
    assert (meanwhile.faceted, meanwhile.busy, meanwhile.cache_hits, meanwhile.failed) == (N - 5, 5, 0, 0)
    assert meanwhile.busy_note.startswith("5 traces skipped: another run is working on them (process ")
    assert meanwhile.to_metadata()["progress"] == {"done": N - 5, "failed": 0, "failures_by_reason": {}}
    later = facet_days(store=store, settings=settings, days=[DAY])
    assert (later.faceted, later.busy, later.cache_hits, later.busy_note) == (5, 0, N - 5, None)
    assert store.query_df("SELECT count(*) n FROM work_claims").n[0] == 0  # released after each run


def test_a_killed_runs_traces_are_taken_over_at_once(store, settings, tmp_path):
    keys = _traces(store, settings, tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.claim_work("facet", keys, f"{HOST}:{gone.pid}:feedface", ttl_s=3600)  # held until long after now
    result = facet_days(store=store, settings=settings, days=[DAY])
    assert (result.faceted, result.busy) == (N, 0)
