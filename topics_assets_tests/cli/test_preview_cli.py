"""`topics preview`: exactly what the facet model would see, with token counts."""

import json
import re

import pytest
from click.testing import CliRunner

from topics_assets.cli import cli
from topics_assets.config import PreprocessSettings
from topics_assets.ingest import read_file
from topics_assets.preprocess import preprocess
from topics_assets.preprocess.tokens import count_tokens

CHAT = {"id": "c1", "project": "shop", "timestamp": "2026-11-20T10:00:00Z", "messages": [
    {"role": "system", "content": "You are a shop assistant. " + "Follow the returns policy. " * 40},
    {"role": "user", "content": "Where is my parcel? I'm jane@example.com, card 4111 1111 1111 1111."},
    {"role": "assistant", "content": "Let me check that for you."}]}
SPANS = {"trace_id": "s1", "spans": [
    {"id": "r", "type": "task", "name": "agent"},
    {"id": "l1", "parent_id": "r", "type": "llm", "input": [{"role": "user", "content": "hi " * 3000}],
     "output": "hello"},
    {"id": "t1", "parent_id": "r", "type": "tool", "name": "lookup", "error": "timeout"}]}


@pytest.fixture
def topics(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPICS_HOME", str(tmp_path / "home"))
    for var in ("TOPICS_CONFIG", "TOPICS_MAX_TOKENS", "TOPICS_REDACT", "TOPICS_PREPROCESSOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args, env=None):
        return runner.invoke(cli, list(args), catch_exceptions=False, env=env)

    return run


@pytest.fixture
def traces_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join([json.dumps(CHAT), "{broken", json.dumps(SPANS)]) + "\n")
    return path


def test_prints_exactly_the_preprocessed_text_and_the_counts(topics, traces_file):
    r = topics("preview", str(traces_file))
    assert r.exit_code == 0, r.output
    t = next(x for x in read_file(traces_file) if getattr(x, "trace_id", None) == "c1")
    expected = preprocess(t, PreprocessSettings())
    assert r.stdout == expected.text + "\n"  # stdout holds the text alone
    assert "[EMAIL]" in r.stdout and "[CARD]" in r.stdout and "jane@" not in r.stdout
    assert "system prompt shortened" in r.stdout
    assert f"tokens: {expected.tokens_before:,} before -> {expected.tokens_after:,} after (cap 128,000)" in r.stderr
    assert expected.tokens_before > expected.tokens_after == count_tokens(r.stdout[:-1])
    assert "redactions: CARD 1, EMAIL 1" in r.stderr and "trace c1 (chat, project shop)" in r.stderr


def test_a_named_trace_the_cap_and_json(topics, traces_file):
    r = topics("preview", str(traces_file), "--trace", "s1", "--json", env={"TOPICS_MAX_TOKENS": "500"})
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["trace_id"], d["max_tokens"], d["truncated"]) == ("s1", 500, True)
    assert d["tokens_before"] > 3000 and d["tokens_after"] <= 500 == d["max_tokens"]
    assert d["tokens_after"] == count_tokens(d["text"])
    assert re.search(r"\[\.\.\. cut, ~[\d,]+ tokens more\]", d["text"])
    assert d["text"].endswith("[assistant] hello\n\n[tool lookup ERROR] timeout")


def test_prompt_shows_the_whole_facet_request(topics, traces_file):
    r = topics("preview", str(traces_file), "--prompt")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("--- system ---\n") and "--- user ---\n<trace>\n[system] You are a shop" in r.stdout
    assert "- task: What is the user asking" in r.stdout


def test_unknown_and_quarantined_traces_are_explained(topics, traces_file, tmp_path):
    r = topics("preview", str(traces_file), "--trace", "nope")
    assert r.exit_code != 0
    assert "no trace 'nope'" in r.output and "c1, s1" in r.output and "line 2: not valid JSON" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "q1", "messages": "not a list"}) + "\n")
    r = topics("preview", str(bad), "--trace", "q1")
    assert r.exit_code != 0 and "trace q1 is quarantined: line 1: 'messages' must be a list" in r.output


def test_custom_preprocessor_and_its_failure(topics, traces_file, tmp_path, monkeypatch):
    (tmp_path / "preview_custom.py").write_text(
        "def users_only(trace):\n"
        "    return [m for s in trace.spans for m in (s.input or []) if m.role == 'user']\n"
        "def broken(trace):\n"
        "    raise KeyError('no such field')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    r = topics("preview", str(traces_file), env={"TOPICS_PREPROCESSOR": "preview_custom:users_only"})
    assert r.exit_code == 0 and r.stdout.startswith("[user] Where is my parcel?") and "[assistant]" not in r.stdout
    r = topics("preview", str(traces_file), env={"TOPICS_PREPROCESSOR": "preview_custom:broken"})
    assert r.exit_code != 0
    assert "custom preprocessor preview_custom:broken failed on trace c1: KeyError" in r.output
    assert "Traceback (most recent call last)" in r.output and "in broken" in r.output
    r = topics("preview", str(traces_file), env={"TOPICS_PREPROCESSOR": "preview_custom:nope"})
    assert r.exit_code != 0 and "has no attribute 'nope'" in r.output


def test_help_lists_preview(topics):
    assert "preview" in topics("--help").output
    assert "exactly what the facet model would see" in topics("preview", "--help").output
