"""The `topics` command: ingest traces, run the asset graph in-process, look at the results.

Settings come from topics.yaml and TOPICS_* environment variables (see the README).
"""

from __future__ import annotations

import json
import os
import warnings
import sys
import time
from pathlib import Path

import click

from .config import ConfigError, Settings, load_settings

pass_settings = click.make_pass_decorator(Settings)


def _instance(settings: Settings):
    """The Dagster instance: $DAGSTER_HOME, else ./dagster.yaml's directory, else one under $TOPICS_HOME."""
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        home = Path.cwd() if Path("dagster.yaml").exists() else Path(settings.home).resolve() / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    if not config.exists():
        config.write_text("# Dagster instance for Topics (defaults: SQLite storage in this folder)\n"
                          "telemetry:\n  enabled: false\n")
    return DagsterInstance.get()


def _store(settings: Settings):
    from .store import open_store

    return open_store(settings.database_path)


def _defs(settings: Settings):
    from .definitions import build_defs

    return build_defs(settings)


def _say(msg: str) -> None:
    click.echo(click.style("» ", fg="cyan") + msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
      topics sql "SELECT * FROM trace_topics LIMIT 5"
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    try:
        ctx.obj = load_settings(config_path)
    except ConfigError as e:
        raise click.ClickException(f"bad configuration: {e}") from e


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True))
@click.option("--project", default=None, help="Project for every trace (default: the record's own, else "
              "the format's, else default_project).")
@pass_settings
def ingest(settings: Settings, paths: tuple[str, ...], project: str | None) -> None:
    """Load traces from JSON / JSONL files or folders of them.

    Formats are detected per record: generic chat (one JSON object per line with messages), span traces
    (a trace with a list of spans), OpenTelemetry/OpenInference exports, tau-bench and tau2-bench run files.
    A record that cannot be parsed is quarantined with the file, line and reason; the rest still lands.
    A trace id seen before replaces the earlier version only if its content changed.
    """
    from .ingest.stage import ingest_paths

    files = _expand(paths)
    total = sum(f.stat().st_size for f in files)
    store = _store(settings)
    done = {"bytes": 0, "file": None}
    with click.progressbar(length=max(total, 1), label="ingesting", file=sys.stderr,
                           show_pos=False, show_percent=True) as bar:
        def on_record(path: str) -> None:
            if done["file"] != path:
                if done["file"] is not None:
                    bar.update(Path(done["file"]).stat().st_size)
                done["file"] = path
        summary = ingest_paths(store=store, settings=settings, paths=[str(f) for f in files], project=project,
                               on_record=on_record).to_metadata()
        bar.update(max(total, 1) - bar.pos)
    _register(settings, summary["projects"])
    click.echo(f"loaded {summary['loaded']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
               f"quarantined {summary['quarantined']}")
    if summary["merged"]:
        click.echo(f"  {summary['merged']} OTLP trace(s) had spans in more than one export; their spans were merged")
    for reason, n in sorted(summary["quarantine_reasons"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  quarantined {n}: {reason}")
    if summary["quarantined"]:
        click.echo("  details: topics sql \"SELECT source, line, reason FROM quarantine\"")
    if summary["days"]:
        click.echo(f"projects: {', '.join(summary['projects'])}; days {summary['days'][0]} .. {summary['days'][-1]}")
        click.echo("next: topics run")


def _expand(paths) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix in (".json", ".jsonl", ".ndjson") and x.is_file())
        else:
            files.append(p)
    if not files:
        raise click.ClickException("no .json/.jsonl/.ndjson files found in the given paths")
    return files


def _register(settings: Settings, projects: list[str]) -> None:
    from .defs.runner import register_projects

    if projects:
        register_projects(_instance(settings), projects)


@cli.command()
@click.option("--project", default=None, help="Only this project (default: all).")
@click.option("--regenerate", is_flag=True, help="Generate new topic map generations even where one exists.")
@pass_settings
def run(settings: Settings, project: str | None, regenerate: bool) -> None:
    """Materialize everything pending, in-process: preprocess, facet, embed, then topic maps where the gates
    are met (400 traces, 100 unique facets by default), then classify."""
    summary = _run(settings, project, regenerate)
    click.echo(f"processed {len(summary.days)} day(s); maps generated: {', '.join(summary.maps_generated) or 'none'}")
    for key, reason in summary.maps_skipped.items():
        click.echo(f"  {key}: no map yet ({reason})")


def _run(settings: Settings, project: str | None, regenerate: bool = False):
    from .defs.runner import RunFailed, run_pending

    store = _store(settings)
    known = store.projects()
    if project and project not in known:
        raise click.ClickException(f"no traces for project {project!r}; known: {', '.join(known) or 'none'}")
    try:
        return run_pending(_defs(settings), _instance(settings), store, settings, project=project,
                           regenerate=regenerate, say=_say)
    except RunFailed as e:
        raise click.ClickException(str(e)) from e


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=200, show_default=True, help="Rows shown in table format.")
@click.option("--write", is_flag=True, help="Allow the query to change the store (read-only by default).")
@pass_settings
def sql(settings: Settings, query: str, fmt: str, limit: int, write: bool) -> None:
    """Run a SQL query on the store (tables traces, facets, facet_embeddings, topic_maps, classifications,
    quarantine; view trace_topics). Read-only unless --write."""
    from .store import QueryError

    if write:
        click.echo("topics sql --write: this query may change the store", err=True)
    try:
        df = _store(settings).query_df(query, read_only=not write)
    except QueryError as e:
        raise click.ClickException(f"query failed: {e}") from e
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso", default_handler=str))
    else:
        with_limit = df.head(limit)
        click.echo(with_limit.to_string(index=False, max_colwidth=60) if len(df) else "(no rows)")
        if len(df) > limit:
            click.echo(f"... {len(df) - limit} more rows (use --format csv for all)")


@cli.command()
@pass_settings
def status(settings: Settings) -> None:
    """Per project and facet: traces, unique facets, whether the gates are met, the current generation, and the
    state: accumulating (below the gates), ready, generating, backfilling (labelling with a new map), idle."""
    from .defs.automation import in_flight
    from .defs.jobs import CLASSIFY_DAYS, GENERATE_TOPIC_MAPS
    from .defs.partitions import map_key
    from .topics.stage import map_state

    store = _store(settings)
    projects = store.projects()
    if not projects:
        click.echo(f"no traces in {settings.database_path} yet: topics ingest PATH... (or topics demo)")
        return
    instance = _instance(settings)
    labelling = in_flight(instance, CLASSIFY_DAYS)
    rows = []
    for p in projects:
        pending = bool(store.pending_days(p, settings.preprocess_hash()))
        for facet in settings.text_facet_names:
            generating = in_flight(instance, GENERATE_TOPIC_MAPS, str(map_key(p, facet)))
            st = map_state(store=store, settings=settings, project=p, facet=facet, generating=generating,
                           backfilling=labelling or pending)
            n_topics = len(store.load_topics(p, facet, st.generation)) if st.generation else 0
            rows.append((p, facet, st.traces, st.unique_facets, "yes" if st.ready else "no",
                         st.generation or "-", n_topics, st.state))
    header = ("project", "facet", "traces", "unique_facets", "gates_met", "generation", "topics", "state")
    _table(header, rows)
    click.echo(f"gates: {settings.gates.min_traces} traces, {settings.gates.min_unique_facets} unique facets; "
               f"store: {settings.database_path}")


@cli.command()
@click.option("--project", required=True, help="Project whose facets to cluster.")
@click.option("--facet", default="task", show_default=True, help="Free-text facet to cluster.")
@click.option("--where", default=None, help="SQL condition on table traces (alias t), e.g. "
              "\"t.day >= DATE '2026-11-01'\" or \"t.trace_id IN (SELECT trace_id FROM trace_topics WHERE "
              "topic_name = 'no_match')\".")
@click.option("--min-cluster-size", type=int, default=None, help="Smallest topic (default ~1% of the subset).")
@click.option("--sample-cap", type=int, default=20_000, show_default=True)
@click.option("--top", type=int, default=30, show_default=True, help="Topics shown.")
@pass_settings
def cluster(settings: Settings, project: str, facet: str, where: str | None, min_cluster_size: int | None,
            sample_cap: int, top: int) -> None:
    """Cluster any filtered subset of a project's facets, ad hoc. Same pipeline; nothing is persisted.
    (The Dagster job `adhoc_cluster` takes the same settings from the launchpad.)"""
    from .topics.stage import cluster_adhoc
    from .store import QueryError

    try:
        result = cluster_adhoc(store=_store(settings), settings=settings, project=project, facet=facet, where=where,
                               min_cluster_size=min_cluster_size, sample_cap=sample_cap)
    except (ValueError, QueryError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{result.n_facets} {facet} facets in {project}" + (f" where {where}" if where else "") +
               f": {result.n_topics} topics, noise {result.noise_share:.1%}, "
               f"min cluster size {result.min_cluster_size}, {result.seconds:.1f}s")
    _table(("topic", "name", "size", "example"),
           [(t["topic_id"], t["name"][:48], t["size"], (t["examples"][0] if t["examples"] else "")[:70])
            for t in result.topics[:top]])


def _table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


@cli.command()
@click.option("--project", default=None)
@click.option("--facet", default=None)
@click.option("--top", type=int, default=25, show_default=True, help="Topics shown per map.")
@pass_settings
def maps(settings: Settings, project: str | None, facet: str | None, top: int) -> None:
    """Print the current topic maps with their no_match rates."""
    _print_maps(settings, project, facet, top)


def _print_maps(settings: Settings, project: str | None, facet: str | None, top: int) -> None:

    store = _store(settings)
    for p in [project] if project else store.projects():
        for f in [facet] if facet else settings.text_facet_names:
            gen = store.latest_generation(p, f)
            if gen is None:
                click.echo(f"\n{p} / {f}: no topic map yet")
                continue
            topics = store.load_topics(p, f, gen)
            info = store.generation_info(p, f, gen)
            nm = store.no_match_counts(p, f)
            rate = f"{nm['no_match'] / nm['classified']:.1%}" if nm["classified"] else "n/a"
            click.echo(click.style(f"\n{p} / {f}", bold=True) +
                       f"  generation {gen}, {len(topics)} topics from {info['n_sampled']} facets, "
                       f"noise {info['noise_share']:.1%}, no_match rate {rate}, names: {info['naming_engine']}")
            rows = [(t.topic_id, t.name[:48], t.size, ", ".join(list(t.keywords)[:5])[:60])
                    for t in topics.head(top).itertuples()]
            _table(("topic_id", "name", "size", "keywords"), rows)
            if len(topics) > top:
                click.echo(f"  ... {len(topics) - top} more (topics maps --top {len(topics)})")


@cli.command()
@click.option("--traces", "n_traces", type=int, default=1200, show_default=True, help="Synthetic traces to generate.")
@click.option("--days", type=int, default=7, show_default=True, help="Days they are spread over (ending today).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--project", default="acme-support", show_default=True)
@pass_settings
def demo(settings: Settings, n_traces: int, days: int, seed: int, project: str) -> None:
    """Generate realistic synthetic agent traces, ingest them, run the whole asset graph in-process, and print
    each facet's topic map. Offline unless an LLM is configured."""
    from .ingest.stage import ingest_paths
    from .demo import generate_traces, write_jsonl

    t0 = time.monotonic()
    path = Path(settings.home) / "demo" / f"traces-{project}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(generate_traces(n_traces=n_traces, days=days, seed=seed, project=project), path)
    _say(f"generated {n} synthetic traces over {days} days -> {path}")
    summary = ingest_paths(store=_store(settings), settings=settings, paths=[str(path)]).to_metadata()
    _register(settings, summary["projects"])
    _say(f"ingested: loaded {summary['loaded']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
         f"quarantined {summary['quarantined']}")
    engine = f"LLM {settings.llm.model}" if settings.llm.model else "extractive (offline; set TOPICS_LLM_MODEL for LLM facets)"
    _say(f"facets: {engine}; embeddings: {settings.embedding.model}")
    _run(settings, project, regenerate=False)
    _print_maps(settings, project, None, top=25)
    where = settings.database_path if "://" in settings.database_path else Path(settings.database_path).resolve()
    click.echo(f"\ndone in {time.monotonic() - t0:.1f}s. Store: {where}")
    click.echo("Explore:\n  topics sql \"SELECT facet, topic_name, count(*) n FROM trace_topics GROUP BY ALL "
               "ORDER BY n DESC LIMIT 20\"")
    click.echo(f"Open the same data in the Dagster UI:\n  DAGSTER_HOME={os.environ['DAGSTER_HOME']} "
               f"dagster dev -w workspace.yaml   (from the repository root; then http://127.0.0.1:3000)")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--trace", "trace_id", default=None, help="The trace to show (default: the first one in FILE).")
@click.option("--prompt", is_flag=True, help="Print the whole facet request (system prompt, facet questions and the "
              "trace), not just the trace text.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the text and the counts.")
@pass_settings
def preview(settings: Settings, file: str, trace_id: str | None, prompt: bool, as_json: bool) -> None:
    """Print exactly what the facet model would see for one trace of FILE, with token counts before and after.

    The trace is parsed and preprocessed as `topics run` would (de-duplicated, redacted, capped at
    preprocess.max_tokens, your custom preprocessor applied); nothing is written and no LLM is called.
    The text goes to stdout, the counts to stderr.
    """
    from .ingest import read_file
    from .preprocess import CustomPreprocessorError, load_custom, preprocess
    from .traces import Quarantined

    try:
        custom = load_custom(settings.preprocess.custom) if settings.preprocess.custom else None
    except ConfigError as e:
        raise click.ClickException(f"bad configuration: {e}") from e
    found, seen, problems = None, [], []
    for item in read_file(file, default_project=settings.default_project):
        if isinstance(item, Quarantined):
            problems.append(item)
            continue
        seen.append(item.trace_id)
        if trace_id is None or item.trace_id == trace_id:
            found = item
            break
    if found is None:
        if trace_id is not None and any(q.trace_id == trace_id for q in problems):
            q = next(q for q in problems if q.trace_id == trace_id)
            raise click.ClickException(f"trace {trace_id} is quarantined: {q.reason}")
        known = ", ".join(seen[:10]) + (f" ... ({len(seen)} in all)" if len(seen) > 10 else "")
        where = f"no trace {trace_id!r} in {file}" if trace_id else f"no trace in {file}"
        reasons = f"; {len(problems)} record(s) quarantined, first: {problems[0].reason}" if problems else ""
        raise click.ClickException(f"{where} (traces: {known or 'none'}){reasons}")
    try:
        p = preprocess(found, settings.preprocess, custom=custom)
    except CustomPreprocessorError as e:
        raise click.ClickException(f"{e}\n{e.details}") from e
    if prompt:
        from .facets import facet_messages

        messages = facet_messages(settings.facets, p.text)
        body = "\n\n".join(f"--- {m['role']} ---\n{m['content']}" for m in messages)
    else:
        body = p.text
    if as_json:
        click.echo(json.dumps({"trace_id": found.trace_id, "project": found.project, "format": found.format,
                               "spans": p.n_spans, "messages": p.n_messages, "tokens_before": p.tokens_before,
                               "tokens_after": p.tokens_after, "max_tokens": settings.preprocess.max_tokens,
                               "truncated": p.truncated, "redactions": p.redactions, "content_hash": p.content_hash,
                               "text": body}, ensure_ascii=False))
        return
    redacted = ", ".join(f"{k} {v}" for k, v in sorted(p.redactions.items())) or "none"
    click.echo(f"trace {found.trace_id} ({found.format}, project {found.project}): {p.n_spans} spans, "
               f"{p.n_messages} messages", err=True)
    click.echo(f"tokens: {p.tokens_before:,} before -> {p.tokens_after:,} after (cap {settings.preprocess.max_tokens:,}"
               f"{', truncated' if p.truncated else ''}); redactions: {redacted}"
               f"{'' if settings.preprocess.redact else ' (redaction is OFF)'}", err=True)
    click.echo("-" * 72, err=True)
    click.echo(body)


def main() -> None:
    cli(prog_name="topics")


if __name__ == "__main__":
    main()
