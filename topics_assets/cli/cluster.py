"""`topics cluster`: cluster a filtered subset ad hoc, without persisting a map."""

from __future__ import annotations

import click

from ..config import Settings
from .common import known_facet, pass_settings, print_table, store_for


@click.command()
@click.option("--project", required=True, help="Project whose facets to cluster.")
@click.option("--facet", default="task", show_default=True, help="Free-text facet to cluster.")
@click.option("--where", default=None, help="SQL condition on table traces (alias t), e.g. "
              "\"t.day >= DATE '2026-11-01'\" or \"(t.project, t.trace_id) IN (SELECT project, trace_id FROM "
              "trace_topics WHERE topic_name = 'no_match')\".")
@click.option("--min-cluster-size", type=int, default=None, help="Smallest topic (default ~1% of the subset).")
@click.option("--sample-cap", type=int, default=20_000, show_default=True)
@click.option("--top", type=int, default=30, show_default=True, help="Topics shown.")
@pass_settings
def cluster(settings: Settings, project: str, facet: str, where: str | None, min_cluster_size: int | None,
            sample_cap: int, top: int) -> None:
    """Cluster any filtered subset of a project's facets, ad hoc. Same pipeline; nothing is persisted.
    (The Dagster job `adhoc_cluster` takes the same settings from the launchpad.)"""
    from ..topics.stage import cluster_adhoc
    from ..store import QueryError

    known_facet(settings, facet)
    try:
        result = cluster_adhoc(store=store_for(settings), settings=settings, project=project, facet=facet, where=where,
                               min_cluster_size=min_cluster_size, sample_cap=sample_cap)
    except (ValueError, QueryError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{result.n_facets} {facet} facets in {project}" + (f" where {where}" if where else "") +
               f": {result.n_topics} topics, noise {result.noise_share:.1%}, "
               f"min cluster size {result.min_cluster_size}, {result.seconds:.1f}s")
    print_table(("topic", "name", "size", "example"),
                [(t["topic_id"], t["name"][:48], t["size"], (t["examples"][0] if t["examples"] else "")[:70])
                 for t in result.topics[:top]])
