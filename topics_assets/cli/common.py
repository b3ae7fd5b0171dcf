"""What every `topics` command shares: the settings it was given, the store, the Dagster instance, the output.

Dagster and the store are imported inside the openers, so `topics --help` stays fast.
"""

from __future__ import annotations

import os
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
