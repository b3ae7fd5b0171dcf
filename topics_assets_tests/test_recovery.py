"""A run killed mid-way (SIGKILL) and re-run leaves exactly what an uninterrupted run leaves,
and no LLM answer that arrived before the kill is paid for again."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from topics_assets.store import open_store
from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.testing.llm_server import FakeLLMServer

N = 160


def facet_answer(request: dict) -> str:
    """Deterministic facets from the trace text, so two runs can be compared row for row."""
    user = request["messages"][-1]["content"]
    start = user.find("[user]")
    first = user[start + 7:start + 70].split("\n")[0] if start >= 0 else "no request"
    return json.dumps({"task": f"The user asks: {first}", "sentiment": "The user is calm.",
                       "issues": "A tool failed." if "ERROR]" in user else "No issues."})


def _env(tmp_path, name, server, database: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPICS_", "DAGSTER_"))}
    (tmp_path / name / "dagster").mkdir(parents=True)
    env.update(TOPICS_HOME=str(tmp_path / name / "home"), DAGSTER_HOME=str(tmp_path / name / "dagster"),
               TOPICS_LLM_MODEL="openai/test-model", TOPICS_LLM_API_BASE=server.url,
               TOPICS_LLM_API_KEY_ENV="FAKE_KEY", FAKE_KEY="test-key", TOPICS_LLM_MAX_IN_FLIGHT="4")
    env["TOPICS_DATABASE"] = database or os.path.join(env["TOPICS_HOME"], "topics.duckdb")
    return env


def _topics(env, *args):
    return subprocess.Popen([sys.executable, "-m", "topics_assets.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _facet_requests(server) -> int:
    return len(server.requests_to("/chat/completions"))


def _rows(env) -> list[tuple]:
    store = open_store(env["TOPICS_DATABASE"])
    return [tuple(r) for r in store.query_df(
        "SELECT trace_id, facet, text, engine, model FROM facets ORDER BY trace_id, facet").itertuples(index=False)]


@pytest.fixture(params=["duckdb", "postgres"])
def new_database(request):
    """A function giving a fresh store location of the backend: None is the home's DuckDB file."""
    if request.param == "duckdb":
        return lambda: None
    return request.getfixturevalue("postgres_server").create_database


def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, new_database):
    path = tmp_path / "traces.jsonl"
    write_jsonl(generate_traces(n_traces=N, days=2, seed=51, project="shop"), path)
    # The uninterrupted reference runs beside the killed one, against its own server, so its requests
    # are counted apart.
    with FakeLLMServer() as reference_server, FakeLLMServer() as server:
        for s in (reference_server, server):
            s.chat_handler = facet_answer
            s.latency_s = 0.05
        reference = _env(tmp_path, "reference", reference_server, new_database())
        killed = _env(tmp_path, "killed", server, new_database())
        ingests = [_topics(env, "ingest", str(path)) for env in (reference, killed)]
        assert [p.wait(timeout=120) for p in ingests] == [0, 0]
        reference_run = _topics(reference, "run")

        run = _topics(killed, "run")
        deadline = time.monotonic() + 240
        while _facet_requests(server) < N // 2 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        assert run.poll() is None, "the run finished before it could be killed"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        paid_before_kill = _facet_requests(server)
        assert N // 2 <= paid_before_kill < N

        rerun = _topics(killed, "run")
        out = rerun.communicate(timeout=300)[0]
        assert rerun.returncode == 0, out
        total = _facet_requests(server)
        # Answers received before the kill are not asked for again; at most the calls that were in
        # flight at the moment of the kill (4) are repeated.
        assert total <= N + 4, f"{total} facet requests for {N} traces"

        reference_out = reference_run.communicate(timeout=300)[0]
        assert reference_run.returncode == 0, reference_out
        assert _facet_requests(reference_server) == N
        expected = _rows(reference)
        assert len(expected) == 3 * N
        assert _rows(killed) == expected


def _is_naming(body: dict) -> bool:
    return ((body.get("response_format") or {}).get("json_schema") or {}).get("name") == "topic_name"


def _naming_requests(server) -> int:
    return sum(_is_naming(b) for _, b, _ in server.requests_to("/chat/completions"))


def test_a_kill_during_naming_keeps_the_names_already_paid_for(tmp_path):
    """Killed while naming topics, the rerun asks only for the names it had not received: no naming
    request is sent twice, but for the calls in flight at the kill (4)."""
    path = tmp_path / "traces.jsonl"
    write_jsonl(generate_traces(n_traces=240, days=2, seed=52, project="shop"), path)
    subjects = ["a refund for a broken blender", "changing a flight to Tuesday", "resetting a bank password",
                "a late pizza delivery", "upgrading a phone contract", "booking a hotel in Rome",
                "cancelling a gym membership", "a missing parcel from the warehouse", "a wrong invoice total",
                "a noisy washing machine", "moving a dentist appointment", "a locked streaming account"]

    def answer(body):
        if not _is_naming(body):
            h = int(hashlib.sha256(body["messages"][-1]["content"].encode()).hexdigest(), 16)
            return json.dumps({"task": f"The user wants {subjects[h % len(subjects)]} (case {h % 97})."})
        time.sleep(0.2)  # naming takes long enough to be killed in the middle of
        keywords = body["messages"][1]["content"].split("\n", 2)[1]
        return json.dumps({"name": f"Topic {keywords[10:40]}", "description": "A cluster."})

    config = tmp_path / "topics.yaml"
    config.write_text("facets: [task]\n")  # one map: the run's time goes into naming
    with FakeLLMServer(chat_handler=answer) as server:
        env = {**_env(tmp_path, "killed", server, None), "TOPICS_MIN_TRACES": "50", "TOPICS_MIN_UNIQUE_FACETS": "10",
               "TOPICS_CONFIG": str(config)}
        assert _topics(env, "ingest", str(path)).wait(timeout=120) == 0
        run = _topics(env, "run")
        deadline = time.monotonic() + 300
        while _naming_requests(server) < 6 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        assert run.poll() is None, "the run finished before it could be killed"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        paid = _naming_requests(server)

        rerun = _topics(env, "run")
        out = rerun.communicate(timeout=400)[0]
        assert rerun.returncode == 0, out
        asked = [json.dumps(b["messages"]) for _, b, _ in server.requests_to("/chat/completions") if _is_naming(b)]
        assert len(asked) > paid + 2, out  # the map had names left to ask for after the kill
        assert len(asked) - len(set(asked)) <= 4, f"{len(asked) - len(set(asked))} of {paid} paid names asked again"
        names = open_store(env["TOPICS_DATABASE"]).query_df("SELECT name FROM topic_maps").name
        assert names.str.startswith("Topic ").all()
        assert not list((tmp_path / "killed" / "home" / "journal").glob("naming-*"))  # dropped once the map landed
