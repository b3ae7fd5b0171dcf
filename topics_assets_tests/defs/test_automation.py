"""Sensors and schedules on an ephemeral Dagster instance, over a real DuckDB file."""

from datetime import date, datetime, timedelta, timezone

import pytest
from dagster import (
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from topics_assets.claims import Claim
from topics_assets.definitions import build_defs
from topics_assets.defs.jobs import GENERATE_TOPIC_MAPS, SEEN_GENERATION_TAG
from topics_assets.defs.partitions import PROJECTS, day_ranges, map_key
from topics_assets.defs.resources import build_resources
from topics_assets.defs.runner import RANGE_END, RANGE_START, RunSummary, run_days, run_pending, run_topic_map
from topics_assets.ingest.stage import ingest_paths
from topics_assets.store import DuckDBStore
from topics_assets.demo import generate_traces, write_jsonl

N_TRACES = 120


def _ingest(settings, n=N_TRACES, seed=21, days=3):
    path = f"{settings.home}/traces-{seed}.jsonl"
    write_jsonl(generate_traces(n_traces=n, days=days, seed=seed, project="shop"), path)
    return ingest_paths(store=DuckDBStore(settings.database_path), settings=settings, paths=[path])


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
    run_days(defs, instance, sorted(DuckDBStore(settings.database_path).days_with_traces()), RunSummary())
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
    run_days(defs, instance, sorted(DuckDBStore(settings.database_path).days_with_traces()), RunSummary())
    # A map another process is generating (`topics run` beside `dagster dev`) is not requested again.
    with Claim(DuckDBStore(settings.database_path), "topic_map", [("shop", "task")]):
        held = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    assert sorted(str(r.partition_key) for r in held.run_requests) == sorted(
        str(map_key("shop", f)) for f in ("sentiment", "issues"))
    result = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    keys = sorted(str(r.partition_key) for r in result.run_requests)
    assert keys == sorted(str(map_key("shop", f)) for f in ("task", "sentiment", "issues"))
    assert all(r.tags[SEEN_GENERATION_TAG] == "none" for r in result.run_requests)  # it saw no map
    # Once a map exists, the sensor leaves regeneration to the schedule.
    instance.add_dynamic_partitions(PROJECTS.name, ["shop"])
    for facet in ("task", "sentiment", "issues"):
        run_topic_map(defs, instance, "shop", facet, RunSummary())
    again = _evaluate(_sensor(defs, "topic_map_gates"), instance, settings)
    assert not again.run_requests and "every (project, facet) has a topic map" in again.skip_reason.skip_message
    # A run the sensor requested before another process (`topics run` beside `dagster dev`) made the map
    # starts after it landed: it generates nothing (no second fit, no second set of names) and says why.
    late = next(r for r in result.run_requests if r.partition_key == map_key("shop", "task"))
    run = defs.resolve_job_def(GENERATE_TOPIC_MAPS).execute_in_process(
        instance=instance, partition_key=late.partition_key, tags=late.tags)
    meta = {k: v.value for k, v in run.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert meta["state"] == "busy" and "generation 1 landed since this run was asked for" in meta["skipped_reason"]
    assert DuckDBStore(settings.database_path).latest_generation("shop", "task") == 1


def test_new_traces_sensor_requests_pending_days_then_skips(settings, instance):
    summary = _ingest(settings)
    defs = build_defs(settings)
    (request,) = _evaluate(_sensor(defs, "new_traces"), instance, settings)
    assert isinstance(request, RunRequest)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (summary.days[0], summary.days[-1])
    run_days(defs, instance, summary.days, RunSummary())
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)
    # A later version of a trace (more spans) makes its day pending again.
    _ingest(settings, n=3, seed=99, days=1)
    assert [type(r) for r in _evaluate(_sensor(defs, "new_traces"), instance, settings)] == [RunRequest]


def test_pending_days_far_apart_go_to_separate_runs(settings, instance):
    """A late trace from weeks ago must not make one run re-read every day in between."""
    recent = _ingest(settings, n=30, seed=21, days=2).days
    old_day = (date.fromisoformat(recent[0]) - timedelta(days=40)).isoformat()
    path = f"{settings.home}/late.jsonl"
    late = generate_traces(n_traces=3, days=1, seed=8, project="shop", end=date.fromisoformat(old_day))
    write_jsonl(late, path)
    ingest_paths(store=DuckDBStore(settings.database_path), settings=settings, paths=[path])
    defs = build_defs(settings)

    requests = _evaluate(_sensor(defs, "new_traces"), instance, settings)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [(old_day, old_day), (recent[0], recent[-1])]
    run_days(defs, instance, [old_day] + recent, RunSummary())
    ranges = sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in instance.get_runs())
    assert ranges == [(old_day, old_day), (recent[0], recent[-1])]
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)


def test_day_ranges_split_at_the_widest_gaps_and_stay_bounded():
    assert day_ranges([]) == []
    assert day_ranges(["2025-03-02", "2025-03-01", "2025-03-04"]) == [("2025-03-01", "2025-03-04")]  # gap of 1
    assert day_ranges(["2025-03-01", "2025-03-10", "2025-03-11"]) == [("2025-03-01", "2025-03-01"),
                                                                        ("2025-03-10", "2025-03-11")]
    scattered = [date(2025, 1, 1) + timedelta(days=10 * i + i * i) for i in range(30)]
    ranges = day_ranges([d.isoformat() for d in scattered], max_runs=4)
    assert len(ranges) == 4 and ranges[0][0] == "2025-01-01" and ranges[-1][1] == scattered[-1].isoformat()
    # the widest gaps (at the end, where they grow) are the ones split
    assert [r[0] for r in ranges[1:]] == [d.isoformat() for d in scattered[-3:]]


def test_changed_preprocess_settings_make_days_pending_and_reprocess(settings, instance):
    summary = _ingest(settings, n=20, seed=61, days=1)
    defs = build_defs(settings)
    run_days(defs, instance, summary.days, RunSummary())
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)
    settings.preprocess.extra_patterns = {"ORDER": r"\bA\d{4,}\b"}
    defs = build_defs(settings)
    assert [type(r) for r in _evaluate(_sensor(defs, "new_traces"), instance, settings)] == [RunRequest]
    result = RunSummary()
    run_days(defs, instance, summary.days, result)
    assert result.metadata["traces"]["preprocessed"] == 20 and result.metadata["traces"]["unchanged"] == 0
    assert isinstance(_evaluate(_sensor(defs, "new_traces"), instance, settings), SkipReason)


def test_schedule_regenerates_ready_maps_and_backfill_follows(settings, instance):
    _ingest(settings)
    settings.gates.min_traces, settings.gates.min_unique_facets = 100, 10
    defs = build_defs(settings)
    store = DuckDBStore(settings.database_path)
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
    assert all(r.tags[SEEN_GENERATION_TAG] == "none" for r in requests)  # what it saw: no map yet

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


def test_backfill_sensor_skips_days_already_labelled_with_the_new_map(settings, instance):
    """As after `topics demo`: maps generated and every day labelled with them, then a first `dagster dev`
    (its sensor cursor empty) must not re-run the backfill."""
    _ingest(settings)
    settings.gates.min_traces, settings.gates.min_unique_facets = 100, 10
    defs = build_defs(settings)
    summary = run_pending(defs, instance)
    assert summary.maps_generated
    backfill = _sensor(defs, "backfill_after_new_map")
    ctx = build_sensor_context(instance=instance, resources=build_resources(settings), definitions=defs)
    result = backfill.evaluate_tick(ctx)
    assert not result.run_requests and "nothing to re-label" in result.skip_message

    # A newer generation that no run has used yet is backfilled.
    run_topic_map(defs, instance, "shop", "task", RunSummary())
    ctx = build_sensor_context(instance=instance, resources=build_resources(settings), definitions=defs)
    assert len(backfill.evaluate_tick(ctx).run_requests) == 1


def test_run_pending_defers_days_older_than_the_loaded_definitions(settings, instance):
    """Definitions loaded before older traces were ingested have no partition for their days: the run
    does the days it can and says when the rest will run, instead of failing on an unknown partition."""
    _ingest(settings, n=60, days=2)
    defs = build_defs(settings)  # partitions start at the store's first day
    old_end = date.today() - timedelta(days=20)
    path = f"{settings.home}/old.jsonl"
    write_jsonl(generate_traces(n_traces=30, days=2, seed=5, end=old_end, project="shop"), path)
    ingest_paths(store=DuckDBStore(settings.database_path), settings=settings, paths=[path])
    said = []
    summary = run_pending(defs, instance, say=said.append)
    assert summary.days and min(summary.days) >= (date.today() - timedelta(days=1)).isoformat()
    assert any("come before the definitions' first partition" in s for s in said), said
    # Definitions loaded again include the older days.
    summary = run_pending(build_defs(settings), instance, say=said.append)
    assert (old_end - timedelta(days=1)).isoformat() in summary.days
