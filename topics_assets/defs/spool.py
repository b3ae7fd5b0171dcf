"""The otlp_spool sensor: what `topics serve` accepted, into the store, in bounded batches.

It ingests in the tick itself (a batch of at most serve.ingest_batch_bytes, well inside the sensor
timeout) instead of launching a run: ingest is a single short write, and the new_traces sensor then
requests the usual process_days runs for the days it touched.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..config import Settings
from ..serve.stage import ingest_spool
from .automation import SENSOR_LOCK_WAIT_S
from .partitions import PROJECTS
from .resources import TopicsSettingsResource, TopicsStoreResource


def build_spool_sensor(settings: Settings):
    @sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=settings.serve.ingest_interval_s,
            description="Ingests the spans `topics serve` spooled, a trace once it has had no new span for "
                        f"{settings.serve.idle_window_s:g} s (serve.idle_window_s), merging spans by trace id as "
                        "file ingest does; consumed spool segments are removed only after the store has them.")
    def otlp_spool(context: SensorEvaluationContext, store: TopicsStoreResource, settings: TopicsSettingsResource):
        settings = settings.get_settings()
        result = ingest_spool(store=store.get_store(SENSOR_LOCK_WAIT_S), settings=settings)
        context.log.info(result.summary())
        projects = result.ingest.projects if result.ingest else []
        known = set(context.instance.get_dynamic_partitions(PROJECTS.name)) if projects else set()
        new = [p for p in projects if p not in known]
        return SensorResult(skip_reason=SkipReason(result.summary()),
                            dynamic_partitions_requests=[PROJECTS.build_add_request(new)] if new else [])

    return otlp_spool
