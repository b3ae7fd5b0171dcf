"""`topics explore`: the topic explorer, a local web app over the store."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Settings
from .common import pass_settings, say


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. The explorer shows trace text and has no login: keep it on loopback "
                   "unless the network it listens on may read your traces.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port.")
@pass_settings
def explore(settings: Settings, host: str, port: int) -> None:
    """Browse the topic maps: per project and facet the topics (list and treemap, with share, daily trend
    and failure rate), the 2-D map of the sampled facets coloured by topic, failure or day, each topic's
    page (description, keywords, examples, nearest topics, its traces) and each trace's facets, outcome
    signals and preprocessed text.

    Everything it needs ships in the package (it works with the network off) and it only reads the store,
    on short read-only connections, so it runs beside `dagster dev` or a CLI run. Stop it with Ctrl-C.
    """
    from ..explore.app import serve_forever
    from ..store import is_postgres_url, open_store

    if not is_postgres_url(settings.database_path) and not Path(settings.database_path).exists():
        raise click.ClickException(f"no store at {settings.database_path}: run `topics demo`, or `topics ingest` "
                                   "and `topics run`, first (or point TOPICS_HOME / TOPICS_DATABASE at one)")
    store = open_store(settings.database_path, lock_wait_s=30.0)
    say(f"Topics explorer on http://{host}:{port}/ (store {settings.database_path}); Ctrl-C stops it")
    serve_forever(store, host, port)


def _day(ctx, param, value):
    if value is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None


@click.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--project", "projects", multiple=True, help="Only this project (repeatable; default all).")
@click.option("--facet", "facets", multiple=True, help="Only this facet (repeatable; default all with a map).")
@click.option("--generation", type=int, default=None, help="This generation of each map (default the newest).")
@click.option("--all-generations", is_flag=True, help="Every generation of each map, not just the newest.")
@click.option("--start", callback=_day, default=None, help="Count traces from this day (YYYY-MM-DD).")
@click.option("--end", callback=_day, default=None, help="Count traces up to this day (YYYY-MM-DD).")
@click.option("--traces-per-topic", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Traces listed (with their pages) per topic, closest first.")
@click.option("--text-chars", type=click.IntRange(10, 10_000), default=120, show_default=True,
              help="Characters of each map point's facet text kept for its tooltip.")
@pass_settings
def report(settings: Settings, out: str, projects: tuple[str, ...], facets: tuple[str, ...], generation: int | None,
           all_generations: bool, start: str | None, end: str | None, traces_per_topic: int, text_chars: int) -> None:
    """Write the explorer's views as one self-contained HTML file to share: the topics list and treemap,
    the 2-D map with its overlays, each topic's page and the pages of the traces it lists.

    The file carries its data inline and loads nothing (it opens from disk with the network off). It is
    bounded, and says so on every page: TRACES_PER_TOPIC traces per topic, TEXT_CHARS characters of each
    map point's facet text, 6,000 of a trace's text. Filter with --project, --facet, --generation and
    --start/--end; the page still switches between the maps it holds.
    """
    from ..explore.data import NotFound
    from ..explore.report import ReportLimits, write_report
    from ..store import is_postgres_url, open_store

    if not is_postgres_url(settings.database_path) and not Path(settings.database_path).exists():
        raise click.ClickException(f"no store at {settings.database_path}: run `topics demo`, or `topics ingest` "
                                   "and `topics run`, first (or point TOPICS_HOME / TOPICS_DATABASE at one)")
    if start and end and start > end:
        raise click.BadParameter(f"--start {start} is after --end {end}")
    store = open_store(settings.database_path, lock_wait_s=30.0)
    try:
        info = write_report(store, out, projects=list(projects) or None, facets=list(facets) or None,
                            generation=generation, all_generations=all_generations, start=start, end=end,
                            limits=ReportLimits(traces_per_topic=traces_per_topic, point_text_chars=text_chars))
    except NotFound as e:
        raise click.ClickException(str(e)) from None
    say(f"wrote {out}: {info['n_maps']} map(s), {info['n_points']:,} points, {info['n_traces']:,} trace pages, "
        f"{info['bytes'] / 1e6:.1f} MB")
    click.echo(out)
