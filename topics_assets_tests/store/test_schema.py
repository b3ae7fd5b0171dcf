"""A store made by an earlier release opens with this one, is migrated forward, and keeps its rows."""

from pathlib import Path

import duckdb
import pytest

from topics_assets.store import SCHEMA_VERSION, DuckDBStore, SchemaTooNew, open_store

SCHEMA_V1 = (Path(__file__).parent / "schema_v1.sql").read_text()


def v1_file(path: Path) -> str:
    """A DuckDB file as the release before schema versions left it, with a few rows."""
    with duckdb.connect(str(path)) as c:
        c.execute(SCHEMA_V1)
        c.execute("""INSERT INTO raw_traces VALUES ('a', 'shop', '2025-06-01', NULL, 'chat', 'f', '{}', 'h', 1, now()),
                                                   ('b', 'shop', '2025-06-02', NULL, 'chat', 'f', '{}', 'h', 1, now())""")
        c.execute("""INSERT INTO topic_maps VALUES ('shop', 'task', 1, 'task-1', 'Refunds', 'd', ['refund'], 2,
                                                    [0.5, 0.25], ['give me my money back'], 'active')""")
        c.execute("""INSERT INTO classifications VALUES ('a', 'shop', 'task', 1, 'task-1', 0.1, '2025-06-01', now()),
                                                        ('b', 'shop', 'task', 1, 'no_match', 0.9, '2025-06-02', now())""")
    return str(path)


def test_a_v1_duckdb_file_is_migrated_and_keeps_its_rows(tmp_path):
    store = open_store(v1_file(tmp_path / "old.duckdb"))
    assert isinstance(store, DuckDBStore)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.query_df("SELECT max(version) v FROM schema_version").v[0] == SCHEMA_VERSION
    assert store.days_with_traces() == ["2025-06-01", "2025-06-02"]
    topics = store.load_topics("shop", "task", 1)
    assert topics.name.tolist() == ["Refunds"] and list(topics.centroid[0]) == [0.5, 0.25]
    tt = store.query_df("SELECT trace_id, topic_id, topic_name FROM trace_topics ORDER BY 1")
    assert tt.values.tolist() == [["a", "task-1", "Refunds"], ["b", "no_match", "no_match"]]
    # The migrated store takes new writes, and opening it again migrates nothing twice.
    assert store.upsert_raw_traces([{"trace_id": "a", "project": "shop", "day": "2025-06-01", "started_at": None,
                                     "format": "chat", "source": "f", "payload": "{}", "payload_hash": "h"}]) \
        == {"loaded": 0, "updated": 0, "unchanged": 1}
    again = DuckDBStore(database=store.database, lock_wait_s=5)
    assert again.schema_version() == SCHEMA_VERSION
    assert again.query_df("SELECT count(*) n FROM schema_version").n[0] == 1


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
