"""Ad hoc clustering from the launchpad: any subset, same pipeline, nothing persisted."""

from dagster import Config, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from ..topics.stage import cluster_adhoc
from .assets import topics_markdown
from .resources import TopicsSettingsResource, TopicsStoreResource


class AdhocClusterConfig(Config):
    project: str = Field(description="Project to explore.")
    facet: str = Field(default="task", description="Free-text facet to cluster.")
    where: str | None = Field(default=None, description="SQL condition on table traces (alias t), "
                                                         "e.g. \"t.day >= DATE '2026-11-01'\".")
    min_cluster_size: int | None = Field(default=None, description="Smallest topic; default ~1% of the subset.")
    sample_cap: int = Field(default=20_000, description="At most this many facets are clustered.")


def build_adhoc_job():
    @op(description="Cluster the selected facets and report the topics as run metadata.")
    def cluster_subset(context: OpExecutionContext, config: AdhocClusterConfig, store: TopicsStoreResource,
                       settings: TopicsSettingsResource) -> dict:
        result = cluster_adhoc(store=store.get_store(), settings=settings.get_settings(), project=config.project,
                               facet=config.facet, where=config.where, min_cluster_size=config.min_cluster_size,
                               sample_cap=config.sample_cap)
        context.add_output_metadata({
            "n_facets": result.n_facets, "n_topics": result.n_topics, "noise_share": result.noise_share,
            "topics": MetadataValue.md(topics_markdown(result.topics)),
        })
        return result.to_metadata()

    @job(name="adhoc_cluster", description="Cluster any filtered subset of a project's facets, for exploration; "
                                           "the result is shown here and not persisted as the project's map.")
    def adhoc_cluster():
        cluster_subset()

    return adhoc_cluster
