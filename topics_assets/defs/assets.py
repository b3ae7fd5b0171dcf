"""The asset graph: traces -> facets -> facet_embeddings -> topic_map -> classifications -> topic_stats.

Each asset calls one stage and reports what it did as metadata. Daily assets run a whole
backfill range in one run, but call their stage day by day, so each day partition's
materialization carries that day's own figures, not the run's totals. On DuckDB every asset that writes
the file is in one pool (limit 1), so the daemon never runs two writers at once; on PostgreSQL
they are in no pool, so several day partitions materialize at once.
"""


import time
from collections.abc import Callable

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..config import Settings
from ..embed import make_embedder
from ..embed.stage import embed_days
from ..facets import make_engine
from ..facets.stage import facet_days
from ..insight.stage import TopicStatsResult, topic_stats_days
from ..preprocess.stage import preprocess_days
from ..store import is_postgres_url
from ..topics.stage import classify_days, generate_topic_map
from .jobs import seen_generation
from .partitions import daily_partitions, map_partitions
from .resources import TopicsSettingsResource, TopicsStoreResource

DUCKDB_POOL = "topics_duckdb"
GROUP = "topics"


def writer_placement(settings: Settings) -> dict:
    """Pool and kind of the assets that write the store: one writer at a time only where DuckDB needs it."""
    if is_postgres_url(settings.database_path):
        return {"pool": None, "kinds": {"postgres"}}
    return {"pool": DUCKDB_POOL, "kinds": {"duckdb"}}


def _metadata(stats: dict, started: float) -> dict:
    meta = {}
    for k, v in stats.items():
        if isinstance(v, (dict, list)):
            meta[k] = MetadataValue.json(v)
        elif v is not None:
            meta[k] = v
    meta["duration_s"] = round(time.monotonic() - started, 3)
    return meta


def per_day(context: AssetExecutionContext, stage: Callable[[str], object]) -> MaterializeResult:
    """Run `stage` for each day of the run's range; each day partition gets its own result as metadata.

    A single-run backfill materializes every day at once, and metadata returned once would be copied
    to all of them: then each day would show the whole range's totals."""
    for day in context.partition_keys:
        t0 = time.monotonic()
        context.add_asset_metadata(_metadata(stage(day).to_metadata(), t0), partition_key=day)
    return MaterializeResult()


def topics_markdown(topics: list[dict], limit: int = 50) -> str:
    lines = ["| topic_id | name | size | keywords | example |", "|---|---|---|---|---|"]
    for t in sorted(topics, key=lambda t: -t["size"])[:limit]:
        example = (t["examples"][0] if t["examples"] else "").replace("|", "\\|")[:120]
        keywords = ", ".join(t["keywords"][:6])
        lines.append(f"| {t['topic_id']} | {t['name'].replace('|', '/')} | {t['size']} | {keywords} | {example} |")
    return "\n".join(lines)


def explorer_link(base: str, project: str, facet: str, generation: int) -> str:
    """The explorer's page of one map generation (its routes live after the '#')."""
    from urllib.parse import urlencode

    return f"{base.rstrip('/')}/#/?{urlencode({'facet': facet, 'generation': generation, 'project': project})}"


def map_markdown(store, project: str, facet: str, generation: int) -> str:
    """The generation's 2-D map as a small PNG in a data: URI, which the Dagster UI's markdown renders
    (its sanitizer allows data: image sources), coloured by topic as the explorer colours it."""
    from ..explore.data import points
    from ..explore.picture import data_uri, map_png

    pts = points(store, project, facet, generation, text=False)
    return (f"![2-D map of {project}/{facet} generation {generation}]({data_uri(map_png(pts))})\n\n"
            f"{pts['n']:,} sampled facets coloured by topic (grey: no_match); the topics table names them.")


def trends_check_name(facet: str) -> str:
    return f"{facet}_trends"


def trends_check(facet: str, result: TopicStatsResult | None, day: str) -> AssetCheckResult:
    """WARN when the run's newest day has alerts for this facet; the metadata lists them per project."""
    alerts = result.alerts_of(facet=facet) if result else []
    spiking: dict[str, list[dict]] = {}
    for a in alerts:
        spiking.setdefault(a["project"], []).append(
            {k: a[k] for k in ("topic_id", "topic_name", "kind", "count", "expected", "share", "baseline_share",
                               "failure_rate", "q_value")})
    lines = [f"{p}: {a['kind']} {a['topic_id']} {a['topic_name'] or ''} ({a['count']} traces, expected "
             f"{a['expected']:.1f})" for p, items in spiking.items() for a in items]
    return AssetCheckResult(
        check_name=trends_check_name(facet), passed=not alerts, severity=AssetCheckSeverity.WARN,
        description=f"{len(alerts)} trend alert(s) on {day}" if alerts else f"no trend alerts on {day}",
        metadata={"day": day, "alerts": len(alerts), "spiking_topics": MetadataValue.json(spiking),
                  "summary": MetadataValue.md("\n".join(f"- {line}" for line in lines) or "none")})


def build_assets(settings: Settings) -> list:
    daily = daily_partitions(settings)
    maps = map_partitions(settings)
    common = dict(group_name=GROUP, **writer_placement(settings))

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), **common,
           description="Ingested traces of the day, preprocessed into the linear, redacted, capped text "
                       "that a facet model sees (table `traces`).")
    def traces(context: AssetExecutionContext, store: TopicsStoreResource,
               settings: TopicsSettingsResource) -> MaterializeResult:
        db, cfg = store.get_store(), settings.get_settings()
        return per_day(context, lambda day: preprocess_days(store=db, settings=cfg, days=[day]))

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), deps=[traces], **common,
           description="One summary per (trace, facet), all facets of a trace from one LLM call, or "
                       "extractive offline (table `facets`). Unchanged traces cost nothing.")
    def facets(context: AssetExecutionContext, store: TopicsStoreResource,
               settings: TopicsSettingsResource) -> MaterializeResult:
        db, cfg = store.get_store(), settings.get_settings()
        engine = make_engine(cfg)  # one LLM client (limits, breaker) for the whole range

        def one_day(day: str):
            result = facet_days(store=db, settings=cfg, days=[day], engine=engine)
            if result.busy_note:
                context.log.warning(f"{day}: {result.busy_note}; they stay pending (a later run takes them if "
                                    "that run dies first)")
            if result.failed:
                context.log.warning(f"{day}: {result.failed} traces failed faceting: {result.failures_by_reason}; "
                                    "they are retried on the next run")
            return result

        return per_day(context, one_day)

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), deps=[facets], **common,
           description="One vector per unique (model, facet text) (table `facet_embeddings`).")
    def facet_embeddings(context: AssetExecutionContext, store: TopicsStoreResource,
                         settings: TopicsSettingsResource) -> MaterializeResult:
        db, cfg = store.get_store(), settings.get_settings()
        embedder = make_embedder(cfg.embedding)  # the model loads once for the whole range
        return per_day(context, lambda day: embed_days(store=db, settings=cfg, days=[day], embedder=embedder))

    @asset(partitions_def=maps, deps=[AssetDep(facet_embeddings, partition_mapping=AllPartitionMapping())],
           **common,
           description="A generation of the (project, facet) topic map: UMAP + HDBSCAN on a sample, c-TF-IDF "
                       "keywords, names, centroids; ids matched to the previous generation (table `topic_maps`).")
    def topic_map(context: AssetExecutionContext, store: TopicsStoreResource,
                  settings: TopicsSettingsResource) -> MaterializeResult:
        t0 = time.monotonic()
        key = context.partition_key.keys_by_dimension
        result = generate_topic_map(store=store.get_store(), settings=settings.get_settings(),
                                    project=key["project"], facet=key["facet"],
                                    seen_generation=seen_generation(context.run.tags))
        if not result.generated:
            (context.log.warning if result.busy else context.log.info)(f"no new generation: {result.skipped_reason}")
            return MaterializeResult(metadata=_metadata(
                {"state": "busy" if result.busy else "accumulating", "skipped_reason": result.skipped_reason,
                 "traces": result.gate.traces, "unique_facets": result.gate.unique_facets}, t0))
        stats = result.to_metadata()
        topics = stats.pop("topics")
        meta = _metadata({k: v for k, v in stats.items() if k != "params"}, t0)
        meta["topics"] = MetadataValue.md(topics_markdown(topics))
        meta["state"] = "generated"
        cfg = settings.get_settings()
        meta["explorer"] = MetadataValue.url(explorer_link(cfg.explore.url, key["project"], key["facet"],
                                                           result.generation))
        try:
            meta["map"] = MetadataValue.md(map_markdown(store.get_store(), key["project"], key["facet"],
                                                        result.generation))
        except Exception as e:  # the picture is a view: a generation that landed stays materialized
            context.log.warning(f"no map picture for generation {result.generation}: {e!r}")
        return MaterializeResult(metadata=meta)

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(),
           deps=[facet_embeddings, AssetDep(AssetKey("topic_map"), partition_mapping=AllPartitionMapping())],
           **common,
           description="Each trace's topic per facet from the current map by nearest centroid, `no_match` "
                       "beyond the threshold; no LLM call (table `classifications`, view `trace_topics`).")
    def classifications(context: AssetExecutionContext, store: TopicsStoreResource,
                        settings: TopicsSettingsResource) -> MaterializeResult:
        db, cfg = store.get_store(), settings.get_settings()
        return per_day(context, lambda day: classify_days(store=db, settings=cfg, days=[day]))

    facet_names = settings.facet_names

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), deps=[classifications], **common,
           check_specs=[AssetCheckSpec(trends_check_name(f), asset="topic_stats",
                                       description=f"Warns when a {f} topic (or value) of any project is rising, "
                                                   "new, gone, falling or failing on the run's newest day; the "
                                                   "metadata lists those topics per project.")
                        for f in facet_names],
           description="Per (project, facet, topic, day): traces, share, error and failure rates, mean scores, "
                       "duration p50/p95, tokens and cost (table `topic_stats`, views `topic_daily`, "
                       "`topic_summary`); each day's trends against the trailing days land in `topic_alerts`.")
    def topic_stats(context: AssetExecutionContext, store: TopicsStoreResource,
                    settings: TopicsSettingsResource) -> MaterializeResult:
        db, cfg = store.get_store(), settings.get_settings()
        results: list[TopicStatsResult] = []

        def one_day(day: str) -> TopicStatsResult:
            results.append(topic_stats_days(store=db, settings=cfg, days=[day]))
            return results[-1]

        per_day(context, one_day)
        last = max(context.partition_keys)
        newest = next((r for r in results if last in r.days), None)
        selected = {k.name for k in context.selected_asset_check_keys}
        return MaterializeResult(check_results=[trends_check(f, newest, last) for f in facet_names
                                                if trends_check_name(f) in selected])

    return [traces, facets, facet_embeddings, topic_map, classifications, topic_stats]
