"""Settings: pydantic models whose errors name the key and the file, and hashes that never drift."""

import re

import pytest
from pydantic import ValidationError

from topics_assets.config import ConfigError, FacetSpec, Settings, load_settings


def load_yaml(tmp_path, text: str) -> Settings:
    cfg = tmp_path / "topics.yaml"
    cfg.write_text(text)
    return load_settings(cfg, env={})


def config_error(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path, text)
    return str(err.value)


def test_hashes_of_stored_rows_are_the_ones_the_dataclasses_gave():
    # Pinned: a changed value makes every stored trace be preprocessed again after an upgrade. The
    # preprocess hashes changed on purpose with PREPROCESS_VERSION 2 (the outcome header) and 3 (redaction
    # of decoded strings before any cut: what a stored trace's text holds changed).
    s = load_settings(env={})
    assert (s.preprocess_hash(), s.facets_hash()) == ("82a4d650c612dded", "9db6fb76ef590f1f")
    s.preprocess.extra_patterns = {"order_id": r"ZX-\d+"}
    s.preprocess.max_tokens = 2000
    s.preprocess.custom = "pkg.mod:fn"
    s.facets = s.facets + [FacetSpec("resolution", "How did it end?", kind="enum",
                                     categories=["resolved", "escalated"])]
    assert (s.preprocess_hash(), s.facets_hash()) == ("c521aae38def5a36", "17c7c5c4a78f8f46")


def test_a_file_sets_values_and_env_vars_win(tmp_path):
    cfg = tmp_path / "topics.yaml"
    cfg.write_text("partitions_start: 2025-03-01\n"  # unquoted: YAML reads a date
                   "facets: [task, {name: product, prompt: Which product}]\n"
                   "llm: {model: openai/gpt-4o-mini, max_in_flight: '4'}\n"
                   "cluster: {min_cluster_size: 12, threshold: 0.4}\n"
                   "preprocess: {extra_patterns: {order_id: 'ZX-\\d+'}}\n")
    s = load_settings(cfg, env={"TOPICS_MIN_TRACES": "10", "TOPICS_THRESHOLD": "none", "TOPICS_REDACT": "off",
                                "TOPICS_MIN_CLUSTER_SIZE": ""})
    assert s.partitions_start == "2025-03-01"
    assert s.facet_names == ["task", "product"] and s.facet("task").prompt.startswith("What is the user")
    assert (s.llm.model, s.llm.max_in_flight) == ("openai/gpt-4o-mini", 4)
    assert s.gates.min_traces == 10 and s.preprocess.redact is False
    assert s.cluster.threshold is None and s.cluster.min_cluster_size is None
    assert s.preprocess.extra_patterns == {"order_id": r"ZX-\d+"}


def test_an_unknown_key_names_the_file_the_key_and_the_known_ones(tmp_path):
    message = config_error(tmp_path, "cluster:\n  min_cluster_sise: 3\n")
    assert message.startswith(f"{tmp_path / 'topics.yaml'}: cluster.min_cluster_sise: unknown setting; known: ")
    assert "min_cluster_size" in message and "n_neighbors" in message
    assert "home, ingest, insight, llm" in config_error(tmp_path, "bogus: 1\n")


@pytest.mark.parametrize("text,needle", [
    ("gates:\n  min_traces: abc\n", "topics.yaml: gates.min_traces: Input should be a valid integer"),
    ("gates:\n  min_traces: abc\n", "(got 'abc')"),
    ("llm:\n  max_in_flight: 2.5\n", "topics.yaml: llm.max_in_flight: Input should be a valid integer"),
    ("cluster: 5\n", "topics.yaml: cluster: must be a mapping (got 5)"),
    ("facets: [tsk]\n", "topics.yaml: facets: 'tsk' is not a built-in facet (task, sentiment, issues)"),
    ("facets:\n  - name: mood\n    prompt: x\n    schema: {}\n",
     "topics.yaml: facets[0] (mood): unexpected keyword 'schema'; a facet has: categories, kind, name, prompt"),
    ("facets:\n  - kind: text\n", "topics.yaml: facets[0].name: required"),
    ("facets:\n  - name: mood\n    kind: vibes\n    prompt: Mood?\n", "topics.yaml: facet 'mood': kind must be"),
    ("facets: [task, task]\n", "topics.yaml: facet names must be unique"),
])
def test_a_bad_value_names_the_file_and_the_key(tmp_path, text, needle):
    assert needle in config_error(tmp_path, text)


def test_every_bad_key_is_reported_at_once(tmp_path):
    lines = config_error(tmp_path, "gates: {min_traces: abc, min_unique_facets: xyz}\n").splitlines()
    assert [line.split(": ")[1] for line in lines] == ["gates.min_traces", "gates.min_unique_facets"]


@pytest.mark.parametrize("env,needle", [
    ({"TOPICS_MIN_TRACES": "abc"}, "TOPICS_MIN_TRACES='abc': gates.min_traces: Input should be a valid integer"),
    ({"TOPICS_REDACT": "maybe"}, "TOPICS_REDACT='maybe': preprocess.redact: Input should be a valid boolean"),
    ({"TOPICS_THRESHOLD": "far"}, "TOPICS_THRESHOLD='far': cluster.threshold:"),
])
def test_a_bad_env_var_is_named(env, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_settings(env=env)


def test_models_stay_mutable_and_validate_assignments():
    s = load_settings(env={})
    s.gates.min_traces = "10"
    assert s.gates.min_traces == 10
    with pytest.raises(ValidationError, match="min_traces"):
        s.gates.min_traces = "many"
    with pytest.raises(ValidationError, match="Extra inputs"):
        Settings(home="x", homedir="y")
    finer = s.cluster.model_copy(update={"min_cluster_size": 3})
    assert finer.min_cluster_size == 3 and s.cluster.min_cluster_size is None


def test_facet_spec_takes_positional_arguments_and_builtins_are_copies():
    spec = FacetSpec("mood", "How does the user feel?", "enum", ["happy", "sad"])
    assert (spec.name, spec.kind, spec.categories) == ("mood", "enum", ["happy", "sad"])
    assert FacetSpec(**vars(spec)) == spec
    a, b = Settings(), Settings()
    a.facets[0].prompt = "changed"
    assert b.facets[0].prompt != "changed"
