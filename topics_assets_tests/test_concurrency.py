"""Two real processes on one store (a DuckDB file, or PostgreSQL) and one Dagster instance: both runs
finish, nothing doubles, and no trace is paid for twice (the runs claim the traces they facet)."""

import json
import os
import subprocess
import sys

from topics_assets.store import open_store
from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.testing.llm_server import FakeLLMServer

N = 150


def _is_naming(body: dict) -> bool:
    """A request naming a topic or a parent over topics (the rest are facet requests)."""
    return ((body.get("response_format") or {}).get("json_schema") or {}).get("name") in ("topic_name",
                                                                                          "topic_parent_name")


def _answer(body: dict) -> str:
    """Facets from the trace's first request line (varied enough for maps), or a topic's name."""
    user = body["messages"][-1]["content"]
    if _is_naming(body):
        return json.dumps({"name": f"Topic {len(user) % 89}", "description": "A cluster."})
    start = user.find("[user]")
    first = user[start + 7:start + 70].split("\n")[0] if start >= 0 else "no request"
    return json.dumps({"task": f"The user asks: {first}", "sentiment": f"The user is calm about {first[:40]}.",
                       "issues": ("A tool failed on " if "ERROR]" in user else "No issues with ") + first[:40]})


def _topics(env, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "topics_assets.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _env(tmp_path, database: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPICS_", "DAGSTER_"))}
    env.update(TOPICS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dagster"),
               TOPICS_MIN_TRACES="100", TOPICS_MIN_UNIQUE_FACETS="10", TOPICS_DATABASE=database)
    (tmp_path / "dagster").mkdir()
    return env


def test_two_runs_at_once_both_complete(tmp_path, backend_settings):
    env = _env(tmp_path, backend_settings.database or str(tmp_path / "home" / "topics.duckdb"))
    path = tmp_path / "traces.jsonl"
    write_jsonl(generate_traces(n_traces=N, days=3, seed=31, project="shop"), path)
    assert _topics(env, "ingest", str(path)).wait(timeout=120) == 0
    # LLM facets, slow enough (0.2 s a call, 4 at a time: seconds a day) that the two runs facet at once.
    with FakeLLMServer(chat_handler=_answer, latency_s=0.2) as server:
        env.update(TOPICS_LLM_MODEL="openai/test-model", TOPICS_LLM_API_BASE=server.url,
                   TOPICS_LLM_API_KEY_ENV="FAKE_KEY", FAKE_KEY="test-key", TOPICS_LLM_MAX_IN_FLIGHT="4")
        # A processing run and a map regeneration, launched together, as a backfill and the schedule would be.
        first = _topics(env, "run")
        second = _topics(env, "run", "--regenerate")
        outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
        facet_calls = sum(not _is_naming(b) for _, b, _ in server.requests_to("/chat/completions"))
    for p, out in zip((first, second), outputs):
        assert p.returncode == 0, out
        assert "Could not set lock" not in out
    # Each trace paid for once: the run that came second skipped what the other held, and said so.
    assert facet_calls == N, outputs
    assert any("traces skipped: another run is working on them (process " in out for out in outputs), outputs
    store = open_store(env["TOPICS_DATABASE"])
    counts = store.query_df("""SELECT (SELECT count(*) FROM traces) AS traces,
                                      (SELECT count(*) FROM facets) AS facets,
                                      (SELECT count(*) FROM (SELECT trace_id, facet FROM trace_topics) tt) AS labels""")
    assert counts.to_dict("records") == [{"traces": N, "facets": 3 * N, "labels": 3 * N}]
    dupes = store.query_df("""SELECT trace_id, facet, generation FROM classifications
                              GROUP BY trace_id, facet, generation HAVING count(*) > 1""")
    assert dupes.empty
    status = _topics(env, "sql", "SELECT facet, max(generation) g FROM topic_map_generations GROUP BY 1",
                     "--format", "json")
    gens = {r["facet"]: r["g"] for r in json.loads(status.communicate(timeout=60)[0].splitlines()[-1])}
    assert set(gens) == {"task", "sentiment", "issues"}
