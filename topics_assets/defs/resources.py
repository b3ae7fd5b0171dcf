"""Resources: the DuckDB file, through dagster-duckdb, behind the product's Store."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from ..config import Settings
from ..store import Store, open_store


def store_from(duckdb: DuckDBResource, lock_wait_s: float = 300.0) -> Store:
    """The one place the Dagster layer turns its resource into the core Store.

    The Store opens the resource's file itself so that it can wait out another process's
    write lock with jittered backoff (two runs at once must both finish)."""
    return open_store(duckdb.database, lock_wait_s=lock_wait_s)


def build_resources(settings: Settings) -> dict:
    return {"duckdb": DuckDBResource(database=settings.database_path)}
