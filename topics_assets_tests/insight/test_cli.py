"""`topics trends` and the per-topic figures of `topics maps`, run as a user would (click's CliRunner)."""

import json

import pytest
from click.testing import CliRunner

from topics_assets.cli import cli
from topics_assets.config import load_settings
from topics_assets.insight.stage import topic_stats_days
from topics_assets.store import open_store

from .test_stage import DAYS, build


@pytest.fixture
def topics(cli_home):
    settings = load_settings()
    settings.facets = ["task"]
    store = open_store(settings.database_path)
    build(store, settings)
    runner = CliRunner()
    return store, settings, lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def test_trends_prints_what_rises_is_new_and_fails(topics):
    store, settings, run = topics
    out = run("trends")
    assert out.exit_code == 0 and "nothing rising, new or failing" in out.output
    assert "no per-topic figures for those days yet" in out.output
    topic_stats_days(store=store, settings=settings, days=DAYS)
    out = run("trends").output
    lines = out.splitlines()
    assert sum("RISING" in line for line in lines) == 1 and sum("NEW" in line for line in lines) == 1
    assert sum("FAILING" in line for line in lines) == 1
    rising = next(i for i, line in enumerate(lines) if "RISING" in line)
    assert "task-003" in lines[rising] and "40 traces (expected 8.9)" in lines[rising + 1]
    assert "share 6.0% -> 26.8%" in lines[rising + 1]
    assert lines[rising + 2].strip().startswith("e.g. topic 3") and lines[rising + 3].strip().startswith("e.g.")
    assert "failure rate" in out and "NEW" in out and "task-005" in out
    data = json.loads(run("trends", "--json", "--project", "shop", "--facet", "task").output)
    assert sorted((a["topic_id"], a["kind"]) for a in data) == [("task-003", "failing"), ("task-003", "rising"),
                                                                 ("task-005", "new")]
    assert all(len(a["examples"]) == 2 and a["day"] == DAYS[-1] for a in data)
    assert json.loads(run("trends", "--json", "--days", "3").output) == data  # earlier days raised nothing
    assert run("trends", "--project", "nope").exit_code != 0
    assert run("trends", "--days", "0").exit_code != 0


def test_maps_shows_failure_error_and_cost_beside_size(topics):
    store, settings, run = topics
    before = run("maps").output
    header = next(line for line in before.splitlines() if line.startswith("topic_id"))
    assert header.split() == ["topic_id", "name", "size", "failing", "errors", "cost/trace", "keywords"]
    topic_stats_days(store=store, settings=settings, days=DAYS)
    row = next(line for line in run("maps").output.splitlines() if line.startswith("task-000"))
    assert "0.0%" in row and "$0.0100" in row
    failing = next(line for line in run("maps").output.splitlines() if line.startswith("task-003"))
    assert "%" in failing and failing.split()[4] != "0.0%"


def test_help_lists_and_explains_trends():
    runner = CliRunner()
    assert "topics trends" in runner.invoke(cli, ["--help"]).output
    out = runner.invoke(cli, ["trends", "--help"]).output
    assert "Benjamini-Hochberg" in out and "--days" in out and "--json" in out
