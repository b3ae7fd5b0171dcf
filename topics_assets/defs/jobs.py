"""Jobs over the asset graph: what the CLI runs in-process and what schedules launch."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from ..config import Settings
from .partitions import daily_partitions, map_partitions

PROCESS_DAYS = "process_days"
GENERATE_TOPIC_MAPS = "generate_topic_maps"
CLASSIFY_DAYS = "classify_days"


def build_jobs(settings: Settings) -> list:
    daily = daily_partitions(settings)
    return [
        define_asset_job(
            PROCESS_DAYS,
            selection=AssetSelection.assets("traces", "facets", "facet_embeddings", "classifications", "topic_stats"),
            partitions_def=daily,
            description="Preprocess, facet, embed and classify the traces of a range of days, then their per-topic figures and trends.",
        ),
        define_asset_job(
            GENERATE_TOPIC_MAPS,
            selection=AssetSelection.assets("topic_map"),
            partitions_def=map_partitions(settings),
            description="Generate a new topic map generation for one (project, facet).",
        ),
        define_asset_job(
            CLASSIFY_DAYS,
            selection=AssetSelection.assets("classifications", "topic_stats"),
            partitions_def=daily,
            description="Re-label a range of days with the current topic maps (the backfill after a regeneration), and "
                        "recompute their per-topic figures and trends.",
        ),
    ]
