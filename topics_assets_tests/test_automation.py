"""Sensors and schedules on an ephemeral Dagster instance, over a real DuckDB file."""

from datetime import date, datetime, timezone

import pytest
from dagster import (
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from topics_assets.definitions import build_defs
from topics_assets.defs.partitions import PROJECTS, map_key
from topics_assets.defs.resources import build_resources
from topics_assets.defs.runner import RANGE_END, RANGE_START, RunSummary, run_days, run_topic_map
from topics_assets.pipeline import ingest_paths
from topics_assets.store import Store
from topics_assets.synthetic import generate_traces, write_jsonl

N_TRACES = 120


def _ingest(settings, n=N_TRACES, seed=21, days=3):
    path = f"{settings.home}/traces-{seed}.jsonl"
    write_jsonl(generate_traces(n_traces=n, days=days, seed=seed, project="shop"), path)
    return ingest_paths(Store(settings.database_path), settings, [path])


def _sensor(defs, name):
    return next(s for s in defs.sensors if s.name == name)


def _evaluate(sensor_def, instance, settings, **kwargs):
    ctx = build_sensor_context(instance=instance, resources=build_resources(settings), **kwargs)
    return sensor_def(ctx)


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def test_gate_sensor_skips_below_the_gates_with_counts(settings, instance):
    _ingest(settings)
    defs = build_defs(settings)
    run_days(defs, instance, sorted(Store(settings.database_path).days_with_traces()), RunSummary())
    result = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    assert isinstance(result, SensorResult) and not result.run_requests
    reason = result.skip_reason.skip_message
    assert f"shop/task: {N_TRACES} traces in project 'shop', need 400" in reason
    # The sensor also registers the project as a topic_map partition.
    assert result.dynamic_partitions_requests[0].partition_keys == ["shop"]


def test_gate_sensor_requests_maps_above_the_gates(settings, instance):
    _ingest(settings)
    settings.gates.min_traces, settings.gates.min_unique_facets = 100, 10
    defs = build_defs(settings)
    run_days(defs, instance, sorted(Store(settings.database_path).days_with_traces()), RunSummary())
    result = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    keys = sorted(str(r.partition_key) for r in result.run_requests)
    assert keys == sorted(str(map_key("shop", f)) for f in ("task", "sentiment", "issues"))
    # Once a map exists, the sensor leaves regeneration to the schedule.
    instance.add_dynamic_partitions(PROJECTS.name, ["shop"])
    for facet in ("task", "sentiment", "issues"):
        run_topic_map(defs, instance, "shop", facet, RunSummary())
    again = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    assert not again.run_requests and "every (project, facet) has a topic map" in again.skip_reason.skip_message


def test_new_traces_sensor_requests_pending_days_then_skips(settings, instance):
    summary = _ingest(settings)
    defs = build_defs(settings)
    request = _evaluate(_sensor(defs, "new_traces"), instance, settings)
    assert isinstance(request, RunRequest)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (summary["days"][0], summary["days"][-1])
    run_days(defs, instance, summary["days"], RunSummary())
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)
    # A later version of a trace (more spans) makes its day pending again.
    _ingest(settings, n=3, seed=99, days=1)
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), RunRequest)


def test_changed_preprocess_settings_make_days_pending_and_reprocess(settings, instance):
    summary = _ingest(settings, n=20, seed=61, days=1)
    defs = build_defs(settings)
    run_days(defs, instance, summary["days"], RunSummary())
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)
    settings.preprocess.extra_patterns = {"ORDER": r"\bA\d{4,}\b"}
    defs = build_defs(settings)
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), RunRequest)
    result = RunSummary()
    run_days(defs, instance, summary["days"], result)
    assert result.metadata["traces"]["preprocessed"] == 20 and result.metadata["traces"]["unchanged"] == 0
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)


def test_schedule_regenerates_ready_maps_and_backfill_follows(settings, instance):
    _ingest(settings)
    settings.gates.min_traces, settings.gates.min_unique_facets = 100, 10
    defs = build_defs(settings)
    store = Store(settings.database_path)
    days = sorted(store.days_with_traces())
    run_days(defs, instance, days, RunSummary())
    schedule = defs.schedules[0]
    ctx = build_schedule_context(instance=instance, resources=build_resources(settings),
                                 repository_def=defs.get_repository_def(),
                                 scheduled_execution_time=datetime(2026, 11, 25, 3, tzinfo=timezone.utc))
    requests = list(schedule.evaluate_tick(ctx).run_requests)
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        str(map_key("shop", f)) for f in ("task", "sentiment", "issues"))
    assert all(r.run_key.endswith("2026-11-25T03:00") for r in requests)

    # A new generation lands -> the backfill sensor re-labels the recent window with it.
    instance.add_dynamic_partitions(PROJECTS.name, ["shop"])
    run_topic_map(defs, instance, "shop", "task", RunSummary())
    backfill = _sensor(defs, "backfill_after_new_map")
    ctx = build_sensor_context(instance=instance, resources=build_resources(settings), definitions=defs)
    result = backfill.evaluate_tick(ctx)
    assert len(result.run_requests) == 1, result.skip_message
    recent = [d for d in days if (date.today() - date.fromisoformat(d)).days < settings.automation.backfill_days]
    tags = result.run_requests[0].tags
    assert (tags[RANGE_START], tags[RANGE_END]) == (recent[0], recent[-1])
