"""A store made by an earlier release opens with this one, is migrated forward, and keeps its rows."""

from pathlib import Path

import duckdb
import pytest

from topics_assets.store import SCHEMA_VERSION, DuckDBStore, QueryError, SchemaTooNew, is_postgres_url, open_store

HERE = Path(__file__).parent
SCHEMAS = {1: (HERE / "schema_v1.sql").read_text(), 2: (HERE / "schema_v2.sql").read_text()}

# A few rows in every table the migrations rebuild, in SQL both backends and both old schemas take.
OLD_ROWS = """
INSERT INTO raw_traces VALUES ('a', 'shop', '2025-06-01', NULL, 'chat', 'f', '{}', 'h', 1, now()),
                              ('b', 'shop', '2025-06-02', NULL, 'chat', 'f', '{}', 'h', 1, now());
INSERT INTO traces (trace_id, project, day, format, version, payload_hash, content, content_hash, status)
VALUES ('a', 'shop', '2025-06-01', 'chat', 1, 'h', 'give me my money back', 'c:a', 'ok');
INSERT INTO facets (trace_id, facet, project, day, text, text_hash, engine, model, content_hash)
VALUES ('a', 'task', 'shop', '2025-06-01', 'refund', 't:refund', 'extractive', 'none', 'c:a');
INSERT INTO facet_failures VALUES ('b', 'shop', '2025-06-02', 'timeout', '', now());
INSERT INTO topic_maps VALUES ('shop', 'task', 1, 'task-1', 'Refunds', 'd', ARRAY['refund'], 2,
                               ARRAY[0.5, 0.25], ARRAY['give me my money back'], 'active');
INSERT INTO classifications VALUES ('a', 'shop', 'task', 1, 'task-1', 0.1, '2025-06-01', now()),
                                   ('b', 'shop', 'task', 1, 'no_match', 0.9, '2025-06-02', now());
"""
REBUILT = {"raw_traces": 2, "traces": 1, "facets": 1, "facet_failures": 1, "classifications": 2}


def execute(database: str, sql: str) -> None:
    """Run a script on a store's database directly, as an older release would have."""
    if is_postgres_url(database):
        import psycopg

        with psycopg.connect(database, autocommit=True) as c:
            c.execute(sql)
    else:
        with duckdb.connect(database) as c:
            c.execute(sql)


def v1_file(path: Path) -> str:
    """A DuckDB file as the release before schema versions left it, with a few rows."""
    execute(str(path), SCHEMAS[1] + OLD_ROWS)
    return str(path)


def count(store, table: str) -> int:
    return int(store.query_df(f"SELECT count(*) AS n FROM {table}").n[0])


def assert_migrated_with_rows_kept(store, migrations: int) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.query_df("SELECT max(version) v FROM schema_version").v[0] == SCHEMA_VERSION
    assert {t: count(store, t) for t in REBUILT} == REBUILT
    assert store.days_with_traces() == ["2025-06-01", "2025-06-02"]
    topics = store.load_topics("shop", "task", 1)
    assert topics.name.tolist() == ["Refunds"] and list(topics.centroid[0]) == [0.5, 0.25]
    tt = store.query_df("SELECT trace_id, topic_id, topic_name FROM trace_topics ORDER BY 1")
    assert tt.values.tolist() == [["a", "task-1", "Refunds"], ["b", "no_match", "no_match"]]
    # The migrated store takes new writes, keyed by project now: the same id in another project
    # is another trace, and the first one keeps its rows.
    a = {"trace_id": "a", "project": "shop", "day": "2025-06-01", "started_at": None, "format": "chat",
         "source": "f", "payload": "{}", "payload_hash": "h"}
    assert store.upsert_raw_traces([a]) == {"loaded": 0, "updated": 0, "unchanged": 1}
    assert store.upsert_raw_traces([{**a, "project": "other"}]) == {"loaded": 1, "updated": 0, "unchanged": 0}
    assert store.query_df("SELECT project, trace_id FROM raw_traces WHERE trace_id = 'a' ORDER BY 1").values.tolist() \
        == [["other", "a"], ["shop", "a"]]
    assert store.raw_traces_for_days(["2025-06-01"]).set_index("project").done_hash.isna().to_dict() == \
        {"other": True, "shop": False}
    # Opening it again migrates nothing twice.
    again = open_store(store.database, lock_wait_s=5)
    assert again.schema_version() == SCHEMA_VERSION
    assert again.query_df("SELECT count(*) n FROM schema_version").n[0] == migrations


def test_a_v1_duckdb_file_is_migrated_and_keeps_its_rows(tmp_path):
    store = open_store(v1_file(tmp_path / "old.duckdb"))
    assert isinstance(store, DuckDBStore)
    assert_migrated_with_rows_kept(store, migrations=1)


@pytest.fixture(params=["duckdb", "postgres"])
def database(request, tmp_path) -> str:
    """An empty database of each kind, not yet opened as a store."""
    if request.param == "duckdb":
        return str(tmp_path / "store.duckdb")
    return request.getfixturevalue("postgres_server").create_database()


def test_a_v2_store_is_migrated_to_project_scoped_keys_and_keeps_its_rows(database):
    """Version 2 keyed traces by trace_id alone; both backends shipped it."""
    execute(database, SCHEMAS[2] + OLD_ROWS)
    store = open_store(database)
    assert store.schema_version() == SCHEMA_VERSION
    assert_migrated_with_rows_kept(store, migrations=2)
    # The rebuilt tables' keys are (project, trace_id, ...): a second copy of a row is refused.
    with pytest.raises(QueryError):
        store.query_df("INSERT INTO facets (trace_id, facet, project, day) VALUES ('a', 'task', 'shop', '2025-06-01')")
    store.query_df("INSERT INTO facets (trace_id, facet, project, day) VALUES ('a', 'task', 'other', '2025-06-01')")


def test_a_store_from_a_newer_release_is_refused(tmp_path):
    path = str(tmp_path / "new.duckdb")
    DuckDBStore(path).projects()
    with duckdb.connect(path) as c:
        c.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaTooNew):
        DuckDBStore(path).projects()


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://h/db"])
def test_open_store_picks_the_backend_from_the_setting(url, tmp_path):
    from topics_assets.store import PostgresStore

    assert isinstance(open_store(url), PostgresStore)  # lazily connects: nothing is opened here
    assert isinstance(open_store(str(tmp_path / "x.duckdb")), DuckDBStore)
