"""The `topics` command when things go wrong: failing endpoints, hostile SQL, damaged or full stores."""

import hashlib
import json

import pytest

from topics_assets.demo import generate_traces
from topics_assets.testing.llm_server import FakeLLMServer, schema_answer


def write_traces(tmp_path, n=12, days=2):
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in generate_traces(n_traces=n, days=days, seed=5, project="shop")))
    return path


@pytest.fixture
def llm(monkeypatch):
    """An LLM endpoint for the CLI: FakeLLMServer answering every facet schema, no retries."""
    with FakeLLMServer(chat_handler=schema_answer) as server:
        monkeypatch.setenv("TOPICS_LLM_MODEL", "openai/test-model")
        monkeypatch.setenv("TOPICS_LLM_API_BASE", server.url)
        monkeypatch.setenv("TOPICS_LLM_API_KEY_ENV", "TEST_LLM_KEY")
        monkeypatch.setenv("TEST_LLM_KEY", "test-key")
        monkeypatch.setenv("TOPICS_LLM_MAX_RETRIES", "0")
        yield server


# ----- exit codes: a run that achieved nothing because everything failed is a failure ------------------

def test_a_run_whose_every_llm_call_failed_exits_non_zero_with_the_reasons(topics, tmp_path, llm):
    assert topics("ingest", str(write_traces(tmp_path))).exit_code == 0
    llm.fail_all = (500, {})
    result = topics("run")
    assert result.exit_code == 1, result.output
    assert "facets: no progress, 12 failed (server_error 12)" in result.output
    # Once the endpoint answers, the same traces are faceted and the run exits 0 (the gates only defer maps).
    llm.fail_all = None
    result = topics("run")
    assert result.exit_code == 0, result.output
    assert "no map yet" in result.output


def test_a_run_with_some_failures_and_some_progress_exits_zero(topics, tmp_path, llm):
    assert topics("ingest", str(write_traces(tmp_path))).exit_code == 0
    llm.faults.extend([("status", 500, {})] * 3)
    result = topics("run")
    assert result.exit_code == 0, result.output
    failed = json.loads(topics("sql", "SELECT count(*) AS n FROM facet_failures", "--format", "json").output)
    assert failed == [{"n": 3}]


def test_a_map_whose_every_name_failed_exits_non_zero_and_says_how_to_name_it_again(topics, tmp_path, llm,
                                                                                    monkeypatch):
    """The map still lands and labels traces (under keyword names), but a run that named nothing of it
    says so and exits 1, as any stage that finished nothing does; names that come back exit 0."""
    subjects = ["a refund for a broken blender", "changing a flight to Tuesday", "resetting a bank password",
                "a late pizza delivery", "booking a hotel in Rome", "cancelling a gym membership"]

    def answer(body):
        if ((body.get("response_format") or {}).get("json_schema") or {}).get("name") == "topic_name":
            return json.dumps({"name": "Named by the LLM", "description": "A cluster."})
        h = int(hashlib.sha256(body["messages"][-1]["content"].encode()).hexdigest(), 16)
        return json.dumps({"task": f"The user wants {subjects[h % len(subjects)]}."})

    llm.chat_handler = answer
    (tmp_path / "topics.yaml").write_text("facets: [task]\n")
    monkeypatch.setenv("TOPICS_CONFIG", str(tmp_path / "topics.yaml"))
    monkeypatch.setenv("TOPICS_MIN_TRACES", "40")
    monkeypatch.setenv("TOPICS_MIN_UNIQUE_FACETS", "5")
    assert topics("ingest", str(write_traces(tmp_path, n=90, days=1))).exit_code == 0
    monkeypatch.setenv("TOPICS_MIN_TRACES", "1000")  # facets first, no map yet
    assert topics("run").exit_code == 0
    monkeypatch.setenv("TOPICS_MIN_TRACES", "40")
    llm.fail_all = (503, {})  # the naming calls now fail
    result = topics("run")
    assert result.exit_code == 1, result.output
    assert "maps generated: shop/task" in result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("shop/task: naming "))
    assert " failed (server_error " in line and ", 0 named" in line and "run --project shop --regenerate" in line
    labels = json.loads(topics("sql", "SELECT count(*) AS n FROM trace_topics", "--format", "json").output)
    assert labels == [{"n": 90}]  # the map labels traces all the same
    llm.fail_all = None
    result = topics("run", "--project", "shop", "--regenerate")
    assert result.exit_code == 0, result.output
    assert "naming" not in result.output


# ----- topics sql: one statement, read-only by default ---------------------------------------------

def test_sql_runs_one_statement_and_never_a_hidden_second(topics, tmp_path):
    assert topics("ingest", str(write_traces(tmp_path, n=3, days=1))).exit_code == 0
    for args in (["SELECT 1; DROP TABLE classifications"], ["--write", "SELECT 1; DROP TABLE classifications"]):
        result = topics("sql", *args)
        assert result.exit_code == 1, result.output
        assert "one SQL statement per call, and this query has 2" in result.output
    assert topics("sql", "SELECT count(*) AS n FROM classifications", "--format", "csv").output == "n\n0\n"
    refused = topics("sql", "DROP TABLE classifications")
    assert refused.exit_code == 1 and "read-only" in refused.output


# ----- stores that cannot be used: one line and exit 1, the store left as it was --------------------

def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    return line


def test_a_truncated_store_is_refused_by_every_command(topics, tmp_path):
    traces = write_traces(tmp_path, n=200, days=2)
    assert topics("ingest", str(traces)).exit_code == 0
    db = tmp_path / "home" / "topics.duckdb"
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    before = db.read_bytes()
    for args in (["status"], ["run"], ["ingest", str(traces)], ["sql", "SELECT 1"], ["maps"]):
        line = one_error_line(topics(*args))
        assert "the store is damaged" in line and "backup" in line and "move it aside" in line, (args, line)
    assert db.read_bytes() == before


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_store_with_a_dropped_table_is_refused_not_refilled_empty(topics, tmp_path, monkeypatch, request, backend):
    if backend == "postgres":
        monkeypatch.setenv("TOPICS_DATABASE", request.getfixturevalue("postgres_server").create_database())
    assert topics("ingest", str(write_traces(tmp_path, n=3, days=1))).exit_code == 0
    assert topics("sql", "--write", "DROP TABLE facets CASCADE").exit_code == 0
    for args in (["status"], ["run"]):
        line = one_error_line(topics(*args))
        assert "lacks table(s) facets" in line and "backup" in line, line


# ----- a full disk: one line naming the file and the space, the store as it was, recovery after ------------

@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own (needs root, or a mount the system permits); filled and freed at will."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no `mount` command: a small filesystem of its own cannot be made here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave: int = 40_000):
    """Fill the disk until `leave` bytes are free."""
    import os

    st = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_a_full_disk_is_one_line_the_store_stays_as_it_was_and_recovers(topics, tmp_path, monkeypatch, small_disk):
    monkeypatch.setenv("TOPICS_HOME", str(small_disk / "home"))
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in generate_traces(n_traces=20, days=2, seed=5, project="shop")))
    more = tmp_path / "more.jsonl"
    more.write_text("\n".join(json.dumps(r) for r in generate_traces(n_traces=300, days=2, seed=6, project="shop")))
    assert topics("ingest", str(first)).exit_code == 0

    fill(small_disk)
    for args in (["ingest", str(more)], ["run"]):
        line = one_error_line(topics(*args))
        assert line.startswith(f"Error: disk full writing {small_disk / 'home' / 'topics.duckdb'}"), line
        assert "free there now on" in line and "run again" in line, line

    (small_disk / "filler").unlink()
    # The failed writes left nothing behind; what was written before them (a day the run had done) is whole.
    counts = topics("sql", "SELECT (SELECT count(*) FROM raw_traces) AS raw, (SELECT count(*) FROM traces "
                           "WHERE status <> 'ok' OR content IS NULL) AS broken", "--format", "json")
    assert json.loads(counts.output) == [{"raw": 20, "broken": 0}]
    assert "loaded 300" in topics("ingest", str(more)).output
    result = topics("run")
    assert result.exit_code == 0, result.output
    faceted = json.loads(topics("sql", "SELECT count(DISTINCT trace_id) AS n FROM facets", "--format", "json").output)
    assert faceted == [{"n": 320}]
