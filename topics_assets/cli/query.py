"""Looking at the results: `topics status` (gates and states), `topics maps` (the topic maps), `topics sql`."""

from __future__ import annotations

import click

from ..config import Settings
from .common import command, gate_advice, instance_for, known_facet, pass_settings, print_table, store_for


@click.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=200, show_default=True, help="Rows shown in table format.")
@click.option("--write", is_flag=True, help="Allow the query to change the store (read-only by default).")
@pass_settings
def sql(settings: Settings, query: str, fmt: str, limit: int, write: bool) -> None:
    """Run one SQL statement on the store (tables traces, facets, facet_embeddings, topic_maps, classifications,
    quarantine; view trace_topics). More than one statement per call is refused. Read-only unless --write."""
    from ..store import QueryError

    if write:
        click.echo("topics sql --write: this query may change the store", err=True)
    try:
        df = store_for(settings).query_df(query, read_only=not write)
    except QueryError as e:
        raise click.ClickException(f"query failed: {e}") from e
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso", default_handler=str))
    else:
        with_limit = readable(df.head(limit))
        click.echo(with_limit.to_string(index=False, max_colwidth=60) if len(df) else "(no rows)")
        if len(df) > limit:
            click.echo(f"... {len(df) - limit} more rows (use --format csv for all)")


def readable(df):
    """Numbers as a person reads them: integer sums without `.0` (DuckDB's HUGEINT arrives as float),
    other floats to 4 places with no `-0.0000`. Only for the table; csv and json keep the values."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype.kind != "f":
            continue
        values = df[col].dropna()
        if len(values) and (values == values.round()).all() and (values.abs() < 2 ** 53).all():
            df[col] = df[col].astype("Int64")
        else:
            df[col] = df[col].round(4) + 0.0  # + 0.0 turns the -0.0 that rounding leaves into 0.0
    return df


@click.command()
@pass_settings
def status(settings: Settings) -> None:
    """Per project and facet: traces ingested and preprocessed, unique facets, the gates, the current
    generation, and the state: accumulating (below the gates), ready, generating, backfilling (labelling
    with a new map), idle."""
    from ..defs.automation import in_flight
    from ..defs.jobs import CLASSIFY_DAYS, GENERATE_TOPIC_MAPS
    from ..defs.partitions import map_key
    from ..topics.stage import map_state

    store = store_for(settings)
    ingested = store.ingested_counts()
    if not ingested:
        click.echo(f"no traces in {settings.database_path} yet: {command('topics')} ingest PATH... "
                   f"(or {command('topics')} demo)")
        return
    instance = instance_for(settings)
    labelling = in_flight(instance, CLASSIFY_DAYS)
    rows, notes = [], []
    for p in sorted(ingested):
        pending = bool(store.pending_days(p, settings.preprocess_hash()))
        for facet in settings.text_facet_names:
            generating = in_flight(instance, GENERATE_TOPIC_MAPS, str(map_key(p, facet)))
            st = map_state(store=store, settings=settings, project=p, facet=facet, generating=generating,
                           backfilling=labelling or pending)
            n_topics = len(store.load_topics(p, facet, st.generation)) if st.generation else 0
            rows.append((p, facet, ingested[p], st.traces, st.unique_facets, gates_cell(settings, st),
                         st.generation or "-", n_topics, st.state))
            if not st.ready:
                now = (f"map generation {st.generation} exists and stays in use (not regenerated until the gates "
                       "are met); the data now misses: " if st.generation else "no map yet: ")
                notes.append(f"{p}/{facet}: {now}{st.reason}")
                if not st.generation:
                    notes.append(f"  {gate_advice(settings, st, p, facet)}")
    header = ("project", "facet", "ingested", "traces", "unique_facets", "gates", "generation", "topics", "state")
    print_table(header, rows)
    for note in notes:
        click.echo(note)
    click.echo(f"gates: {settings.gates.min_traces} traces, {settings.gates.min_unique_facets} unique facets; "
               f"store: {settings.database_path}")


def gates_cell(settings: Settings, st) -> str:
    """`met`, or each gate the data misses with its count and threshold."""
    missing = []
    if st.traces < settings.gates.min_traces:
        missing.append(f"traces {st.traces}/{settings.gates.min_traces}")
    if st.unique_facets < settings.gates.min_unique_facets:
        missing.append(f"unique {st.unique_facets}/{settings.gates.min_unique_facets}")
    return "met" if not missing else "below: " + ", ".join(missing)


@click.command()
@click.option("--project", default=None)
@click.option("--facet", default=None)
@click.option("--top", type=int, default=25, show_default=True, help="Topics shown per map.")
@pass_settings
def maps(settings: Settings, project: str | None, facet: str | None, top: int) -> None:
    """Print the current topic maps with their no_match rates."""
    print_maps(settings, project, known_facet(settings, facet), top)


def print_maps(settings: Settings, project: str | None, facet: str | None, top: int) -> None:
    from ..topics.stage import gate_status

    store = store_for(settings)
    projects = store.projects()
    if project is not None and project not in projects:
        raise click.ClickException(f"no traces for project {project!r}; known: {', '.join(projects) or 'none'}")
    if not projects:
        click.echo(f"no topic maps: no traces in {settings.database_path} yet ({command('topics')} ingest PATH...)")
    for p in [project] if project else projects:
        for f in [facet] if facet else settings.text_facet_names:
            gen = store.latest_generation(p, f)
            if gen is None:
                gate = gate_status(store=store, settings=settings, project=p, facet=f)
                why = (f"below the gates: {gate.reason}.\n  {gate_advice(settings, gate, p, f)}" if not gate.ready
                       else f"the gates are met; {command('topics')} run generates it")
                click.echo(f"\n{p} / {f}: no topic map yet, {why}")
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
            print_table(("topic_id", "name", "size", "keywords"), rows)
            if len(topics) > top:
                click.echo(f"  ... {len(topics) - top} more (topics maps --top {len(topics)})")
