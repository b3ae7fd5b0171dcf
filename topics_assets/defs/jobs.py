"""Jobs over the asset graph: what the CLI runs in-process and what schedules launch."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from ..config import Settings
from .partitions import daily_partitions, map_partitions

PROCESS_DAYS = "process_days"
GENERATE_TOPIC_MAPS = "generate_topic_maps"
CLASSIFY_DAYS = "classify_days"
# On a generate_topic_maps run: the newest generation its requester saw ("none" before the first). The
# run skips the map when a newer one landed meanwhile (another process generated it).
SEEN_GENERATION_TAG = "topics/seen_generation"


def seen_generation_tags(generation: int | None) -> dict[str, str]:
    return {SEEN_GENERATION_TAG: "none" if generation is None else str(generation)}


def seen_generation(tags) -> object:
    """The generation a run's tags say its requester saw: an int, None (no map then), or UNSEEN (no tag)."""
    from ..topics.stage import UNSEEN

    value = tags.get(SEEN_GENERATION_TAG)
    if value is None:
        return UNSEEN
    return None if value == "none" else int(value)


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
