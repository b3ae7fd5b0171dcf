"""Running the asset graph in-process: `topics run` for what is pending, `topics demo` for synthetic traces end to end."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..config import Settings
from .common import command, defs_for, gate_advice, instance_for, pass_settings, register_projects, say, settings_env, store_for, ui_command
from .query import print_maps, print_trends


@click.command()
@click.option("--project", default=None, help="Only this project (default: all).")
@click.option("--regenerate", is_flag=True, help="Generate new topic map generations even where one exists.")
@pass_settings
def run(settings: Settings, project: str | None, regenerate: bool) -> None:
    """Materialize everything pending, in-process: preprocess, facet, embed, then topic maps where the gates
    are met (400 traces, 100 unique facets by default), then classify. Exits 1 when a stage finished nothing
    because everything it tried failed (the counts by reason are printed); work the gates defer exits 0."""
    summary = _run(settings, project, regenerate)
    click.echo(f"processed {len(summary.days)} day(s); maps generated: {', '.join(summary.maps_generated) or 'none'}")
    for key, reason in summary.maps_skipped.items():
        click.echo(f"  {key}: no map yet ({reason})")
    for key, reason in summary.maps_busy.items():
        click.echo(f"  {key}: not generated here: {reason}")
    if summary.busy:
        click.echo(f"  skipped for another run: {'; '.join(summary.busy)} (they stay pending; a later run takes "
                   "them if that run dies first)")
    if summary.maps_skipped:
        from ..topics.stage import gate_status

        p, f = next(iter(summary.maps_skipped)).rsplit("/", 1)
        gate = gate_status(store=store_for(settings), settings=settings, project=p, facet=f)
        click.echo(f"  to get maps anyway: {gate_advice(settings, gate, p, f)}")
    report_failures(summary)


def report_failures(summary) -> None:
    """Each stage's failed items by reason; exit 1 when a stage finished nothing because everything it
    tried failed (naming a map's topics included). A run whose work the gates merely defer still exits 0."""
    from ..results import describe_failures, stalled

    stuck = summary.stalled()
    for asset, progress in summary.progress.items():
        if progress["failed"] and asset not in stuck:
            say(f"{asset}: {describe_failures(progress)}; they are retried on the next run")
    for asset, progress in stuck.items():
        click.echo(f"{asset}: no progress, {describe_failures(progress)}; the failed items are retried on the "
                   f"next run", err=True)
    # A map whose names failed still labels traces, but under keyword names until it is generated again.
    unnamed = [key for key, progress in summary.naming_failed.items() if stalled(progress)]
    for key, progress in summary.naming_failed.items():
        project = key.rsplit("/", 1)[0]
        click.echo(f"{key}: naming {describe_failures(progress)}, {progress['done']} named; those topics keep "
                   f"keyword names until `{command('topics')} run --project {project} --regenerate`", err=True)
    if stuck or unnamed:
        raise click.exceptions.Exit(1)


def _run(settings: Settings, project: str | None, regenerate: bool = False):
    from ..defs.runner import RunFailed, run_pending

    store = store_for(settings)
    known = store.projects()
    if project and project not in known:
        raise click.ClickException(f"no traces for project {project!r}; known: {', '.join(known) or 'none'}")
    try:
        return run_pending(defs_for(settings), instance_for(settings), store, settings, project=project,
                           regenerate=regenerate, say=say)
    except RunFailed as e:
        raise click.ClickException(str(e)) from e


@click.command()
@click.option("--traces", "n_traces", type=int, default=1200, show_default=True, help="Synthetic traces to generate.")
@click.option("--days", type=int, default=7, show_default=True, help="Days they are spread over (ending today).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--project", default="acme-support", show_default=True)
@pass_settings
def demo(settings: Settings, n_traces: int, days: int, seed: int, project: str) -> None:
    """Generate realistic synthetic agent traces, ingest them, run the whole asset graph in-process, and print
    each facet's topic map. Offline unless an LLM is configured."""
    from ..ingest.stage import ingest_paths
    from ..demo import generate_traces, write_jsonl

    t0 = time.monotonic()
    path = Path(settings.home) / "demo" / f"traces-{project}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(generate_traces(n_traces=n_traces, days=days, seed=seed, project=project), path)
    say(f"generated {n} synthetic traces over {days} days -> {path}")
    summary = ingest_paths(store=store_for(settings), settings=settings, paths=[str(path)]).to_metadata()
    register_projects(settings, summary["projects"])
    say(f"ingested: loaded {summary['loaded']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
        f"quarantined {summary['quarantined']}")
    engine = f"LLM {settings.llm.model}" if settings.llm.model else "extractive (offline; set TOPICS_LLM_MODEL for LLM facets)"
    say(f"facets: {engine}; embeddings: {settings.embedding.model}")
    summary = _run(settings, project, regenerate=False)
    report_failures(summary)
    print_maps(settings, project, None, top=25)
    click.echo(click.style("\nTrends on the last day", bold=True) + " (against the days before it; "
               f"{command('topics')} trends --days N for more):")
    print_trends(settings, project, None, days=1)
    where = settings.database_path if "://" in settings.database_path else Path(settings.database_path).resolve()
    click.echo(f"\ndone in {time.monotonic() - t0:.1f}s. Store: {where}")
    query = "SELECT facet, topic_name, count(*) n FROM trace_topics GROUP BY facet, topic_name ORDER BY n DESC LIMIT 20"
    click.echo(f"Explore:\n  {settings_env(settings)} {command('topics')} sql \"{query}\"")
    click.echo(f"Open the same data in the Dagster UI (http://127.0.0.1:3000; Ctrl-C stops it):\n  {ui_command(settings)}")
