"""PostgreSQL: the store for teams whose runs outgrow one writing process.

Same tables, view and SQL as DuckDB (see base.py); what differs is here: `%s` placeholders,
DataFrames staged through COPY into temporary tables, a deterministic md5-ordered sample instead
of DuckDB's reservoir, and advisory locks where a check and a write must not interleave. Many
processes write at once; upserts and retried deadlocks keep them from duplicating or losing rows.
Connections are short (one per operation), so a forked Dagster process never inherits one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import errors
from psycopg.types.string import TextLoader

from .base import SQLStore, one_statement_error


def _py(v: Any) -> Any:
    """A value as psycopg adapts it (pandas' and numpy's missing values and scalars as Python's)."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_py(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def _df(cur) -> pd.DataFrame:
    if cur.description is None:
        return pd.DataFrame()
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


class PostgresStore(SQLStore):
    Error = psycopg.Error

    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[psycopg.Connection]:
        conn = psycopg.connect(self.database, autocommit=True)
        try:
            # JSON columns read back as text, as DuckDB gives them.
            conn.adapters.register_loader("json", TextLoader)
            if read_only:
                conn.execute("SET default_transaction_read_only = on")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _begin(self, c: psycopg.Connection) -> Iterator[None]:
        with c.transaction():
            yield

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _stage(self, c, name: str, df: pd.DataFrame, like: str) -> None:
        cols = ", ".join(df.columns)
        c.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {cols} FROM {like} WITH NO DATA")
        with c.cursor().copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
            for row in df.itertuples(index=False, name=None):
                copy.write_row([_py(v) for v in row])

    def _fetch_df(self, c, sql: str, params: list) -> pd.DataFrame:
        return _df(c.execute(self._sql(sql), params) if params else c.execute(sql))

    def _fetch_statement(self, c, sql: str, params: list) -> pd.DataFrame:
        # A prepared statement holds exactly one command: the server refuses more before running any
        # (the simple protocol that execute() uses without parameters would run them all).
        cur = c.cursor()
        try:
            cur.execute(self._sql(sql) if params else sql, params or None, prepare=True)
        except errors.SyntaxError as e:
            if "multiple commands" in str(e):
                raise one_statement_error(None) from e
            raise
        return _df(cur)

    def _fetch_columns(self, c, sql: str, params: list) -> dict[str, Any]:
        # Binary results: float4 arrays are parsed in C, not from their text.
        cur = c.cursor(binary=True)
        cur.execute(self._sql(sql), params)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        return {n: [r[i] for r in rows] for i, n in enumerate(names)}

    def _sample(self, sql: str, n: int, seed: int) -> str:
        return (f"SELECT * FROM (SELECT * FROM ({sql}) AS s ORDER BY md5(s.project || '/' || s.trace_id || '{seed}') "
                f"LIMIT {n}) AS sampled ORDER BY project, trace_id")

    def _lock(self, c, key: str) -> None:
        c.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])

    def _retryable(self, e: Exception) -> bool:
        return isinstance(e, (errors.DeadlockDetected, errors.SerializationFailure))
