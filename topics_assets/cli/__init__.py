"""The `topics` command: ingest traces, run the asset graph in-process, look at the results.

Settings come from topics.yaml and TOPICS_* environment variables (see the README). Each command lives in
the module of its group (ingest, run, query, cluster, classify) and is registered on the one group below.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from ..config import ConfigError, config_file, load_settings
from ..disk import disk_full
from . import classify, cluster, curate, explore, ingest, query, run, serve
from .common import CONFIG_FILE


class TopicsGroup(click.Group):
    """A store that cannot be used (damaged, missing tables, too new) or a disk that is full is one line
    that says what to do, and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as e:
            # Only a loaded store module can have raised its errors (imported lazily, for a fast --help).
            base = sys.modules.get("topics_assets.store.base")
            if base is not None and isinstance(e, base.StoreUnusable):
                raise click.ClickException(str(e)) from e
            full = disk_full(e)
            if full:
                raise click.ClickException(full) from e
            raise


@click.group(cls=TopicsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="topics.yaml to read (default: $TOPICS_CONFIG, else ./topics.yaml if present).")
@click.version_option(package_name="topics")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Topics: find the patterns in your LLM-agent traces.

    Traces are summarised along facets (task, sentiment, issues), clustered into named topic maps, and every
    trace is labelled with them, as Dagster assets on a DuckDB file you can query with SQL.

    \b
    Quick start (offline, no API key):
      topics demo                      # synthetic traces end to end
      topics ingest traces.jsonl       # your own traces
      topics run                       # materialize everything pending
      topics status                    # gates, generations, topics per facet
      topics trends                    # what is rising, new and failing
      topics classify new.jsonl        # label new traces now with the current maps
      topics sql "SELECT * FROM trace_topics LIMIT 5"
      topics explore                   # the topic explorer in your browser
      topics report --out report.html  # the same views as one file to share
      topics maps --tree               # parents over the topics
      topics rename task-003 "Refunds" # a name that survives regeneration (also: topics merge)
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # No download or weight-loading progress bars from the embedding model's libraries on the user's terminal.
    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    ctx.meta[CONFIG_FILE] = config_file(config_path)  # the UI hint hands the same file to `dagster dev`
    try:
        ctx.obj = load_settings(config_path)
    except ConfigError as e:
        raise click.ClickException(f"bad configuration: {e}") from e


for _command in (ingest.ingest, ingest.preview, run.run, run.demo, query.status, query.maps, query.trends, query.sql,
                 cluster.cluster, classify.classify, serve.serve, explore.explore, explore.report, curate.rename,
                 curate.merge):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="topics")
