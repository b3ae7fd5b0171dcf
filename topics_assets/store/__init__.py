"""The store: the SQL contract users query, and every read and write the pipeline makes.

`open_store` picks the backend from the database setting: a `postgresql://` URL for PostgreSQL,
anything else a DuckDB file (the embedded default).
"""

from __future__ import annotations

from .base import (GenerationConflict, QueryError, SchemaTooNew, SQLStore, StoreDamaged, StoreIncomplete, StoreUnusable,
                   now_utc, vectors_to_array)
from .duckdb import DuckDBStore
from .postgres import PostgresStore
from .protocol import Store, TraceKey
from .schema import FACET_COLUMNS, SCHEMA_VERSION, TOPIC_COLUMNS, TRACE_COLUMNS

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(database: str) -> bool:
    return database.startswith(POSTGRES_SCHEMES)


def open_store(database: str, lock_wait_s: float = 300.0) -> Store:
    cls = PostgresStore if is_postgres_url(database) else DuckDBStore
    return cls(database, lock_wait_s)


__all__ = [
    "DuckDBStore", "FACET_COLUMNS", "GenerationConflict", "PostgresStore", "QueryError", "SCHEMA_VERSION",
    "SQLStore", "SchemaTooNew", "Store", "StoreDamaged", "StoreIncomplete", "StoreUnusable", "TOPIC_COLUMNS", "TRACE_COLUMNS", "TraceKey", "is_postgres_url", "now_utc",
    "open_store", "vectors_to_array",
]
