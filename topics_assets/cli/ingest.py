"""Getting traces in: `topics ingest`, and `topics preview` to see what the facet model would get from one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import ConfigError, Settings
from .common import pass_settings, register_projects, store_for


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True))
@click.option("--project", default=None, help="Project for every trace (default: the record's own, else "
              "the format's, else default_project).")
@pass_settings
def ingest(settings: Settings, paths: tuple[str, ...], project: str | None) -> None:
    """Load traces from JSON / JSONL files or folders of them.

    Formats are detected per record: generic chat (one JSON object per line with messages), span traces
    (a trace with a list of spans), OpenTelemetry/OpenInference exports, tau-bench and tau2-bench run files.
    A record that cannot be parsed is quarantined with the file, line and reason; the rest still lands.
    A trace seen before in the same project replaces the earlier version only if its content changed.
    """
    from ..ingest.stage import ingest_paths

    files = _expand(paths)
    total = sum(f.stat().st_size for f in files)
    store = store_for(settings)
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
    register_projects(settings, summary["projects"])
    click.echo(f"loaded {summary['loaded']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
               f"quarantined {summary['quarantined']}")
    if summary["merged"]:
        click.echo(f"  {summary['merged']} OTLP trace(s) had spans in more than one export; their spans were merged")
    for line in quarantine_report(summary["quarantine_lines"]):
        click.echo(line)
    if summary["quarantined"]:
        click.echo("  details: topics sql \"SELECT source, line, reason FROM quarantine\"")
    if summary["days"]:
        click.echo(f"projects: {', '.join(summary['projects'])}; days {summary['days'][0]} .. {summary['days'][-1]}")
        click.echo("next: topics run")


def quarantine_report(by_file: dict[str, dict[str, list]], shown: int = 10) -> list[str]:
    """Per file, each kind of reason with its count and lines: `not valid JSON: 3 (lines 2, 4, 14)`."""
    out = []
    for path, kinds in by_file.items():
        out.append(f"  quarantined in {path}:")
        for kind, lines in sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            known = sorted(n for n in lines if n is not None)
            where = ", ".join(map(str, known[:shown])) + (f", ... {len(known) - shown} more" if len(known) > shown else "")
            out.append(f"    {kind}: {len(lines)}" + (f" (line{'s' if len(known) > 1 else ''} {where})" if known else ""))
    return out


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


@click.command()
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
    from ..ingest import read_file
    from ..preprocess import CustomPreprocessorError, load_custom, preprocess
    from ..traces import Quarantined

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
        from ..facets import facet_messages

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
