"""`topics classify`: label traces now against a project's current topic maps, without a Dagster run."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from ..config import ConfigError, Settings
from .common import command, pass_settings, register_projects, say, store_for


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--project", default=None, help="Label against this project's maps (and store under it with --store); "
              "default: each trace's own project (the record's, else default_project).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trace: trace_id, project and, per facet, "
              "topic_id, topic_name, distance, generation and the facet text.")
@click.option("--store", "store_them", is_flag=True, help="Also store the traces and their labels: ingest FILE "
              "(raw_traces, as `topics ingest`), then preprocess, facet, embed and classify the days they fall on "
              "(traces, trace_outcomes, facets, facet_embeddings, classifications, so trace_topics shows them). "
              "No map is regenerated.")
@pass_settings
def classify(settings: Settings, file: str, project: str | None, as_json: bool, store_them: bool) -> None:
    """Label each trace of FILE now with the project's current topic maps; `-` reads stdin.

    FILE holds traces in any input format `topics ingest` reads (JSONL, or a JSON list or document). Each trace
    is preprocessed, faceted with the configured engine (offline: extractive), embedded with the configured
    model and labelled with every text facet's newest map generation: the label `topics run` would give it,
    with no Dagster run and nothing written (unless --store). Prints, per trace and facet, the topic id, name and
    cosine distance, or no_match. A record that is not a trace is reported on stderr with its line and reason
    (exit status 1); the others are still labelled.
    """
    from ..ingest import read_file
    from ..topics.classifier import Classifier, ClassifyError, NoTopicMaps
    from ..traces import Quarantined

    with tempfile.TemporaryDirectory(prefix="topics-classify-") as tmp:
        path, shown = _input_path(file, Path(tmp))
        store = store_for(settings)
        classifiers: dict[str, Classifier] = {}
        bad = done = 0
        for item in read_file(path, project=project, default_project=settings.default_project):
            if isinstance(item, Quarantined):
                bad += 1
                click.echo(f"{shown}: {item.reason}", err=True)
                continue
            proj = project or item.project
            try:
                if proj not in classifiers:
                    classifiers[proj] = Classifier.from_store(store, settings, project=proj)
                labels = classifiers[proj].classify_trace(item)
            except NoTopicMaps as e:
                raise click.ClickException(f"{e}\n  to make them: {command('topics')} ingest TRACES --project {proj}, "
                                           f"then {command('topics')} run --project {proj}") from e
            except (ConfigError, ValueError) as e:  # ClassifyError included: this trace alone
                if not isinstance(e, ClassifyError):
                    raise click.ClickException(str(e)) from e
                bad += 1
                click.echo(f"{shown}: {e}", err=True)
                continue
            done += 1
            _print(labels, as_json)
        if store_them and done:
            _store(settings, store, path, project)
    if bad:
        raise click.ClickException(f"{bad} record(s) of {shown} could not be labelled (reasons above); "
                                   f"{done} labelled")
    if not done:
        raise click.ClickException(f"no trace in {shown}")


def _input_path(file: str, tmp: Path) -> tuple[Path, str]:
    """FILE, or stdin saved as a file the ingest readers take (.json when it is one JSON document, else .jsonl)."""
    if file != "-":
        path = Path(file)
        if not path.is_file():
            raise click.ClickException(f"no such file: {file}")
        return path, file
    data = sys.stdin.buffer.read()
    try:
        json.loads(data)
        suffix = ".json"
    except ValueError:
        suffix = ".jsonl"
    path = tmp / f"stdin{suffix}"
    path.write_bytes(data)
    return path, "<stdin>"


def _print(labels, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(labels.to_dict(), ensure_ascii=False))
        return
    click.echo(f"{labels.trace_id} (project {labels.project})")
    for facet, lab in labels.labels.items():
        name = "" if lab.no_match else f"  {lab.topic_name}"
        click.echo(f"  {facet:<12} {lab.topic_id:<16} {lab.distance:.3f}{name}")


def _store(settings: Settings, store, path: Path, project: str | None) -> None:
    """Ingest, then the pipeline's own stages over the days the traces fall on (no Dagster run)."""
    from ..embed.stage import embed_days
    from ..facets.stage import facet_days
    from ..ingest.stage import ingest_paths
    from ..preprocess.stage import preprocess_days
    from ..topics.stage import classify_days

    summary = ingest_paths(store=store, settings=settings, paths=[str(path)], project=project)
    register_projects(settings, summary.projects)
    if summary.days:
        for stage in (preprocess_days, facet_days, embed_days):
            stage(store=store, settings=settings, days=summary.days)
        result = classify_days(store=store, settings=settings, days=summary.days, project=project)
        say(f"stored: loaded {summary.loaded}, updated {summary.updated}, unchanged {summary.unchanged}; "
            f"labels written for {result.classified} facet(s) on {', '.join(summary.days)}")
