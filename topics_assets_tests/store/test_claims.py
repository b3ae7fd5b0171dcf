"""Work claims (leases) in the store: atomic, released, lapsing, taken over from a dead owner; on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from topics_assets.claims import HOST, Claim, holders, owner_is_dead
from topics_assets.store import open_store

PAIRS = [("p", f"t{i}") for i in range(20)]


def test_a_claim_excludes_others_until_released(store):
    with Claim(store, "facet", PAIRS[:12]) as first:
        assert first.held == set(PAIRS[:12]) and not first.busy
        with Claim(store, "facet", PAIRS) as second:
            assert second.held == set(PAIRS[12:]) and set(second.busy) == set(PAIRS[:12])
            assert "12 traces skipped: another run is working on them" in second.busy_note("traces")
        with Claim(store, "topic_map", [("p", "t0")]) as other_kind:
            assert other_kind.held == {("p", "t0")}
            assert holders(store, "topic_map") == {("p", "t0"): f"process {os.getpid()} on {HOST}"}
        assert set(holders(store, "facet")) == set(PAIRS[:12]) and not holders(store, "topic_map")
    with Claim(store, "facet", PAIRS) as third:
        assert third.held == set(PAIRS)
    assert store.query_df("SELECT count(*) n FROM work_claims").n[0] == 0


def test_a_lapsed_claim_is_taken_and_a_live_one_is_renewed(store):
    stale = Claim(store, "facet", PAIRS[:2], ttl_s=0.3).__enter__()
    stale._stop.set()  # its heartbeat stops, as a hung owner's would
    time.sleep(0.5)
    with Claim(store, "facet", PAIRS[:2]) as taker:
        assert taker.held == set(PAIRS[:2])
    live = Claim(store, "facet", PAIRS[:2], ttl_s=0.6).__enter__()
    time.sleep(1.0)  # past its first expiry: the heartbeat (every ttl/3) renewed it
    with Claim(store, "facet", PAIRS[:2]) as late:
        assert not late.held
    live.__exit__(None, None, None)


def test_a_dead_owners_claim_is_taken_at_once(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = f"{HOST}:{proc.pid}:deadbeef"
    assert owner_is_dead(dead) and not owner_is_dead(f"{HOST}:1:x") and not owner_is_dead(f"elsewhere:{proc.pid}:x")
    store.claim_work("facet", PAIRS[:3], dead, ttl_s=3600)
    with Claim(store, "facet", PAIRS[:3]) as after_kill:
        assert after_kill.held == set(PAIRS[:3])


def test_threads_with_their_own_connections_never_claim_the_same_item(tmp_path):
    """Eight claimants at once on one DuckDB file, each with its own store (its own connections)."""
    path = str(tmp_path / "claims.duckdb")
    open_store(path).schema_version()
    won: list[set] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def claimant() -> None:
        store = open_store(path)
        barrier.wait()
        try:
            c = Claim(store, "facet", PAIRS).__enter__()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            return
        c._stop.set()
        won.append(c.held)  # kept: never released

    threads = [threading.Thread(target=claimant) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(won) == 8
    assert sum(len(w) for w in won) == len(PAIRS) and set().union(*won) == set(PAIRS)
