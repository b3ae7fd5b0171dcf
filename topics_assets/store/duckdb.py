"""The embedded default: one DuckDB file, which anyone can query with SQL.

DuckDB allows one writing process at a time: connections are opened per operation and wait out
another process's write lock with jittered backoff, so two runs at once both finish.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .base import SQLStore


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


class DuckDBStore(SQLStore):
    Error = duckdb.Error

    def _connect(self, read_only: bool = False):
        return connect_with_retry(self.database, self.lock_wait_s, read_only)

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
