"""A store that was tampered with or damaged is refused with what to do, never silently repaired empty."""

import os

import duckdb
import pytest

from topics_assets.store import QueryError, StoreDamaged, StoreIncomplete, open_store

RAW = {"trace_id": "t1", "project": "p", "day": "2026-11-20", "started_at": None, "format": "chat",
       "source": "test", "payload": "{}", "payload_hash": "h1"}


def relations(store) -> set[str]:
    """The store's tables and views, read past its checks (through the backend's own connection)."""
    with store._connect() as c:
        return store._relations(c)


# ----- one statement per query ---------------------------------------------------------------------

def test_query_df_refuses_a_second_statement_before_running_any(store):
    store.upsert_raw_traces([RAW])
    with pytest.raises(QueryError, match="one SQL statement per call"):
        store.query_df("SELECT 1; DROP TABLE classifications", read_only=False)
    with pytest.raises(QueryError, match="one SQL statement per call"):
        store.query_df("DELETE FROM raw_traces; SELECT 1", read_only=False)
    assert "classifications" in relations(store)
    assert store.query_df("SELECT count(*) AS n FROM raw_traces").n.iloc[0] == 1
    # One statement with a semicolon inside a string, or a trailing one, is one statement.
    assert store.query_df("SELECT ';' AS s;").s.iloc[0] == ";"


# ----- missing tables ---------------------------------------------------------------------------

def test_a_store_lacking_a_table_is_refused_not_recreated_empty(store):
    store.upsert_raw_traces([RAW])
    store.query_df("DROP TABLE classifications CASCADE", read_only=False)
    reopened = open_store(store.database)
    with pytest.raises(StoreIncomplete, match=r"lacks table\(s\) classifications.*backup"):
        reopened.projects()
    with pytest.raises(StoreIncomplete):
        reopened.upsert_raw_traces([{**RAW, "trace_id": "t2", "payload_hash": "h2"}])
    assert "classifications" not in relations(reopened)
    assert _raw_ids(reopened) == ["t1"]


def _raw_ids(store) -> list[str]:
    with store._connect() as c:
        return store._column(c, "SELECT trace_id FROM raw_traces")


def test_a_store_without_its_version_and_first_table_is_refused(store):
    store.upsert_raw_traces([RAW])
    store.query_df("DROP TABLE raw_traces", read_only=False)
    store.query_df("DROP TABLE schema_version", read_only=False)
    with pytest.raises(StoreIncomplete, match="raw_traces"):
        open_store(store.database).projects()


def test_a_dropped_view_is_remade_since_it_holds_no_rows(store):
    store.upsert_raw_traces([RAW])
    store.query_df("DROP VIEW trace_topics", read_only=False)
    reopened = open_store(store.database)
    assert reopened.projects() == ["p"]
    assert "trace_topics" in relations(reopened)


# ----- a damaged DuckDB file --------------------------------------------------------------------

@pytest.fixture
def filled_duckdb(tmp_path):
    """A DuckDB store of a few MB (incompressible payloads, so the blocks are real)."""
    path = str(tmp_path / "store.duckdb")
    store = open_store(path)
    store.upsert_raw_traces([{**RAW, "trace_id": f"t{i}", "payload": os.urandom(1500).hex(), "payload_hash": f"h{i}"}
                             for i in range(1500)])
    return path


def test_a_truncated_duckdb_file_is_refused_and_left_as_it_is(filled_duckdb):
    size = os.path.getsize(filled_duckdb)
    with open(filled_duckdb, "r+b") as f:
        f.truncate(size // 2)
    before = open(filled_duckdb, "rb").read()
    store = open_store(filled_duckdb)
    with pytest.raises(StoreDamaged, match="truncated.*backup.*move it aside"):
        store.upsert_raw_traces([{**RAW, "trace_id": "new", "payload_hash": "new"}])
    with pytest.raises(StoreDamaged):
        store.projects()
    assert open(filled_duckdb, "rb").read() == before
    assert not os.path.exists(filled_duckdb + ".wal")


def test_a_file_that_is_no_duckdb_database_is_refused(tmp_path):
    path = tmp_path / "store.duckdb"
    path.write_bytes(b"SQLite format 3\0" + os.urandom(8192))
    with pytest.raises(StoreDamaged, match="cannot open it"):
        open_store(str(path)).projects()


def test_a_healthy_store_passes_the_check_after_many_writes(filled_duckdb):
    store = open_store(filled_duckdb)
    store.query_df("DELETE FROM raw_traces WHERE trace_id < 't5'", read_only=False)
    with duckdb.connect(filled_duckdb) as c:
        c.execute("CHECKPOINT")
    assert open_store(filled_duckdb).projects() == ["p"]


def test_the_check_passes_while_this_process_holds_the_file_open(filled_duckdb):
    with duckdb.connect(filled_duckdb):
        assert open_store(filled_duckdb).projects() == ["p"]
