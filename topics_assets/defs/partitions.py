"""Partitions: traces and their derivatives by day of trace start; topic maps by (project, facet)."""

from __future__ import annotations

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from ..config import Settings
from ..pipeline import text_facets

PROJECTS = DynamicPartitionsDefinition(name="projects")


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    # end_offset=1: today's traces have a partition while the day is still running.
    return DailyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC", end_offset=1)


def map_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {"facet": StaticPartitionsDefinition(text_facets(settings)), "project": PROJECTS}
    )


def map_key(project: str, facet: str) -> MultiPartitionKey:
    return MultiPartitionKey({"project": project, "facet": facet})
