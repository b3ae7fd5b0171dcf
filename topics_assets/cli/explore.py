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
