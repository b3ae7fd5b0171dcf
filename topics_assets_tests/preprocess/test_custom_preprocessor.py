"""Custom preprocessors: a callable named in config picks what the facet model sees."""

import json
import textwrap

import pytest

from topics_assets.config import ConfigError, PreprocessSettings, load_settings
from topics_assets.ingest import parse_record
from topics_assets.preprocess import CustomPreprocessorError, load_custom, preprocess
from topics_assets.traces import Message, Span, Trace

MODULE = '''
from topics_assets.traces import Message


def last_exchange(trace):
    """Keep only the user's last message and the final answer."""
    messages = [m for s in trace.spans if s.type == "llm" for m in (s.input or []) + (s.output or [])]
    users = [m for m in messages if m.role == "user"]
    answers = [m for m in messages if m.role == "assistant" and m.content]
    return users[-1:] + answers[-1:]


def no_tools(trace):
    """Keep every span but the tool spans."""
    return [s for s in trace.spans if s.type != "tool"]


def as_dicts(trace):
    return [{"role": "user", "content": "mail me at bob@example.com"}]


def explode_on_vip(trace):
    if trace.trace_id == "vip":
        return _helper(trace)
    return no_tools(trace)


def _helper(trace):
    raise ValueError("VIP traces are not for analytics")


def returns_number(trace):
    return 42


def mutates(trace):
    trace.spans.clear()
    return []


class Policies:
    @staticmethod
    def drop_system(trace):
        return [m for s in trace.spans for m in (s.input or []) if m.role != "system"]
'''


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    name = f"my_preprocessors_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def chat(trace_id="t1"):
    (t,) = parse_record(
        {
            "id": trace_id,
            "messages": [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": "My card was charged twice."},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_charges", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "two charges of $20"},
                {"role": "user", "content": "Please refund one."},
                {"role": "assistant", "content": "Refunded one $20 charge."},
            ],
        },
        "mem",
        None,
    )
    t.spans.append(Span("tool", "tool", name="get_charges", output="two charges of $20",
                        metadata={"tool_call_id": "c1"}))
    return t


def test_returned_messages_replace_the_conversation_and_still_pass_redaction_and_the_cap(custom_module):
    out = preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:last_exchange"))
    assert out.text == "[user] Please refund one.\n\n[assistant] Refunded one $20 charge."
    assert out.n_spans == 2  # spans of the trace as ingested
    out = preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:as_dicts"))
    assert out.text == "[user] mail me at [EMAIL]" and out.redactions == {"EMAIL": 1}
    out = preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:Policies.drop_system"))
    assert not out.text.startswith("[system]") and out.text.startswith("[user] My card was charged twice.")
    capped = preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:Policies.drop_system", max_tokens=20))
    assert capped.tokens_after <= 20 and capped.truncated


def test_returned_spans_are_walked_like_any_trace(custom_module):
    full = preprocess(chat(), PreprocessSettings())
    kept = preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:no_tools"))
    assert full.text == kept.text  # the tool result is also in the conversation: nothing lost
    t = chat()
    t.spans.append(Span("audit", "tool", name="audit_log", output="logged the refund"))  # not in the conversation
    assert "[tool audit_log] logged the refund" in preprocess(t, PreprocessSettings()).text
    assert "logged the refund" not in preprocess(t, PreprocessSettings(custom=f"{custom_module}:no_tools")).text


def test_the_callable_gets_a_copy(custom_module):
    t = chat()
    before = t.to_json()
    assert preprocess(t, PreprocessSettings(custom=f"{custom_module}:mutates")).text == ""
    assert t.to_json() == before


def test_errors_carry_the_callables_message_and_traceback(custom_module):
    settings = PreprocessSettings(custom=f"{custom_module}:explode_on_vip")
    assert preprocess(chat("ordinary"), settings).text  # other traces are fine
    with pytest.raises(CustomPreprocessorError) as e:
        preprocess(chat("vip"), settings)
    assert str(e.value) == (
        f"custom preprocessor {custom_module}:explode_on_vip failed on trace vip: "
        "ValueError: VIP traces are not for analytics"
    )
    assert "in explode_on_vip" in e.value.details and "in _helper" in e.value.details
    assert f"{custom_module}.py" in e.value.details
    assert e.value.details.rstrip().endswith("ValueError: VIP traces are not for analytics")
    with pytest.raises(CustomPreprocessorError, match="returned int on trace t1; expected a list of Message"):
        preprocess(chat(), PreprocessSettings(custom=f"{custom_module}:returns_number"))


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("no_colon_here", "must look like 'package.module:function'"),
        ("surely_not_a_module_xyz:fn", "cannot import 'surely_not_a_module_xyz': ModuleNotFoundError"),
        ("{mod}:missing", "has no attribute 'missing'"),
        ("{mod}:MODULE_CONSTANT_THAT_IS_NOT_THERE", "has no attribute"),
    ],
)
def test_a_bad_setting_is_a_config_error(custom_module, spec, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_custom(spec.format(mod=custom_module))


def test_not_callable(custom_module, tmp_path):
    (tmp_path / f"{custom_module}_c.py").write_text("VALUE = 3\n")
    with pytest.raises(ConfigError, match="'VALUE' is not callable"):
        load_custom(f"{custom_module}_c:VALUE")


def test_env_var_names_it():
    assert load_settings(env={"TOPICS_PREPROCESSOR": "pkg.mod:fn"}).preprocess.custom == "pkg.mod:fn"


def _ingest(settings, tmp_path, ids):
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.store import DuckDBStore

    path = tmp_path / "chats.jsonl"
    rows = []
    for i in ids:
        rows.append(json.dumps({"id": i, "timestamp": "2026-11-20T10:00:00Z", "messages": [
            {"role": "user", "content": f"Hello from {i}, reach me at {i}@example.com"},
            {"role": "assistant", "content": "Hi!"}]}))
    path.write_text("\n".join(rows) + "\n")
    store = DuckDBStore(settings.database_path)
    summary = ingest_paths(store=store, settings=settings, paths=[str(path)])
    return store, summary.days


def test_a_failing_custom_preprocessor_fails_that_trace_not_the_run(custom_module, settings, tmp_path):
    from topics_assets.facets.stage import facet_days
    from topics_assets.preprocess.stage import preprocess_days

    settings.preprocess.custom = f"{custom_module}:explode_on_vip"
    store, days = _ingest(settings, tmp_path, ["a", "vip", "b"])
    meta = preprocess_days(store=store, settings=settings, days=days)
    assert set(meta.to_metadata()) == {"raw_traces", "preprocessed", "unchanged", "failed", "tokens_before", "tokens_after",
                         "redactions", "with_errors", "seconds"}
    assert (meta.preprocessed, meta.failed) == (2, 1)
    assert meta.redactions == {"EMAIL": 2}  # counts reach run metadata
    rows = store.query_df("SELECT trace_id, status, error FROM traces ORDER BY trace_id")
    assert list(rows.status) == ["ok", "ok", "failed"]
    error = rows.error[2]
    assert error.startswith(f"custom preprocessor {custom_module}:explode_on_vip failed on trace vip: ValueError: "
                            "VIP traces are not for analytics\nTraceback (most recent call last):")
    assert "in _helper" in error and f"{custom_module}.py" in error
    assert facet_days(store=store, settings=settings, days=days).to_metadata()["traces"] == 2  # the failed trace is not faceted
    # Fixed (another function): every trace is preprocessed with it, the failed one now succeeds ...
    settings.preprocess.custom = f"{custom_module}:no_tools"
    meta = preprocess_days(store=store, settings=settings, days=days)
    assert (meta.preprocessed, meta.unchanged, meta.failed) == (3, 0, 0)
    assert list(store.query_df("SELECT status FROM traces ORDER BY trace_id").status) == ["ok", "ok", "ok"]
    # ... and with the same settings nothing is redone.
    meta = preprocess_days(store=store, settings=settings, days=days)
    assert (meta.preprocessed, meta.unchanged, meta.failed) == (0, 3, 0)


def test_an_unloadable_custom_preprocessor_fails_the_run_up_front(settings, tmp_path):
    from topics_assets.preprocess.stage import preprocess_days

    store, days = _ingest(settings, tmp_path, ["a"])
    settings.preprocess.custom = "nowhere_to_be_found:fn"
    with pytest.raises(ConfigError, match="cannot import 'nowhere_to_be_found'"):
        preprocess_days(store=store, settings=settings, days=days)
    assert store.query_df("SELECT count(*) n FROM traces").n[0] == 0


def test_message_and_span_lists_are_not_mixed(custom_module, tmp_path):
    (tmp_path / f"{custom_module}_m.py").write_text(
        "from topics_assets.traces import Message, Span\n"
        "def mixed(trace):\n    return [Message('user', 'x'), Span('s')]\n"
        "def bad_dict(trace):\n    return [{'role': 'user', 'text': 'x'}]\n"
    )
    with pytest.raises(CustomPreprocessorError, match="returned a list of Message, Span"):
        preprocess(chat(), PreprocessSettings(custom=f"{custom_module}_m:mixed"))
    with pytest.raises(CustomPreprocessorError, match="not a message .*keys allowed: role, content"):
        preprocess(chat(), PreprocessSettings(custom=f"{custom_module}_m:bad_dict"))


def test_a_trace_can_be_returned_whole(tmp_path, monkeypatch):
    calls = []

    def keep(trace: Trace) -> Trace:
        calls.append(trace.trace_id)
        trace.spans = [Span("only", "llm", input=[Message("user", "just this")])]
        return trace

    assert preprocess(chat(), PreprocessSettings(), custom=keep).text == "[user] just this"
    assert calls == ["t1"]
