"""Looking at the results: `topics status` (gates and states), `topics maps` (the topic maps), `topics trends`
(what is rising, new and failing), `topics sql`."""

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
    trace_outcomes, topic_stats, topic_alerts, topic_hierarchy, topic_curation, quarantine; views trace_topics,
    topic_daily, topic_summary).
    More than one statement per call is refused. Read-only unless --write."""
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
    from ..claims import holders
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
    claimed = holders(store, "topic_map")  # maps a process is generating (a Dagster run or `topics run`)
    rows, notes = [], []
    for p in sorted(ingested):
        pending = bool(store.pending_days(p, settings.preprocess_hash()))
        for facet in settings.text_facet_names:
            generating = (p, facet) in claimed or in_flight(instance, GENERATE_TOPIC_MAPS, str(map_key(p, facet)))
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
@click.option("--tree", is_flag=True, help="Show the parents (topic_hierarchy) with their topics indented.")
@pass_settings
def maps(settings: Settings, project: str | None, facet: str | None, top: int, tree: bool) -> None:
    """Print the current topic maps with their no_match rates, and each topic's failure rate, error rate and
    cost per trace over the days in topic_stats. With --tree, the parents over the topics, each with its
    topics indented beneath it."""
    print_maps(settings, project, known_facet(settings, facet), top, tree)


def print_tree(store, project: str, facet: str, generation: int, topics) -> None:
    """Parents (id, name, size, topic count), biggest first, with their topics indented; a topic without a
    parent (none: fewer than 4 topics, or a generation made before parents) is listed bare."""
    hierarchy = store.load_hierarchy(project, facet, generation)
    by_id = {t.topic_id: t for t in topics.itertuples()}
    if not len(hierarchy):
        click.echo(f"  (no parents: {len(topics)} topics; a map of 4 topics or more gets them when it is generated)")
    groups = [(pid, [by_id[t] for t in rows.topic_id if t in by_id], rows.iloc[0].parent_name)
              for pid, rows in hierarchy.groupby("parent_id", sort=True)]
    groups.sort(key=lambda g: (-sum(t.size for t in g[1]), g[0]))
    for pid, kids, name in groups:
        click.echo(f"  {pid}  {name}  ({sum(t.size for t in kids)} facets, {len(kids)} topics)")
        for t in sorted(kids, key=lambda t: (-t.size, t.topic_id)):
            click.echo(f"      {t.topic_id}  {t.name}  ({t.size})")
    placed = {t.topic_id for _, kids, _ in groups for t in kids}
    rest = [t for t in topics.itertuples() if t.topic_id not in placed]
    if groups and rest:
        click.echo("  (no parent)")
    for t in rest:
        click.echo(f"{'      ' if groups else '  '}{t.topic_id}  {t.name}  ({t.size})")


def print_maps(settings: Settings, project: str | None, facet: str | None, top: int, tree: bool = False) -> None:
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
            if tree:
                print_tree(store, p, f, gen, topics)
                continue
            figures = store.topic_figures(p, f).set_index("topic_id")
            rows = [(t.topic_id, t.name[:48], t.size, *_figures(figures, t.topic_id),
                     ", ".join(list(t.keywords)[:5])[:60]) for t in topics.head(top).itertuples()]
            print_table(("topic_id", "name", "size", "failing", "errors", "cost/trace", "keywords"), rows)
            if len(topics) > top:
                click.echo(f"  ... {len(topics) - top} more (topics maps --top {len(topics)})")


def _figures(figures, topic_id: str) -> tuple[str, str, str]:
    """A topic's failure rate, error rate and cost per trace as table cells ('-' before topic_stats has it)."""
    if topic_id not in figures.index:
        return "-", "-", "-"
    row = figures.loc[topic_id]

    def pct(v) -> str:
        return "-" if v is None or v != v else f"{v:.1%}"

    cost = row.cost_per_trace
    return pct(row.failure_rate), pct(row.error_rate), "-" if cost is None or cost != cost else f"${cost:.4f}"


SHOWN_KINDS = ("new", "rising", "failing")
ALL_KINDS = SHOWN_KINDS + ("falling", "gone")


@click.command()
@click.option("--project", default=None, help="Only this project (default: all).")
@click.option("--facet", default=None, help="Only this facet (default: all).")
@click.option("--days", type=int, default=1, show_default=True,
              help="The last N days with traces (1: the newest day only).")
@click.option("--all", "show_all", is_flag=True, help="Also what is falling or gone.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of the alerts, their figures and examples.")
@pass_settings
def trends(settings: Settings, project: str | None, facet: str | None, days: int, show_all: bool,
           as_json: bool) -> None:
    """What is rising, new and failing: each topic whose share of its facet's traces rose (or that is new in
    the current map), or whose failure rate jumped, on the last N days, judged against the trailing
    insight.baseline_days days by a test on the counts (Benjamini-Hochberg across the day's topics), as the
    topic_stats asset recorded them in topic_alerts. Each comes with its count against the expected, the
    change of its share, and two example facet texts."""
    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--days")
    if facet is not None and facet not in settings.facet_names:
        raise click.ClickException(f"unknown facet {facet!r}; configured: {', '.join(settings.facet_names)}")
    print_trends(settings, project, facet, days, show_all, as_json)


def print_trends(settings: Settings, project: str | None, facet: str | None, days: int = 1, show_all: bool = False,
                 as_json: bool = False) -> None:
    import json

    store = store_for(settings)
    projects = store.projects()
    if project is not None and project not in projects:
        raise click.ClickException(f"no traces for project {project!r}; known: {', '.join(projects) or 'none'}")
    newest = max(store.days_with_traces(project), default=None)
    if newest is None:
        click.echo(f"no traces in {settings.database_path} yet ({command('topics')} ingest PATH...)")
        return
    since = _days_before(newest, days - 1)
    alerts = store.load_alerts(project, facet, since_day=since)
    kinds = ALL_KINDS if show_all else SHOWN_KINDS
    shown = alerts[alerts.kind.isin(kinds)]
    records = [{**{k: _plain(v) for k, v in r.items() if k not in ("detail", "detected_at")},
                **json.loads(r["detail"] or "{}")} for r in shown.to_dict("records")]
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    span = newest if days == 1 else f"{since} .. {newest}"
    if not records:
        click.echo(f"nothing rising, new or failing on {span}"
                   + ("" if store.load_topic_stats(project, facet, since_day=since).shape[0]
                      else f" (no per-topic figures for those days yet: {command('topics')} run)"))
    order = {k: i for i, k in enumerate(ALL_KINDS)}
    for r in sorted(records, key=lambda r: (r["day"], order[r["kind"]], r["project"], r["facet"], r["topic_id"])):
        click.echo(_alert_line(r))
        for text in r.get("examples") or []:
            click.echo(f"      e.g. {text[:110]}")
    if not show_all:
        rest = alerts[~alerts.kind.isin(kinds)]
        if len(rest):
            click.echo(f"(also {len(rest)} falling or gone: topics trends --all)")


def _days_before(day: str, n: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) - timedelta(days=n)).isoformat()


def _plain(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if hasattr(v, "item") else v


def _alert_line(r: dict) -> str:
    """One alert as a person reads it: what, where, how much against what was expected."""
    name = r.get("topic_name") or r["topic_id"]
    head = f"{r['day']}  {r['kind'].upper():8} {r['project']}/{r['facet']}  {r['topic_id']} {name[:50]!r}"
    if r["kind"] == "failing":
        base = r.get("baseline_failure_rate")
        change = (f"failure rate {r['failure_rate']:.0%} ({r['failures']} of {r['count']} traces) against "
                  f"{base:.0%} before" if base is not None else f"failure rate {r['failure_rate']:.0%}")
    else:
        ratio = r.get("ratio")
        times = f", x{ratio:.1f}" if ratio else ""
        change = (f"{r['count']} traces (expected {r['expected']:.1f}), share {r['baseline_share']:.1%} -> "
                  f"{r['share']:.1%}{times}")
    return f"{click.style(head, bold=True)}\n      {change}; q={r['q_value']:.2g}"
