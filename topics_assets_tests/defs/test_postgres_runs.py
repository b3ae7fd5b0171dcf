"""Production set-up on one machine: the store and Dagster's instance on PostgreSQL, runs at once.

Four day partitions of `process_days` run in four processes at the same time, with LLM facets
from the loopback server, on the instance that docs/dagster.postgres.yaml describes (loaded as
shipped). Every trace must land exactly once and be paid for once.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from topics_assets.config import load_settings
from topics_assets.defs.assets import DUCKDB_POOL
from topics_assets.definitions import build_defs
from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.ingest.stage import ingest_paths
from topics_assets.store import open_store
from topics_assets.testing.llm_server import FakeLLMServer, schema_answer

REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "TOPICS_TEST_PG_LLM_KEY"
RUN_ONE_DAY = """
import sys
from dagster import DagsterInstance
from topics_assets.config import load_settings
from topics_assets.definitions import build_defs
result = build_defs(load_settings()).resolve_job_def("process_days").execute_in_process(
    instance=DagsterInstance.get(), partition_key=sys.argv[1], raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def _instance_home(tmp_path: Path, postgres_server) -> tuple[Path, dict]:
    """DAGSTER_HOME holding docs/dagster.postgres.yaml as shipped, and the env it reads."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "docs" / "dagster.postgres.yaml", home / "dagster.yaml")
    db = postgres_server.create_database("dagster")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(postgres_server.port),
           "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": db.rsplit("/", 1)[1]}
    return home, env


def test_writers_leave_the_duckdb_pool_on_postgres(postgres_database):
    pg = load_settings(env={"TOPICS_DATABASE": postgres_database})
    duck = load_settings(env={})
    for settings, pools in ((pg, set()), (duck, {DUCKDB_POOL})):
        graph = build_defs(settings).resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            assert set(graph.get(key).pools) == pools, (key, settings.database_path)


def test_four_day_partitions_at_once_on_postgres(tmp_path, postgres_server, monkeypatch):
    database = postgres_server.create_database()
    _, dagster_env = _instance_home(tmp_path, postgres_server)
    monkeypatch.setenv(KEY_ENV, "sk-test")
    with FakeLLMServer(chat_handler=schema_answer, latency_s=0.05) as server:
        config = tmp_path / "topics.yaml"
        config.write_text(yaml.safe_dump({
            "home": str(tmp_path / "home"), "database": database, "partitions_start": "2025-01-01",
            "llm": {"model": "openai/test-model", "api_base": server.url, "api_key_env": KEY_ENV,
                    "max_in_flight": 4, "backoff_base_s": 0.01}}))
        settings = load_settings(config, env={})
        traces = tmp_path / "traces.jsonl"
        write_jsonl(generate_traces(n_traces=160, days=4, seed=11, project="shop"), traces)
        summary = ingest_paths(store=open_store(database), settings=settings, paths=[str(traces)])
        assert summary.loaded == 160 and len(summary.days) == 4

        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPICS_", "DAGSTER_"))}
        env.update(dagster_env, TOPICS_CONFIG=str(config), **{KEY_ENV: "sk-test"})
        # Dagster's tables are created once, before any process uses them (docs/deploy.md says so).
        subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True,
                       capture_output=True, timeout=300)
        runs = [subprocess.Popen([sys.executable, "-c", RUN_ONE_DAY, day], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for day in summary.days]
        outputs = [p.communicate(timeout=600)[0] for p in runs]
        for p, out in zip(runs, outputs):
            assert p.returncode == 0, out[-3000:]
        chat_calls = len(server.requests_to("/chat/completions"))

    store = open_store(database)
    counts = store.query_df("""SELECT (SELECT count(*) FROM traces WHERE status = 'ok') AS traces,
                                      (SELECT count(*) FROM facets) AS facets,
                                      (SELECT count(DISTINCT trace_id) FROM facets) AS faceted""").iloc[0]
    assert (counts.traces, counts.faceted, counts.facets) == (160, 160, 160 * len(settings.facets))
    assert store.query_df("""SELECT trace_id, facet FROM facets GROUP BY trace_id, facet
                             HAVING count(*) > 1""").empty
    assert chat_calls == 160  # each trace paid for once, however the runs interleaved

    # The four runs are in Dagster's PostgreSQL instance, each with its own partition's figures.
    from dagster import AssetKey, DagsterInstance

    os.environ.update(dagster_env)
    try:
        with DagsterInstance.get() as instance:
            mats = instance.fetch_materializations(AssetKey("facets"), limit=10).records
            assert sorted(m.partition_key for m in mats) == summary.days
            assert sum(m.asset_materialization.metadata["faceted"].value for m in mats) == 160
    finally:
        for k in dagster_env:
            os.environ.pop(k, None)
