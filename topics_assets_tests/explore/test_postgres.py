"""The explorer on a PostgreSQL store answers exactly what it answers on DuckDB for the same pipeline run:
every endpoint's JSON, floats to six places."""

from starlette.testclient import TestClient

from topics_assets.explore.app import create_app

from .conftest import PROJECT, build_demo_store


def _rounded(v):
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items() if k not in {"created_at", "generated_at"}}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _answers(store) -> dict:
    c = TestClient(create_app(store))
    out = {"maps": c.get("/api/maps").json()}
    for facet in ("task", "issues"):
        q = {"project": PROJECT, "facet": facet}
        ov = c.get("/api/overview", params=q).json()
        out[f"overview/{facet}"] = ov
        out[f"points/{facet}"] = c.get("/api/points", params=q).json()
        for t in ov["topics"][:3]:
            page = c.get("/api/topic", params={**q, "topic_id": t["topic_id"]}).json()
            out[f"topic/{t['topic_id']}"] = page
            trace_id = page["traces"][0]["trace_id"]
            out[f"trace/{trace_id}"] = c.get("/api/trace", params={"project": PROJECT, "trace_id": trace_id}).json()
    return out


def test_postgres_store_answers_as_duckdb_does(demo_store, postgres_server, tmp_path):
    store, _ = build_demo_store(str(tmp_path / "home"), database=postgres_server.create_database())
    assert "postgres" in type(store).__module__ and "duckdb" in type(demo_store).__module__
    duck, pg = _answers(demo_store), _answers(store)
    assert duck.keys() == pg.keys() and len(duck) > 5
    for key in duck:
        assert _rounded(pg[key]) == _rounded(duck[key]), key
    assert pg["overview/task"]["total"] == 240


