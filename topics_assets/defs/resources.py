"""Resources: the DuckDB file, through dagster-duckdb, behind the product's Store."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from ..config import Settings
from ..store import Store


def store_from(duckdb: DuckDBResource) -> Store:
    """The one place the Dagster layer turns its resource into the core Store."""
    return Store(database=duckdb.database, connect=duckdb.get_connection)


def build_resources(settings: Settings) -> dict:
    return {"duckdb": DuckDBResource(database=settings.database_path)}
