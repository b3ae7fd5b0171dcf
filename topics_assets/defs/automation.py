"""Sensors and schedules: accumulate -> generate maps -> backfill recent days -> idle, with no operator.

All run by default: each only launches work the gates allow, faceting is cached, and
classification makes no LLM call.
"""

from datetime import date, datetime, timedelta, timezone

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_sensor,
    schedule,
    sensor,
)

from ..topics.stage import gate_status
from ..config import Settings
from .jobs import CLASSIFY_DAYS, GENERATE_TOPIC_MAPS, PROCESS_DAYS, seen_generation_tags
from .partitions import PROJECTS, day_ranges, first_day, map_key, runnable_days
from .resources import SETTINGS, STORE, TopicsSettingsResource, TopicsStoreResource
from .runner import RANGE_END, RANGE_START, register_projects

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]
# Sensors read the store between runs; if a run holds the write lock longer, skip this tick.
SENSOR_LOCK_WAIT_S = 20.0


def in_flight(instance, job_name: str, partition_key: str | None = None) -> bool:
    tags = {"dagster/partition": partition_key} if partition_key else {}
    return bool(instance.get_run_ids(RunsFilter(job_name=job_name, statuses=IN_FLIGHT, tags=tags), limit=1))


def day_range_tags(days: list[str]) -> dict[str, str]:
    return {RANGE_START: min(days), RANGE_END: max(days)}


def recent_days(days_with_data: list[str], window: int, today: date | None = None) -> list[str]:
    today = today or datetime.now(timezone.utc).date()
    first = (today - timedelta(days=window - 1)).isoformat()
    return [d for d in days_with_data if d >= first]


def labelled_since(instance, days: list[str], timestamp: float) -> set[str]:
    """Days whose classifications were materialized after `timestamp`: a run that came after a new map
    (the CLI labels every day once its maps land) already used it, so a first `dagster dev`, whose
    sensor cursor starts empty, does not re-label them."""
    done = set()
    for day in days:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("classifications"), asset_partitions=[day],
                               after_timestamp=timestamp), limit=1).records
        if records:
            done.add(day)
    return done


def build_automation(settings: Settings) -> tuple[list, list]:
    interval = settings.automation.sensor_interval_s
    first = first_day(settings)

    @sensor(job_name=GENERATE_TOPIC_MAPS, default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=interval,
            description="Requests a project's first topic map per facet once it holds enough traces and unique "
                        "facet summaries (gates); otherwise skips and says why, with the counts.")
    def topic_map_gates(context: SensorEvaluationContext, store: TopicsStoreResource,
                        settings: TopicsSettingsResource):
        store, settings = store.get_store(SENSOR_LOCK_WAIT_S), settings.get_settings()
        projects = store.projects()
        known = set(context.instance.get_dynamic_partitions(PROJECTS.name))
        new_projects = [p for p in projects if p not in known]
        partition_requests = [PROJECTS.build_add_request(new_projects)] if new_projects else []
        requests, waiting = [], []
        for project in projects:
            for facet in settings.text_facet_names:
                if store.latest_generation(project, facet) is not None:
                    continue  # regenerating is the schedule's job
                gate = gate_status(store=store, settings=settings, project=project, facet=facet)
                key = map_key(project, facet)
                if not gate.ready:
                    waiting.append(f"{project}/{facet}: {gate.reason}")
                elif not in_flight(context.instance, GENERATE_TOPIC_MAPS, str(key)):
                    requests.append(RunRequest(run_key=f"first-map:{key}:{gate.unique_facets}", partition_key=key,
                                               tags=seen_generation_tags(None)))
        if requests:
            return SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests)
        reason = "; ".join(waiting) if waiting else (
            "every (project, facet) has a topic map" if projects else "no traces ingested yet")
        return SensorResult(skip_reason=SkipReason(f"below the gates: {reason}" if waiting else reason),
                            dynamic_partitions_requests=partition_requests)

    @sensor(job_name=PROCESS_DAYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=interval,
            description="Processes new or changed traces as they arrive: preprocess, facet, embed, and classify "
                        "with the current maps (no LLM call at classification time).")
    def new_traces(context: SensorEvaluationContext, store: TopicsStoreResource, settings: TopicsSettingsResource):
        store, settings = store.get_store(SENSOR_LOCK_WAIT_S), settings.get_settings()
        days, outside = runnable_days(settings, store.pending_days(preprocess_hash=settings.preprocess_hash()))
        if not days:
            return SkipReason("no new or changed traces, nothing unlabelled" + (
                f" (left alone: {len(outside)} day(s) without a day partition, from {outside[0]})" if outside else ""))
        early = [d for d in days if d < first]
        days = [d for d in days if d >= first]
        if not days:
            return SkipReason(f"{len(early)} pending day(s) from {early[0]}, before the first day partition {first}: "
                              "reload the code location, and the partitions start at the new first day")
        if in_flight(context.instance, PROCESS_DAYS):
            return SkipReason(f"{len(days)} day(s) pending; a {PROCESS_DAYS} run is already in flight")
        w, n = store.ingest_watermark()
        return [RunRequest(run_key=f"pending:{first}..{last}:{w}:{n}",
                           tags=day_range_tags([first, last]))
                for first, last in day_ranges(days)]

    @schedule(cron_schedule=settings.automation.regenerate_cron, job_name=GENERATE_TOPIC_MAPS,
              default_status=DefaultScheduleStatus.RUNNING, execution_timezone="UTC",
              description="Regenerates every topic map whose gates are met; new generations reuse the ids of "
                          "the clusters they continue.")
    def regenerate_topic_maps(context, store: TopicsStoreResource, settings: TopicsSettingsResource):
        store, settings = store.get_store(SENSOR_LOCK_WAIT_S), settings.get_settings()
        when = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        projects = store.projects()
        register_projects(context.instance, projects)  # a project ingested since the last sensor tick
        requests, waiting = [], []
        for project in projects:
            for facet in settings.text_facet_names:
                gate = gate_status(store=store, settings=settings, project=project, facet=facet)
                key = map_key(project, facet)
                if gate.ready:
                    requests.append(RunRequest(run_key=f"regenerate:{key}:{when}", partition_key=key,
                                               tags=seen_generation_tags(store.latest_generation(project, facet))))
                else:
                    waiting.append(f"{project}/{facet}: {gate.reason}")
        return requests or SkipReason("no map passes the gates: " + ("; ".join(waiting) or "no traces"))

    @asset_sensor(asset_key=AssetKey("topic_map"), job_name=CLASSIFY_DAYS, required_resource_keys={STORE, SETTINGS},
                  default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=interval,
                  description=f"After a new generation lands, re-labels the recent window "
                              f"({settings.automation.backfill_days} days) with it.")
    def backfill_after_new_map(context: SensorEvaluationContext, asset_event: EventLogEntry):
        materialization = asset_event.asset_materialization
        state = materialization.metadata.get("state")
        if state is None or state.value != "generated":
            return SkipReason("the latest topic_map materialization made no new generation")
        store = context.resources.store.get_store(SENSOR_LOCK_WAIT_S)
        window = context.resources.settings.get_settings().automation.backfill_days
        days = recent_days(runnable_days(context.resources.settings.get_settings(), store.days_with_traces())[0], window)
        if not days:
            return SkipReason(f"no traces in the last {window} days to re-label")
        done = labelled_since(context.instance, days, asset_event.timestamp)
        days = [d for d in days if d not in done]
        if not days:
            return SkipReason(f"the last {window} days were labelled after this generation landed "
                              f"(e.g. by `topics run` or `topics demo`); nothing to re-label")
        return RunRequest(run_key=f"backfill:{asset_event.run_id}:{asset_event.timestamp}", tags=day_range_tags(days))

    return [topic_map_gates, new_traces, backfill_after_new_map], [regenerate_topic_maps]
