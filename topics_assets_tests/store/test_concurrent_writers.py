"""Four writers at once, on the same rows and on their own: no duplicates, no lost write."""

import threading

import numpy as np
import pandas as pd

from topics_assets.store import GenerationConflict, open_store

from .test_contract import facet, generation, keys, raw, topic, trace

WORKERS, ROUNDS = 4, 5
SHARED_DAY = "2025-06-01"
SHARED = [f"s{i:02d}" for i in range(40)]


def own_day(k: int) -> str:
    return f"2025-06-0{k + 2}"


def own_ids(k: int) -> list[str]:
    return [f"w{k}-{i:02d}" for i in range(15)]


def worker(url: str, k: int, barrier: threading.Barrier, landed: list, errors: list) -> None:
    store = open_store(url)  # a store per worker, as a run in its own process would have
    days = [SHARED_DAY, own_day(k)]
    live = keys(SHARED + [i for j in range(WORKERS) for i in own_ids(j)])
    try:
        for r in range(ROUNDS):
            barrier.wait()
            store.upsert_raw_traces([raw(i, payload=f"r{r}") for i in SHARED] +
                                    [raw(i, own_day(k), payload=f"w{k}r{r}") for i in own_ids(k)])
            store.write_facets(days, [facet(i, text=f"shared {i}") for i in SHARED] +
                               [facet(i, day=own_day(k), text=f"w{k}r{r} {i}") for i in own_ids(k)], [], live)
            store.write_classifications("shop", "task", 1, [SHARED_DAY], pd.DataFrame(
                {"trace_id": SHARED, "topic_id": "task-1", "distance": float(k), "day": SHARED_DAY}))
            prev = store.latest_generation("shop", "task")
            barrier.wait()
            try:
                store.write_generation(generation(prev + 1), [topic(prev + 1, f"task-{prev + 1}", [1.0, 0.0])], prev)
                landed.append(prev + 1)
            except GenerationConflict:
                pass
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))
        barrier.abort()


def test_four_writers_at_once_on_postgres(postgres_database):
    store = open_store(postgres_database)
    store.write_generation(generation(1), [topic(1, "task-1", [1.0, 0.0])], None)
    store.replace_traces([SHARED_DAY], [trace(i) for i in SHARED], keep=keys(SHARED))
    barrier, landed, errors = threading.Barrier(WORKERS), [], []
    threads = [threading.Thread(target=worker, args=(postgres_database, k, barrier, landed, errors))
               for k in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    q = store.query_df
    # Every row once; every writer's own rows hold its last write.
    assert q("SELECT count(*) n, count(DISTINCT trace_id) d FROM raw_traces").values.tolist() == \
        [[len(SHARED) + WORKERS * 15] * 2]
    own = q("SELECT trace_id, payload, version FROM raw_traces WHERE trace_id LIKE 'w%' ORDER BY 1")
    assert own.payload.tolist() == [f"w{k}r{ROUNDS - 1}" for k in range(WORKERS) for _ in own_ids(k)]
    assert set(own.version) == {ROUNDS}
    assert set(q("SELECT payload FROM raw_traces WHERE trace_id LIKE 's%'").payload) == {f"r{ROUNDS - 1}"}
    facets = q("SELECT trace_id, text FROM facets ORDER BY 1")
    assert len(facets) == facets.trace_id.nunique() == len(SHARED) + WORKERS * 15
    assert facets[facets.trace_id.str.startswith("w")].text.tolist() == \
        [f"w{k}r{ROUNDS - 1} {i}" for k in range(WORKERS) for i in own_ids(k)]
    cl = q("SELECT trace_id, count(*) n FROM classifications GROUP BY trace_id")
    assert len(cl) == len(SHARED) and set(cl.n) == {1}
    # One generation landed per round, numbered without gaps; the others were told of the conflict.
    gens = q("SELECT generation FROM topic_map_generations ORDER BY 1").generation.tolist()
    assert gens == list(range(1, ROUNDS + 2)) and sorted(landed) == gens[1:]
    assert q("SELECT count(*) n FROM topic_maps").n[0] == ROUNDS + 1
    assert np.isclose(float(q("SELECT count(DISTINCT distance) n FROM classifications").n[0]), 1)
