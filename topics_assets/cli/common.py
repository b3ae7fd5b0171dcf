"""What every `topics` command shares: the settings it was given, the store, the Dagster instance, the output.

Dagster and the store are imported inside the openers, so `topics --help` stays fast.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from ..config import Settings

pass_settings = click.make_pass_decorator(Settings)


def instance_for(settings: Settings):
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


def store_for(settings: Settings):
    from ..store import open_store

    return open_store(settings.database_path)


def defs_for(settings: Settings):
    from ..definitions import build_defs

    return build_defs(settings)


def register_projects(settings: Settings, projects: list[str]) -> None:
    """Add newly seen projects to the instance's partitions, so `topics run` and the UI see them."""
    from ..defs.runner import register_projects as register

    if projects:
        register(instance_for(settings), projects)


def say(msg: str) -> None:
    """A progress line on stderr, so stdout stays the command's result."""
    click.echo(click.style("» ", fg="cyan") + msg, err=True)


def print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


def command(name: str) -> str:
    """How to type this install's `name` (topics, dagster) here so that it runs as pasted: bare when
    the shell finds this very one on PATH, else its path (`.venv/bin/topics` from the checkout)."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == exe.resolve():
        return name
    rel = os.path.relpath(exe, Path.cwd())
    return shlex.quote(rel if not rel.startswith("..") else str(exe))


def known_facet(settings: Settings, facet: str | None) -> str | None:
    """An unknown --facet is an error that lists the facets that have maps."""
    if facet is not None and facet not in settings.text_facet_names:
        raise click.ClickException(f"unknown facet {facet!r}; facets with topic maps: "
                                   f"{', '.join(settings.text_facet_names)}")
    return facet


def gate_advice(settings: Settings, gate, project: str, facet: str) -> str:
    """What to do about unmet gates: the settings that lower them, or an ad hoc map of what there is."""
    lower = []
    if gate.traces < settings.gates.min_traces:
        lower.append(f"TOPICS_MIN_TRACES={max(gate.traces, 1)}")
    if gate.unique_facets < settings.gates.min_unique_facets:
        lower.append(f"TOPICS_MIN_UNIQUE_FACETS={max(gate.unique_facets, 1)}")
    how = (f"lower the gates ({' '.join(lower)} in the environment, or gates: in topics.yaml) and "
           f"{command('topics')} run, or " if lower else "")
    return f"{how}cluster what there is now: {command('topics')} cluster --project {shlex.quote(project)} --facet {facet}"
