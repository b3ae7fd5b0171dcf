"""A snapshot of the whole Definitions: a change to the graph, its automation or its resources shows
up as a diff here, to be read and accepted, not as a surprise in a running deployment.

Regenerate after an intended change:  TOPICS_UPDATE_SNAPSHOT=1 pytest topics_assets_tests/defs/test_defs.py
"""

import difflib
import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    DailyPartitionsDefinition,
    Definitions,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    Shape,
    StaticPartitionsDefinition,
)

from topics_assets.config import load_settings
from topics_assets.definitions import build_defs

SNAPSHOT = Path(__file__).with_name("defs_snapshot.json")
UPDATE = "TOPICS_UPDATE_SNAPSHOT"


def describe_partitions(p) -> dict | None:
    if p is None:
        return None
    out: dict = {"type": type(p).__name__}
    if isinstance(p, DailyPartitionsDefinition):  # the key count grows every day: describe the rule
        start = p.start.strftime(p.fmt)  # with no store yet, the first day is today: name it so
        start = "today" if start == datetime.now(timezone.utc).date().isoformat() else start
        out.update(start=start, fmt=p.fmt, timezone=p.timezone, end_offset=p.end_offset)
    elif isinstance(p, StaticPartitionsDefinition):
        out.update(keys=p.get_partition_keys())
    elif isinstance(p, DynamicPartitionsDefinition):
        out.update(name=p.name)
    elif isinstance(p, MultiPartitionsDefinition):
        out.update(dimensions={d.name: describe_partitions(d.partitions_def) for d in p.partitions_defs})
    return out


def config_fields(config_type, prefix: str = "") -> list[str]:
    """Every config field, nested ones dotted, as the launchpad lists them."""
    names = []
    for name, field in config_type.fields.items():
        names.append(prefix + name)
        inner = field.config_type
        while hasattr(inner, "inner_type"):  # Noneable, Array: the facets are a list of shapes
            inner = inner.inner_type
        if isinstance(inner, Shape):
            names += config_fields(inner, f"{prefix}{name}.")
    return names


def describe(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for assets_def in defs.assets:
        for spec in assets_def.specs:
            assets[spec.key.to_user_string()] = {
                "partitions": describe_partitions(spec.partitions_def),
                "deps": {d.asset_key.to_user_string():  # with the mapping in effect, explicit or default
                         type(graph.get_partition_mapping(spec.key, d.asset_key)).__name__ for d in spec.deps},
                "group": spec.group_name,
                "kinds": sorted(spec.kinds),
                "pool": assets_def.op.pool,
                "backfill_policy": str(assets_def.backfill_policy) if assets_def.backfill_policy else None,
                "resources": sorted(assets_def.required_resource_keys),
            }
    jobs = {}
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "ops": sorted(job.graph.node_names()) if not job.asset_layer.selected_asset_keys else [],
            "partitions": describe_partitions(job.partitions_def),
            "resources": sorted(job.required_resource_keys),
        }
    sensors = {s.name: {
        "type": type(s).__name__,
        "targets": sorted(t.job_name for t in s.targets),
        "asset_key": s.asset_key.to_user_string() if hasattr(s, "asset_key") else None,
        "default_status": s.default_status.value,
        "minimum_interval_seconds": s.minimum_interval_seconds,
        "resources": sorted(s.required_resource_keys),
    } for s in defs.sensors}
    schedules = {s.name: {
        "cron": s.cron_schedule, "timezone": s.execution_timezone, "target": s.job_name,
        "default_status": s.default_status.value, "resources": sorted(s.required_resource_keys),
    } for s in defs.schedules}
    resources = {key: {"type": type(r).__name__,
                       "config": config_fields(r.get_resource_definition().config_schema.config_type)}
                 for key, r in sorted(defs.resources.items())}
    return {"assets": dict(sorted(assets.items())),
            "asset_checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
            "jobs": jobs, "sensors": sensors, "schedules": schedules, "resources": resources}


def as_text(description: dict) -> str:
    return json.dumps(description, indent=2, sort_keys=True) + "\n"


def test_definitions_load_and_match_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./topics.yaml
    defs = build_defs(load_settings(env={}))
    Definitions.validate_loadable(defs)
    actual = as_text(describe(defs))
    if os.environ.get(UPDATE):
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            str(SNAPSHOT.name), "build_defs(load_settings(env={}))"))
        raise AssertionError(f"the Definitions changed:\n{diff}\nIf the change is intended, regenerate with\n"
                             f"  {UPDATE}=1 pytest {Path(__file__).relative_to(Path(__file__).parents[2])}\n"
                             "and commit the snapshot with it.")


def test_the_snapshot_follows_the_settings(tmp_path, monkeypatch):
    # The description must see what settings change, or the snapshot could never fail.
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={"TOPICS_REGENERATE_CRON": "0 4 * * *", "TOPICS_PARTITIONS_START": "2026-01-01"})
    s.facets = s.facets[:2]
    d = describe(build_defs(s))
    assert d["schedules"]["regenerate_topic_maps"]["cron"] == "0 4 * * *"
    assert d["assets"]["traces"]["partitions"]["start"] == "2026-01-01"
    assert d["assets"]["topic_map"]["partitions"]["dimensions"]["facet"]["keys"] == ["task", "sentiment"]


def test_daily_partitions_start_where_the_data_starts(tmp_path, monkeypatch):
    """Not hundreds of empty days before the first trace: after a full run the catalog reads 100% filled."""
    from topics_assets.demo import generate_traces, write_jsonl
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.store import open_store

    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={"TOPICS_HOME": str(tmp_path / "home")})
    store = open_store(settings.database_path)
    today = datetime.now(timezone.utc).date()
    write_jsonl(generate_traces(n_traces=30, days=3, seed=2, end=today), tmp_path / "t.jsonl")
    ingest_paths(store=store, settings=settings, paths=[str(tmp_path / "t.jsonl")])
    first = min(store.days_with_traces())
    assert first == (today - timedelta(days=2)).isoformat()
    daily = build_defs(settings).resolve_job_def("process_days").partitions_def
    assert daily.get_partition_keys()[0] == first and len(daily.get_partition_keys()) == 3

    # An older trace is not refused: the next definitions start at its day.
    old = generate_traces(n_traces=1, days=1, seed=3, end=date(2026, 1, 5))
    write_jsonl(old, tmp_path / "old.jsonl")
    assert ingest_paths(store=store, settings=settings, paths=[str(tmp_path / "old.jsonl")]).quarantined == 0
    assert describe(build_defs(settings))["assets"]["traces"]["partitions"]["start"] == "2026-01-05"

    # TOPICS_PARTITIONS_START still decides when given, and refuses older traces.
    pinned = load_settings(env={"TOPICS_HOME": str(tmp_path / "home"), "TOPICS_PARTITIONS_START": "2026-02-01"})
    assert describe(build_defs(pinned))["assets"]["traces"]["partitions"]["start"] == "2026-02-01"
    assert ingest_paths(store=store, settings=pinned, paths=[str(tmp_path / "old.jsonl")]).quarantined == 1
