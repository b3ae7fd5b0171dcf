"""Partitions: traces and their derivatives by day of trace start; topic maps by (project, facet)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from ..config import Settings
from ..store import is_postgres_url, open_store

PROJECTS = DynamicPartitionsDefinition(name="projects")


def register_projects(instance, projects: list[str]) -> None:
    """Add newly seen projects to the instance's `projects` partitions. Here, beside the partitions and
    away from the stages, so that `topics ingest` registers without importing the pipeline."""
    known = set(instance.get_dynamic_partitions(PROJECTS.name))
    new = [p for p in projects if p not in known]
    if new:
        instance.add_dynamic_partitions(PROJECTS.name, new)


STORE_READ_WAIT_S = 60.0  # loading the definitions waits this long for a writer's lock


def first_day(settings: Settings) -> str:
    """partitions_start, else the first day the store holds traces for, else today.

    The catalog then starts where the data does instead of reading "0% filled" over empty days;
    an older trace ingested later moves the start back the next time the definitions load."""
    if settings.partitions_start:
        return settings.partitions_start
    today = datetime.now(timezone.utc).date().isoformat()
    database = settings.database_path
    if not is_postgres_url(database) and not Path(database).exists():
        return today  # no store yet: do not create one just to read it
    days = runnable_days(settings, open_store(database, lock_wait_s=STORE_READ_WAIT_S).days_with_traces())[0]
    return min(days) if days else today


def runnable_days(settings: Settings, days: list[str], now: datetime | None = None) -> tuple[list[str], list[str]]:
    """(days that have a day partition now, the rest): from ingest.earliest_start to today.

    Ingest quarantines traces outside the accepted window, so the rest are tomorrow's (clock skew,
    processed once the day starts) or ones a release without the window let in; either way no run is
    launched for them, as one would fail on a partition that does not exist (or cannot: past 9999)."""
    now = now or datetime.now(timezone.utc)
    first, last = settings.ingest.earliest_start, now.date().isoformat()
    ok = [d for d in days if first <= d <= last]
    return ok, [d for d in days if not first <= d <= last]


def with_first_day(settings: Settings) -> Settings:
    """The settings with partitions_start resolved, so every partitioned definition agrees on it."""
    return settings.model_copy(update={"partitions_start": first_day(settings)})


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    # end_offset=1: today's traces have a partition while the day is still running.
    return DailyPartitionsDefinition(start_date=first_day(settings), timezone="UTC", end_offset=1)


def map_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {"facet": StaticPartitionsDefinition(settings.text_facet_names), "project": PROJECTS}
    )


def map_key(project: str, facet: str) -> MultiPartitionKey:
    return MultiPartitionKey({"project": project, "facet": facet})


MAX_GAP_DAYS = 3  # days with no work between two pending days before they go to separate runs
MAX_RANGE_RUNS = 8  # at most this many runs for one batch of pending days; wider gaps split first


def day_ranges(days: list[str], max_gap: int = MAX_GAP_DAYS, max_runs: int = MAX_RANGE_RUNS) -> list[tuple[str, str]]:
    """(first, last) day ranges covering `days`: one per cluster of nearby days, not one span over all.

    A single-run backfill covers every day between its ends, so one late trace from months ago
    would otherwise re-read every day in between.
    """
    days = sorted(set(days))
    if not days:
        return []
    ordinals = [date.fromisoformat(d).toordinal() for d in days]
    gaps = [(ordinals[i + 1] - ordinals[i] - 1, i) for i in range(len(days) - 1)]
    splits = sorted(i for gap, i in sorted(gaps, reverse=True)[: max(0, max_runs - 1)] if gap > max_gap)
    ranges, start = [], 0
    for i in splits:
        ranges.append((days[start], days[i]))
        start = i + 1
    ranges.append((days[start], days[-1]))
    return ranges
