"""Live ingest end to end: SDK -> `topics serve` -> spool -> otlp_spool sensor -> the asset graph -> labels."""

from dagster import build_sensor_context, instance_for_test

from topics_assets.definitions import build_defs
from topics_assets.defs.partitions import PROJECTS
from topics_assets.defs.resources import build_resources
from topics_assets.defs.runner import RunSummary, run_days, run_pending
from topics_assets.demo import generate_traces
from topics_assets.serve.emit import emit_trace
from topics_assets.store import open_store

from .conftest import running_server, tracer_to


def _export(settings, records):
    with running_server(settings) as base:
        provider, tracer = tracer_to(base, "gzip")
        for r in records:
            emit_trace(tracer, r)
        provider.shutdown()


def _tick(defs, instance, settings):
    sensor = next(s for s in defs.sensors if s.name == "otlp_spool")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, resources=build_resources(settings),
                                                     definitions=defs))


def test_exported_traces_are_ingested_by_the_sensor_and_labelled_by_the_pipeline(serve_settings):
    serve_settings.gates.min_traces, serve_settings.gates.min_unique_facets = 100, 10
    defs = build_defs(serve_settings)
    with instance_for_test() as instance:
        assert "no spool" in _tick(defs, instance, serve_settings).skip_message

        _export(serve_settings, generate_traces(n_traces=120, days=3, seed=21, project="shop"))
        tick = _tick(defs, instance, serve_settings)
        assert "of 120 trace(s) from" in tick.skip_message and "120 new" in tick.skip_message
        assert tick.dynamic_partitions_requests[0].partition_keys == ["shop"]
        assert "nothing to ingest" in _tick(defs, instance, serve_settings).skip_message

        instance.add_dynamic_partitions(PROJECTS.name, ["shop"])
        # Day partitions start at the store's first day, read when the definitions load: the traces
        # just ingested start before the empty store's "today", so load them again (as dagster dev
        # reloads a code location).
        defs = build_defs(serve_settings)
        summary = run_pending(defs, instance)
        assert sorted(summary.maps_generated) == ["shop/issues", "shop/sentiment", "shop/task"]
        store = open_store(serve_settings.database_path)
        labels = store.query_df("SELECT facet, count(*) AS n FROM trace_topics GROUP BY facet")
        assert dict(zip(labels.facet, labels.n)) == {"task": 120, "sentiment": 120, "issues": 120}

        # Traces arriving later are labelled with the current maps by the new_traces sensor's run.
        _export(serve_settings, generate_traces(n_traces=10, days=1, seed=22, project="shop"))
        assert "10 new" in _tick(defs, instance, serve_settings).skip_message
        new_traces = next(s for s in defs.sensors if s.name == "new_traces")
        requests = new_traces.evaluate_tick(build_sensor_context(
            instance=instance, resources=build_resources(serve_settings), definitions=defs)).run_requests
        assert requests
        days = store.pending_days(preprocess_hash=serve_settings.preprocess_hash())
        run_days(defs, instance, days, RunSummary())
        labelled = store.query_df("SELECT count(DISTINCT trace_id) AS n FROM trace_topics WHERE facet = 'task'")
        assert labelled.n[0] == 130
