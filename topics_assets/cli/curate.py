"""Curation that survives regeneration: `topics rename` pins a topic's name, `topics merge` merges two topics.

Both are stored (table topic_curation), applied to the current map at once, and re-applied to every later
generation through the id matching (a regenerated map keeps the ids of the clusters it continues).
"""

from __future__ import annotations

import click

from ..config import Settings
from .common import known_facet, pass_settings, store_for


def _scope(settings: Settings, store, project: str | None, facet: str | None, topic_id: str) -> tuple[str, str]:
    """The (project, facet) a topic id belongs to: as given, else the facet its id starts with and the one
    project with a map of that facet."""
    known_facet(settings, facet)
    if facet is None:
        prefix = topic_id.rsplit("-", 1)[0]
        if prefix not in settings.text_facet_names:
            raise click.ClickException(f"cannot tell the facet of topic {topic_id!r}; pass --facet "
                                       f"({', '.join(settings.text_facet_names)})")
        facet = prefix
    with_map = [p for p in store.projects() if store.latest_generation(p, facet) is not None]
    if project is None:
        if len(with_map) != 1:
            raise click.ClickException(f"pass --project: {len(with_map)} projects have a {facet} map"
                                       + (f" ({', '.join(with_map)})" if with_map else ""))
        project = with_map[0]
    elif project not in with_map:
        raise click.ClickException(f"project {project!r} has no {facet} topic map; projects with one: "
                                   f"{', '.join(with_map) or 'none'}")
    return project, facet


def _curate(settings: Settings, project: str | None, facet: str | None, scope_id: str, action, **kwargs):
    """(project, facet, result) of a curation action on the scope of topic `scope_id`; its refusal as a CLI error."""
    from ..topics.curation import CurationError

    store = store_for(settings)
    project, facet = _scope(settings, store, project, facet, scope_id)
    try:
        return project, facet, action(store=store, project=project, facet=facet, **kwargs)
    except CurationError as e:
        raise click.ClickException(str(e)) from e


@click.command()
@click.argument("topic_id")
@click.argument("name")
@click.option("--project", default=None, help="Project of the topic (default: the only one with a map of its facet).")
@click.option("--facet", default=None, help="Facet of the topic (default: the one its id starts with).")
@pass_settings
def rename(settings: Settings, topic_id: str, name: str, project: str | None, facet: str | None) -> None:
    """Pin NAME on topic TOPIC_ID: shown at once, and kept by every later generation of the map (LLM or
    keyword naming leaves that topic alone). Renaming again replaces the pin."""
    from ..topics.curation import rename_topic

    project, facet, r = _curate(settings, project, facet, topic_id, rename_topic, topic_id=topic_id, name=name)
    click.echo(f"{project}/{facet} {topic_id}: {r['old_name']!r} -> {r['name']!r} (generation {r['generation']} "
               f"and every later one)")


@click.command()
@click.argument("keep")
@click.argument("other")
@click.option("--project", default=None, help="Project of the topics (default: the only one with a map of their facet).")
@click.option("--facet", default=None, help="Facet of the topics (default: the one their ids start with).")
@pass_settings
def merge(settings: Settings, keep: str, other: str, project: str | None, facet: str | None) -> None:
    """Merge topic OTHER into topic KEEP: OTHER's traces are labelled KEEP from now on, in the current map at
    once and in every later generation (the cluster that continues OTHER keeps its centroid but labels its
    traces as KEEP, before naming and classification; if nothing continues KEEP, it takes KEEP's id)."""
    from ..topics.curation import merge_topics

    project, facet, r = _curate(settings, project, facet, keep, merge_topics, keep=keep, other=other)
    click.echo(f"{project}/{facet}: {other} merged into {keep} ({r['size']} facets in the sample; generation "
               f"{r['generation']} and every later one)")
