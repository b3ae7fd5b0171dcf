"""The `topics` command when things go wrong: failing endpoints, hostile SQL, damaged or full stores."""

import json

import pytest
from click.testing import CliRunner

from topics_assets.cli import cli
from topics_assets.demo import generate_traces
from topics_assets.testing.llm_server import FakeLLMServer, schema_answer


@pytest.fixture
def topics(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    monkeypatch.delenv("TOPICS_CONFIG", raising=False)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run


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
