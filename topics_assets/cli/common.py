"""What every `topics` command shares: the settings it was given, the store, the Dagster instance, the output.

Dagster and the store are imported inside the openers, so `topics --help` stays fast.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path

import click

from ..config import Settings

pass_settings = click.make_pass_decorator(Settings)


CONFIG_FILE = "topics.config_file"  # click context meta: the topics.yaml this command read, if any

# What `topics` writes as the dagster.yaml of an instance it makes. No pool limit: a CLI run killed
# mid-step would keep its slot (no daemon frees it) and the next run would wait forever; two DuckDB
# writers at once are safe anyway (the store waits out the other's lock).
INSTANCE_YAML = """# Dagster instance for Topics (defaults: SQLite storage in this folder)
telemetry:
  enabled: false
"""


def quiet_dagster() -> None:
    """Dagster's notices about its own APIs (beta, preview, superseded) are for this code's authors, not
    for the person running `topics`."""
    from dagster_shared.utils.warnings import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def instance_for(settings: Settings):
    """The Dagster instance: $DAGSTER_HOME, else the checkout's (./dagster.yaml, whose history lives in
    ./.topics) when the store's home is ./.topics, else one in <home>/dagster, so that another home
    never shares the checkout's history."""
    quiet_dagster()
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        checkout = Path("dagster.yaml").exists() and Path(settings.home).resolve() == Path(".topics").resolve()
        home = Path.cwd() if checkout else Path(settings.home).resolve() / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(Path(os.environ["DAGSTER_HOME"]).resolve())
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return DagsterInstance.get()


def settings_env(settings: Settings) -> str:
    """Environment assignments that give another process this command's settings, as pasted anywhere:
    every TOPICS_* variable it was given, and its topics.yaml, home and database as absolute paths."""
    from ..config import ENV_VARS

    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    env["TOPICS_HOME"] = str(Path(settings.home).resolve())
    if settings.database:
        db = settings.database
        env["TOPICS_DATABASE"] = db if "://" in db else str(Path(db).resolve())
    ctx = click.get_current_context(silent=True)
    config = ctx.find_root().meta.get(CONFIG_FILE) if ctx else None
    if config:
        env["TOPICS_CONFIG"] = str(Path(config).resolve())
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())


def ui_command(settings: Settings) -> str:
    """The `dagster dev` line that opens this command's store and Dagster instance with its settings."""
    instance_for(settings)
    return (f"{settings_env(settings)} DAGSTER_HOME={shlex.quote(os.environ['DAGSTER_HOME'])} "
            f"{command('dagster')} dev -m topics_assets.definitions")


def store_for(settings: Settings):
    from ..store import open_store

    return open_store(settings.database_path)


def defs_for(settings: Settings):
    quiet_dagster()
    from ..definitions import build_defs

    return build_defs(settings)


def register_projects(settings: Settings, projects: list[str]) -> None:
    """Add newly seen projects to the instance's partitions, so `topics run` and the UI see them."""
    from ..defs.partitions import register_projects as register

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
