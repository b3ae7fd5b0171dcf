"""Ad hoc clustering: any filtered subset, from the CLI or the launchpad, never persisted."""

from click.testing import CliRunner
from dagster import instance_for_test

from topics_assets.cli import cli
from topics_assets.definitions import build_defs
from topics_assets.defs.runner import RunSummary, run_days
from topics_assets.ingest.stage import ingest_paths
from topics_assets.store import DuckDBStore
from topics_assets.demo import generate_traces, write_jsonl


def test_adhoc_cluster_job_and_cli_on_a_subset(settings, tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    write_jsonl(generate_traces(n_traces=200, days=2, seed=41, project="shop"), path)
    store = DuckDBStore(settings.database_path)
    days = ingest_paths(store=store, settings=settings, paths=[str(path)]).days
    defs = build_defs(settings)
    with instance_for_test() as instance:
        run_days(defs, instance, days, RunSummary())
        config = {"ops": {"cluster_subset": {"config": {"project": "shop", "facet": "task",
                                                          "where": f"t.day = DATE '{days[-1]}'"}}}}
        result = defs.resolve_job_def("adhoc_cluster").execute_in_process(instance=instance, run_config=config)
    assert result.success
    out = result.output_for_node("cluster_subset")
    n_day = store.query_df("SELECT count(*) n FROM traces WHERE day = ?", [days[-1]]).n[0]
    assert out["n_facets"] == n_day < 200 and out["n_topics"] >= 2
    mats = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = mats[0].event_specific_data.metadata
    assert "| topic_id | name |" in meta["topics"].value
    assert store.query_df("SELECT count(*) n FROM topic_map_generations").n[0] == 0  # not persisted

    monkeypatch.setenv("TOPICS_HOME", settings.home)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    cli_out = CliRunner().invoke(cli, ["cluster", "--project", "shop", "--facet", "issues"], catch_exceptions=False)
    assert cli_out.exit_code == 0, cli_out.output
    assert "200 issues facets in shop" in cli_out.output and "topic" in cli_out.output
    bad = CliRunner().invoke(cli, ["cluster", "--project", "shop", "--where", "t.no_such_column = 1"])
    assert bad.exit_code != 0 and "no_such_column" in bad.output
