"""`topics classify`: files and stdin, text and --json, the no-maps message, bad records, --store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from topics_assets.cli import cli
from topics_assets.demo import generate_traces
from topics_assets.store import open_store
from topics_assets_tests.topics.test_classifier import PROJECT, labelled_home, pipeline_settings


@pytest.fixture
def home(tmp_path_factory, tmp_path, monkeypatch):
    """A copy of a pipeline-labelled store, as the CLI's home (TOPICS_HOME)."""
    home, records = labelled_home(tmp_path_factory, copy_to=tmp_path / "home")
    monkeypatch.setenv("TOPICS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    return home, records


def invoke(*args, input=None):
    return CliRunner().invoke(cli, ["classify", *args], input=input, catch_exceptions=False)


def stored_labels(home) -> dict:
    store = open_store(pipeline_settings(home).database_path)
    return {(r.trace_id, r.facet): r.topic_id for r in store.query_df("SELECT * FROM trace_topics").itertuples()}


def test_a_file_prints_each_trace_and_facet_as_the_pipeline_labelled_it(home, tmp_path):
    home, records = home
    path = tmp_path / "few.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:4]))
    out = invoke(str(path))
    assert out.exit_code == 0, out.output
    want = stored_labels(home)
    lines = out.output.splitlines()
    assert sum(line.startswith("syn-5-") for line in lines) == 4
    for r in records[:4]:
        block = lines[lines.index(f"{r['trace_id']} (project {PROJECT})") + 1:][:3]
        for facet, line in zip(("task", "sentiment", "issues"), block):
            assert line.split()[:2] == [facet, want[(r["trace_id"], facet)]], line


def test_stdin_json_list_and_json_lines(home):
    home, records = home
    want = stored_labels(home)
    out = invoke("-", "--json", "--project", PROJECT, input=json.dumps(records[:3]))  # a JSON list on stdin
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [r["trace_id"] for r in rows] == [r["trace_id"] for r in records[:3]]
    for row in rows:
        assert set(row["facets"]) == {"task", "sentiment", "issues"}
        for facet, lab in row["facets"].items():
            assert lab["topic_id"] == want[(row["trace_id"], facet)]
            assert isinstance(lab["distance"], float) and lab["generation"] == 1 and lab["text"]
    assert open_store(pipeline_settings(home).database_path).query_df(
        "SELECT count(*) n FROM raw_traces").n[0] == len(records)  # nothing stored


def test_a_project_without_maps_says_so_and_points_to_topics_run(home):
    _, records = home
    out = invoke("-", "--project", "nowhere", input=json.dumps(records[0]))
    assert out.exit_code == 1
    assert "project 'nowhere' has no topic maps yet (projects with maps: shop)" in out.output
    assert "topics run --project nowhere" in out.output


def test_a_bad_record_is_reported_with_its_line_and_the_rest_is_labelled(home):
    _, records = home
    text = "\n".join([json.dumps(records[0]), "{broken", json.dumps({"trace_id": "x-1", "what": 1}),
                      json.dumps(records[1])])
    out = CliRunner().invoke(cli, ["classify", "-", "--json"], input=text)
    assert out.exit_code == 1
    assert "<stdin>: line 2: not valid JSON" in out.stderr
    assert "<stdin>: line 3: unknown record shape" in out.stderr
    assert "2 record(s) of <stdin> could not be labelled (reasons above); 2 labelled" in out.stderr
    ids = [json.loads(line)["trace_id"] for line in out.stdout.splitlines()]
    assert ids == [records[0]["trace_id"], records[1]["trace_id"]]


def test_store_ingests_and_stores_the_labels_it_printed(home, tmp_path):
    home, _ = home
    new = generate_traces(n_traces=5, days=2, seed=77, project=PROJECT)
    path = tmp_path / "new.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in new))
    out = CliRunner().invoke(cli, ["classify", str(path), "--json", "--store"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    printed = {(row["trace_id"], f): lab["topic_id"] for line in out.output.splitlines() if line.startswith("{")
               for row in [json.loads(line)] for f, lab in row["facets"].items()}
    assert len(printed) == 15
    stored = stored_labels(home)
    assert {k: stored[k] for k in printed} == printed
    assert "stored: loaded 5" in out.output
