"""The embedded default: one DuckDB file, which anyone can query with SQL.

DuckDB allows one writing process at a time: connections are opened per operation and wait out
another process's write lock with jittered backoff, so two runs at once both finish.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .base import SQLStore, StoreDamaged, one_statement_error

# A DuckDB file is a 4 KiB main header and two 4 KiB database headers, then its blocks.
HEADERS_BYTES = 3 * 4096


def _is_lock_error(e: Exception) -> bool:
    msg = str(e).lower()
    return "lock" in msg or "conflicting" in msg


@contextlib.contextmanager
def connect_with_retry(database: str, wait_s: float = 300.0,
                       read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the file, waiting out another process's write lock instead of failing."""
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(database, read_only=read_only and database != ":memory:")
            break
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            if not _is_lock_error(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    try:
        yield conn
    finally:
        conn.close()


def recorded_blocks(database: str) -> tuple[int, int] | None:
    """(block count, block size) from a DuckDB file's newest database header, or None when the header
    is not in the layout this knows (then nothing is claimed).

    Layout: a 4 KiB main header ("DUCK" at byte 8), then two 4 KiB database headers, each a checksum
    and then iteration, meta block, free list, block count, block size (little-endian 64-bit)."""
    with open(database, "rb") as f:
        head = f.read(HEADERS_BYTES)
    if len(head) < HEADERS_BYTES or head[8:12] != b"DUCK":
        return None
    headers = [struct.unpack_from("<Q5Q", head, offset) for offset in (4096, 8192)]
    _, _, _, _, blocks, block_size = max(headers, key=lambda h: h[1])
    if not (4096 <= block_size <= 1 << 24 and block_size & (block_size - 1) == 0) or blocks > 1 << 40:
        return None
    return blocks, block_size


def highest_block_in_use(c: duckdb.DuckDBPyConnection) -> int:
    """The highest block id that the catalog's metadata or any table's column segments live in
    (metadata only: no row is read)."""
    tables = [r[0] for r in c.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                      "current_database() AND schema_name = current_schema()").fetchall()]
    highest = c.execute("SELECT coalesce(max(block_id), -1) FROM pragma_metadata_info()").fetchone()[0]
    for t in tables:
        used = c.execute("SELECT max(greatest(block_id, coalesce(list_max(additional_block_ids), -1))) "
                         "FROM pragma_storage_info(?)", [t]).fetchone()[0]
        highest = max(highest, -1 if used is None else int(used))
    return int(highest)


def damaged_message(database: str, why: str) -> str:
    return (f"{database}: the store is damaged ({why}); nothing was written to it. Restore it from a backup, "
            f"or move it aside (mv {database} {database}.damaged) and ingest again into a new one")


class DuckDBStore(SQLStore):
    Error = duckdb.Error

    def _connect(self, read_only: bool = False):
        return connect_with_retry(self.database, self.lock_wait_s, read_only)

    def _check_intact(self) -> None:
        """A truncated or foreign file is refused before anything writes to it.

        Cheap: one open, and the file's size against the blocks its newest header counts
        (DuckDB opens a truncated file and reads most of it, failing only on the lost blocks, later)."""
        if self.database == ":memory:" or not os.path.exists(self.database):
            return
        try:
            # The same configuration as the writes that follow: in one process DuckDB refuses a
            # read-only connection beside a read-write one (and the reverse), so a read-only check
            # would fail whichever thread of a process opened the file second.
            with connect_with_retry(self.database, self.lock_wait_s) as c:
                why = self._truncation(c)
        except duckdb.Error as e:
            if _is_lock_error(e):
                raise
            why = f"DuckDB cannot open it: {str(e).splitlines()[0]}"
        if why:
            raise StoreDamaged(damaged_message(self.database, why))

    def _check_readable(self, c: duckdb.DuckDBPyConnection) -> None:
        why = self._truncation(c)
        if why:
            raise StoreDamaged(damaged_message(self.database, why))

    def _truncation(self, c: duckdb.DuckDBPyConnection) -> str | None:
        """Why the file is shorter than it must be, or None. DuckDB cuts free blocks off the end of the
        file, so a file shorter than its header's block count is damaged only if a block in use is gone."""
        recorded = recorded_blocks(self.database)
        size = os.path.getsize(self.database)
        if recorded is None or size >= HEADERS_BYTES + recorded[0] * recorded[1]:
            return None
        need = HEADERS_BYTES + (highest_block_in_use(c) + 1) * recorded[1]
        if size >= need:
            return None
        return f"the file is truncated: {size:,} bytes of the {need:,} its blocks need"

    @contextlib.contextmanager
    def _begin(self, c: duckdb.DuckDBPyConnection) -> Iterator[None]:
        c.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def _stage(self, c, name: str, df: pd.DataFrame, like: str) -> None:
        # The registration dies with the connection, which every operation closes at its end.
        c.register(name, df)

    def _fetch_df(self, c, sql: str, params: list) -> pd.DataFrame:
        return c.execute(sql, params).df()

    def _fetch_columns(self, c, sql: str, params: list) -> dict[str, Any]:
        return c.execute(sql, params).fetchnumpy()

    def _fetch_statement(self, c, sql: str, params: list) -> pd.DataFrame:
        # DuckDB's own parser splits the text (quotes, comments and all); execute() would run every part.
        found = len(duckdb.extract_statements(sql))
        if found != 1:
            raise one_statement_error(found)
        return self._fetch_df(c, sql, params)

    def _sample(self, sql: str, n: int, seed: int) -> str:
        return f"SELECT * FROM ({sql}) USING SAMPLE reservoir({n} ROWS) REPEATABLE ({seed}) ORDER BY project, trace_id"

    def _retryable(self, e: Exception) -> bool:
        # Connections of one process share the database and commit optimistically: two of them
        # inserting the same new key (an upsert, a claim) fail one with a duplicate-key error that
        # is a write conflict, not a bad row; run again, its ON CONFLICT sees the other's row.
        # (at the insert, or at COMMIT).
        msg = str(e).lower()
        if isinstance(e, duckdb.ConstraintException):
            return "duplicate key" in msg
        return isinstance(e, duckdb.TransactionException) and ("conflict" in msg or "duplicate key" in msg)
