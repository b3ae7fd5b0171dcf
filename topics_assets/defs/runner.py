"""In-process runs of the asset graph on a Dagster instance, for the CLI and tests.

Runs go through the same jobs the UI launches, on the same instance and DuckDB file, so
their materializations, metadata and lineage show up in `dagster dev`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import DagsterInstance, Definitions

from ..results import add_progress, stalled
from ..topics.stage import UNSEEN, gate_status
from ..config import Settings
from ..store import Store
from .jobs import CLASSIFY_DAYS, GENERATE_TOPIC_MAPS, PROCESS_DAYS, seen_generation_tags
from .partitions import day_ranges, map_key, register_projects, runnable_days
from .resources import SETTINGS, STORE

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


class RunFailed(RuntimeError):
    pass


@dataclass
class RunSummary:
    days: list[str] = field(default_factory=list)
    maps_generated: list[str] = field(default_factory=list)
    maps_skipped: dict[str, str] = field(default_factory=dict)
    maps_busy: dict[str, str] = field(default_factory=dict)  # "project/facet" -> why another run has it
    busy: list[str] = field(default_factory=list)  # "facets 2026-11-02: 12 traces skipped: another run ..."
    metadata: dict[str, dict] = field(default_factory=dict)  # asset -> last metadata
    progress: dict[str, dict] = field(default_factory=dict)  # asset -> its `progress` summed over the run
    # "project/facet" -> naming `progress` of a generated map whose LLM names partly or wholly failed
    naming_failed: dict[str, dict] = field(default_factory=dict)

    def stalled(self) -> dict[str, dict]:
        """Stages that finished nothing in this run because every item they tried failed (work the
        gates merely defer is not in here)."""
        return {asset: p for asset, p in self.progress.items() if stalled(p)}


# Step-level events stay in the run's log (and the UI). The console shows none: a failed step comes
# back as RunFailed with its error in one line, and what failed per item is in the run's `progress`
# (the CLI prints both), so no Dagster traceback lands on the user's terminal.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _execute(defs: Definitions, instance: DagsterInstance, job_name: str, summary: RunSummary, **kwargs) -> None:
    result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False,
                                                                run_config=QUIET, **kwargs)
    if not result.success:
        errors = [_error_text(e.event_specific_data.error) for e in result.all_events
                  if e.is_step_failure and e.event_specific_data and e.event_specific_data.error]
        raise RunFailed(f"{job_name} run {result.run_id} failed: {'; '.join(errors) or 'see the run in Dagster'}")
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        asset = m.asset_key.to_user_string()
        summary.metadata[asset] = {k: v.value for k, v in m.metadata.items()}
        if summary.metadata[asset].get("busy_note"):
            summary.busy.append(f"{asset} {m.partition}: {summary.metadata[asset]['busy_note']}")
        if isinstance(summary.metadata[asset].get("progress"), dict):
            summary.progress[asset] = add_progress(summary.progress.get(asset), summary.metadata[asset]["progress"])


def _error_text(error) -> str:
    """A step's error and, where Dagster wrapped it, the error that caused it (what the user needs)."""
    text = str(error.message).strip()
    root = error
    while (root.cause or root.context) is not None:
        root = root.cause or root.context
    if root is not error:
        text = f"{text.splitlines()[0]} {str(root.message).strip()}"
    return text


def run_days(defs: Definitions, instance: DagsterInstance, days: list[str], summary: RunSummary,
             job_name: str = PROCESS_DAYS) -> None:
    """One run per cluster of nearby days (partitions.day_ranges), each over its contiguous range."""
    for first, last in day_ranges(days):
        _execute(defs, instance, job_name, summary, tags={RANGE_START: first, RANGE_END: last})
    summary.days = sorted(set(summary.days) | set(days))


def run_topic_map(defs: Definitions, instance: DagsterInstance, project: str, facet: str, summary: RunSummary,
                  seen: object = UNSEEN) -> None:
    """A generation for (project, facet) unless another run is at it, or (given `seen`, the newest
    generation the caller saw, None for none) one newer than `seen` lands first."""
    register_projects(instance, [project])
    _execute(defs, instance, GENERATE_TOPIC_MAPS, summary, partition_key=map_key(project, facet),
             tags={} if seen is UNSEEN else seen_generation_tags(seen))
    meta = summary.metadata.get("topic_map", {})
    if meta.get("state") == "generated":
        summary.maps_generated.append(f"{project}/{facet}")
        if meta.get("naming_failed"):
            summary.naming_failed[f"{project}/{facet}"] = {
                "done": int(meta.get("named_llm") or 0) + int(meta.get("naming_journal_hits") or 0),
                "failed": int(meta["naming_failed"]), "failures_by_reason": meta.get("naming_failures_by_reason") or {}}
    elif meta.get("state") == "busy":
        summary.maps_busy[f"{project}/{facet}"] = meta.get("skipped_reason", "another run has it")
    else:
        summary.maps_skipped[f"{project}/{facet}"] = meta.get("skipped_reason", "unknown")


def _partitions_start(defs: Definitions) -> str | None:
    """The first day the definitions have a partition for (they were built when the store began there)."""
    start = getattr(defs.resolve_job_def(PROCESS_DAYS).partitions_def, "start", None)
    return start.strftime("%Y-%m-%d") if start is not None else None


def run_pending(defs: Definitions, instance: DagsterInstance, store: Store | None = None,
                settings: Settings | None = None, project: str | None = None, regenerate: bool = False,
                say: Callable[[str], None] = lambda _msg: None) -> RunSummary:
    """Everything pending: new or changed days, then maps whose gates are met, then labels.

    The store and settings default to the ones the runs themselves get (the defs' resources)."""
    store = defs.resources[STORE].get_store() if store is None else store
    settings = defs.resources[SETTINGS].get_settings() if settings is None else settings
    summary = RunSummary()
    projects = [project] if project else store.projects()
    register_projects(instance, projects)
    all_days = sorted({d for p in projects for d in store.days_with_traces(p)})
    if not all_days:
        say("nothing ingested yet: run `topics ingest PATH...` first")
        return summary
    all_days, outside = runnable_days(settings, all_days)
    if outside:
        say(f"left alone: {len(outside)} day(s) without a day partition ({', '.join(outside[:5])}"
            f"{', ...' if len(outside) > 5 else ''}): tomorrow's traces wait for their day; older or later "
            f"ones are outside ingest.earliest_start .. today")
    days = runnable_days(settings, sorted({d for p in projects for d in store.pending_days(p, settings.preprocess_hash())}))[0]
    start = _partitions_start(defs)
    early = [d for d in days if start and d < start]
    if early:
        say(f"{len(early)} pending day(s) {early[0]} .. {early[-1]} come before the definitions' first partition "
            f"{start} (older traces were ingested after they loaded): they run when the definitions load again "
            "(the next `topics run`, or Reload in the Dagster UI)")
        days = [d for d in days if d not in early]
        all_days = [d for d in all_days if not start or d >= start]
    if days:
        say(f"processing {len(days)} pending day(s) {days[0]} .. {days[-1]}: preprocess, facet, embed, classify")
        run_days(defs, instance, days, summary)
    else:
        say("no new or changed traces")
    for note in summary.busy:
        say(f"{note}; they stay pending for a later run")
    fresh_maps = False
    for p in projects:
        for facet in settings.text_facet_names:
            seen = store.latest_generation(p, facet)
            has_map = seen is not None
            if has_map and not regenerate:
                continue
            gate = gate_status(store=store, settings=settings, project=p, facet=facet)
            if not gate.ready:
                summary.maps_skipped[f"{p}/{facet}"] = gate.reason
                say(f"topic map {p}/{facet}: waiting ({gate.reason})")
                continue
            say(f"topic map {p}/{facet}: generating from {gate.unique_facets} unique facets")
            run_topic_map(defs, instance, p, facet, summary, seen=seen)
            if f"{p}/{facet}" in summary.maps_busy:
                say(f"topic map {p}/{facet}: {summary.maps_busy[f'{p}/{facet}']}")
            else:
                fresh_maps = True
    if fresh_maps:
        say("classifying every day with the new maps")
        run_days(defs, instance, all_days, summary, job_name=CLASSIFY_DAYS)
    return summary
