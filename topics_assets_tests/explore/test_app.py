"""The explorer's JSON API over a real demo store: what each endpoint answers, its errors, the page's
assets served from the package with a policy that forbids loading anything from elsewhere, and that it
only ever opens the store read-only (it answers while another process holds the file open read-only,
which a read-write open could not)."""

import subprocess
import sys
import time

from starlette.testclient import TestClient

from topics_assets.explore.app import create_app
from topics_assets.store import open_store

from .conftest import PROJECT


def _client(store) -> TestClient:
    return TestClient(create_app(store))


def test_endpoints_answer_what_the_store_holds(demo_store):
    c = _client(demo_store)
    page = c.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="static/app.js"' in page.text and "http" not in page.text.split("<body>")[1]
    assert c.get("/static/app.js").status_code == 200 and c.get("/static/app.css").status_code == 200
    maps = c.get("/api/maps").json()["maps"]
    facets = {m["facet"] for m in maps}
    assert {m["project"] for m in maps} == {PROJECT} and "task" in facets
    q = {"project": PROJECT, "facet": "task"}
    ov = c.get("/api/overview", params=q).json()
    assert ov["generation"] == 1 and ov["total"] == 240 == sum(t["n"] for t in ov["topics"]) + ov["no_match"]["n"]
    assert abs(sum(t["share"] for t in ov["topics"]) + ov["no_match"]["share"] - 1) < 1e-3
    assert all(len(t["daily"]) == len(ov["days"]) == 3 and sum(t["daily"]) == t["n"] for t in ov["topics"])
    failed = demo_store.query_df("""SELECT count(*) n FROM classifications c JOIN trace_outcomes o USING (project, trace_id)
                                    WHERE c.facet = 'task' AND (o.status = 'error' OR o.abnormal_end)""").n[0]
    assert sum(t["failed"] for t in ov["topics"]) + ov["no_match"]["failed"] == failed > 0
    pts = c.get("/api/points", params=q).json()
    assert pts["n"] == 240 == len(pts["x"]) == len(pts["text"]) and pts["topics"][-1] == "no_match"
    assert sum(pts["failed"]) == failed  # every trace of this small store is in the sample
    # The page asks for the layout first and the texts after: the same points, in the same order.
    layout = c.get("/api/points", params={**q, "text": "0"}).json()
    assert "text" not in layout and {k: v for k, v in pts.items() if k != "text"} == layout
    assert c.get("/api/point_texts", params=q).json()["text"] == pts["text"]
    top = ov["topics"][0]
    t = c.get("/api/topic", params={**q, "topic_id": top["topic_id"]}).json()
    assert t["topic"]["n"] == top["n"] == len(t["traces"]) and t["topic"]["examples"]
    assert [n["topic_id"] for n in t["nearest"]] and top["topic_id"] not in [n["topic_id"] for n in t["nearest"]]
    sims = [n["similarity"] for n in t["nearest"]]
    assert sims == sorted(sims, reverse=True)
    # Its parent (topic_hierarchy) with the parent's children, this topic among them.
    h = demo_store.load_hierarchy(PROJECT, "task", 1)
    mine = h[h.topic_id == top["topic_id"]].iloc[0]
    assert t["parent"]["parent_id"] == mine.parent_id and t["parent"]["name"] == mine.parent_name
    assert sorted(c["topic_id"] for c in t["parent"]["children"]) == sorted(h.topic_id[h.parent_id == mine.parent_id])
    assert {r["topic_id"]: r["parent_id"] for r in ov["topics"]} == dict(zip(h.topic_id, h.parent_id))
    tr = c.get("/api/trace", params={"project": PROJECT, "trace_id": t["traces"][0]["trace_id"]}).json()
    assert tr["trace"]["content"] and {f["facet"] for f in tr["facets"]} >= {"task"} and tr["outcome"]["status"]
    # A date range narrows the counts.
    day = ov["days"][0]
    one = c.get("/api/overview", params={**q, "start": day, "end": day}).json()
    assert one["days"] == [day] and one["total"] == sum(t["daily"][0] for t in ov["topics"]) + ov["no_match"]["daily"][0]


def test_errors_name_what_is_missing(demo_store):
    c = _client(demo_store)
    r = c.get("/api/overview", params={"project": PROJECT})
    assert r.status_code == 400 and "facet" in r.json()["error"]
    r = c.get("/api/overview", params={"project": "nope", "facet": "task"})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = c.get("/api/overview", params={"project": PROJECT, "facet": "task", "generation": "9"})
    assert r.status_code == 404 and "no generation 9" in r.json()["error"]
    r = c.get("/api/overview", params={"project": PROJECT, "facet": "task", "generation": "x"})
    assert r.status_code == 400
    r = c.get("/api/topic", params={"project": PROJECT, "facet": "task", "topic_id": "task-999"})
    assert r.status_code == 404 and "task-999" in r.json()["error"]
    r = c.get("/api/trace", params={"project": PROJECT, "trace_id": "missing"})
    assert r.status_code == 404 and "missing" in r.json()["error"]


def test_reads_only_beside_another_process_holding_the_file(demo_store):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('open', flush=True); "
        "time.sleep(120)"), demo_store.database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        store = open_store(demo_store.database, lock_wait_s=1.0)  # a read-write open would fail within 1 s
        c = _client(store)
        t0 = time.monotonic()
        q = {"project": PROJECT, "facet": "task"}
        assert c.get("/api/maps").status_code == 200
        assert c.get("/api/overview", params=q).status_code == 200
        assert c.get("/api/points", params=q).status_code == 200
        top = c.get("/api/overview", params=q).json()["topics"][0]["topic_id"]
        traces = c.get("/api/topic", params={**q, "topic_id": top}).json()["traces"]
        assert c.get("/api/trace", params={"project": PROJECT, "trace_id": traces[0]["trace_id"]}).status_code == 200
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()


def test_topics_carry_the_trend_alerts_of_the_newest_day_shown(demo_store, tmp_path):
    import shutil

    shutil.copy(demo_store.database, tmp_path / "copy.duckdb")
    store = open_store(str(tmp_path / "copy.duckdb"))
    c = _client(store)
    q = {"project": PROJECT, "facet": "task"}
    ov = c.get("/api/overview", params=q).json()
    assert all(t["flags"] == [] for t in ov["topics"])
    first, second = ov["topics"][0]["topic_id"], ov["topics"][1]["topic_id"]
    last, earlier = ov["days"][-1], ov["days"][0]

    def alert(topic_id, day, kind):
        return {"project": PROJECT, "facet": "task", "topic_id": topic_id, "day": day, "kind": kind,
                "generation": ov["generation"], "topic_name": None, "count": 9, "expected": 2.0, "share": 0.3,
                "baseline_share": 0.1, "p_value": 0.001, "q_value": 0.01, "detail": "{}"}

    store.record_alerts([alert(first, last, "rising"), alert(first, last, "failing"), alert(second, earlier, "new")])
    ov = c.get("/api/overview", params=q).json()
    flags = {t["topic_id"]: t["flags"] for t in ov["topics"]}
    assert ov["flags_day"] == last and flags[first] == ["failing", "rising"] and flags[second] == []
    ov = c.get("/api/overview", params={**q, "end": earlier}).json()
    flags = {t["topic_id"]: t["flags"] for t in ov["topics"]}
    assert ov["flags_day"] == earlier and flags[first] == [] and flags[second] == ["new"]


def test_an_answer_reads_on_one_connection(demo_store):
    """Store.reading(): the reads inside share this thread's one read-only connection, and only inside."""
    import threading

    with demo_store.reading():
        with demo_store.conn(read_only=True) as a, demo_store.conn(read_only=True) as b:
            assert a is b
        with demo_store.reading(), demo_store.conn(read_only=True) as c:  # nested: the same one
            assert c is a
        other = []
        t = threading.Thread(target=lambda: other.append(demo_store.map_generation_numbers(PROJECT, "task")))
        t.start()
        t.join()
        assert other == [[1]]  # another thread opens its own
        assert demo_store.map_generation_numbers(PROJECT, "task") == [1]
    with demo_store.conn(read_only=True) as d:
        assert d is not a
