"""topics_assets.llm against FakeLLMServer: real litellm over a real socket, no monkeypatching."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from topics_assets.config import LLMSettings
from topics_assets.embed.remote import embed_texts, estimate_tokens, voyage_batches
from topics_assets.llm.client import litellm_module
from topics_assets.llm import (
    LLMClient,
    LLMError,
    LLMOutputError,
    classify_error,
    parse_json_object,
    retry_after_s,
    run_bounded,
)
from topics_assets.testing.llm_server import FakeLLMServer, hash_embedding

SCHEMA = {
    "type": "object",
    "properties": {"task": {"type": "string"}},
    "required": ["task"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "Summarise the trace as JSON."},
    {"role": "user", "content": "The user asks how to reset a password on the mobile app."},
]


def task_answer(body: dict) -> str:
    return json.dumps({"task": "Password reset help for a mobile app."})


def require_task(data: dict) -> None:
    if not isinstance(data.get("task"), str) or not data["task"]:
        raise ValueError("task must be a non-empty string")


@pytest.fixture
def server():
    with FakeLLMServer(chat_handler=task_answer) as s:
        yield s


def make_client(server: FakeLLMServer, **settings) -> LLMClient:
    settings.setdefault("max_retries", 3)
    llm = LLMSettings(model="openai/test-model", api_base=server.url, **settings)
    return LLMClient(llm, api_key="test-key", backoff_base_s=0.01)


# ---------------------------------------------------------------------------------------------
# happy path
# ---------------------------------------------------------------------------------------------
def test_happy_path_one_request_with_schema(server):
    client = make_client(server)
    result = client.complete_json(MESSAGES, SCHEMA, validate=require_task, schema_name="facets")

    assert result.data == {"task": "Password reset help for a mobile app."}
    assert result.attempts == 1
    assert result.model == "openai/test-model"
    assert result.cost is None  # test-model is not in litellm's price map
    [(path, body, _)] = server.requests
    assert path == "/v1/chat/completions"
    assert body["model"] == "test-model"
    assert body["messages"] == MESSAGES
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "facets", "schema": SCHEMA, "strict": True},
    }
    assert body["temperature"] == 0.0 and body["max_tokens"] == 800
    assert server.request_headers[0]["authorization"] == "Bearer test-key"
    assert result.input_tokens == server.usage_reported["prompt_tokens"] > 0
    assert result.output_tokens == server.usage_reported["completion_tokens"] > 0


def test_api_key_comes_from_the_named_env_var(server, monkeypatch):
    monkeypatch.setenv("TOPICS_TEST_LLM_KEY", "from-env")
    llm = LLMSettings(model="openai/test-model", api_base=server.url, api_key_env="TOPICS_TEST_LLM_KEY")
    LLMClient(llm).complete_json(MESSAGES, SCHEMA)
    assert server.request_headers[0]["authorization"] == "Bearer from-env"


def test_cost_for_a_priced_model(server):
    # gpt-4o-mini is in litellm's bundled price map; the fake server stands in for OpenAI.
    client = LLMClient(LLMSettings(model="openai/gpt-4o-mini", api_base=server.url), api_key="test-key")
    result = client.complete_json(MESSAGES, SCHEMA)
    assert result.cost is not None and result.cost > 0
    assert client.stats["cost"] == pytest.approx(result.cost) and client.stats["cost_unknown"] == 0
    assert server.requests[0][1]["response_format"]["type"] == "json_schema"


def test_fenced_json_is_accepted(server):
    server.chat_handler = lambda body: '```json\n{"task": "Fenced."}\n```'
    assert make_client(server).complete_json(MESSAGES, SCHEMA).data == {"task": "Fenced."}
    assert len(server.requests) == 1


def test_no_model_configured_is_a_clear_error():
    with pytest.raises(LLMError) as info:
        LLMClient(LLMSettings(model=None))
    assert info.value.reason == "not_configured"


# ---------------------------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------------------------
def test_429_honours_retry_after(server):
    server.faults.append(("status", 429, {"Retry-After": "1"}))
    client = make_client(server)
    result = client.complete_json(MESSAGES, SCHEMA)

    assert result.attempts == 2
    first, second = server.requests
    assert second[2] - first[2] >= 0.95  # backoff base is 0.01 s: only Retry-After explains this
    stats = client.stats
    assert stats["retries"] == 1 and stats["requests"] == 2
    assert stats["errors_by_reason"] == {"rate_limited": 1}
    assert stats["failures_by_reason"] == {}


@pytest.mark.parametrize("asked,ceiling", [("120", None), ("3600", None), ("2", 0.5)])
def test_a_retry_after_past_the_ceiling_fails_at_once_as_rate_limited(server, asked, ceiling):
    """A quota is not waited out (it once kept a 40-trace run busy for 14 minutes): one request, then
    rate_limited, with nothing slept."""
    server.faults.append(("status", 429, {"Retry-After": asked}))
    client = make_client(server, **({} if ceiling is None else {"max_retry_after_s": ceiling}))
    t0 = time.monotonic()
    with pytest.raises(LLMError) as info:
        client.complete_json(MESSAGES, SCHEMA)
    assert time.monotonic() - t0 < 5
    assert info.value.reason == "rate_limited" and "max_retry_after_s" in str(info.value)
    assert len(server.requests) == 1 and client.stats["failures_by_reason"] == {"rate_limited": 1}


def test_a_retry_after_under_the_ceiling_is_waited_out_in_full(server):
    server.faults.append(("status", 429, {"Retry-After": "1.5"}))
    make_client(server, max_retry_after_s=2).complete_json(MESSAGES, SCHEMA)
    first, second = server.requests
    assert second[2] - first[2] >= 1.45


def test_retry_after_ms_header_is_read(server):
    server.faults.append(("status", 429, {"retry-after-ms": "300"}))
    make_client(server).complete_json(MESSAGES, SCHEMA)
    first, second = server.requests
    assert second[2] - first[2] >= 0.28


def test_500_then_success(server):
    server.faults.append(("status", 500, {}))
    result = make_client(server).complete_json(MESSAGES, SCHEMA)
    assert result.attempts == 2 and len(server.requests) == 2


def test_dropped_connection_then_success(server):
    server.faults.append(("drop", None, {}))
    client = make_client(server)
    result = client.complete_json(MESSAGES, SCHEMA)
    assert result.data["task"] and result.attempts == 2
    assert len(server.requests) == 2
    assert sum(client.stats["errors_by_reason"].values()) == 1


def test_timeout_then_success(server):
    server.faults.append(("slow", 2.0, {}))
    client = make_client(server, timeout_s=0.4)
    started = time.monotonic()
    result = client.complete_json(MESSAGES, SCHEMA)
    assert result.attempts == 2
    assert client.stats["errors_by_reason"] == {"timeout": 1}
    assert time.monotonic() - started < 1.9  # did not wait for the slow answer


def test_retries_exhausted(server):
    server.faults.extend([("status", 503, {})] * 3)
    client = make_client(server, max_retries=2)
    with pytest.raises(LLMError) as info:
        client.complete_json(MESSAGES, SCHEMA)
    assert info.value.reason == "server_error" and info.value.status_code == 503
    assert info.value.attempts == 3 and len(server.requests) == 3
    assert client.stats["failures_by_reason"] == {"server_error": 1}


@pytest.mark.parametrize("status,reason", [(401, "auth"), (400, "bad_request"), (403, "permission_denied"), (404, "not_found")])
def test_client_errors_are_not_retried(server, status, reason):
    server.faults.append(("status", status, {}))
    client = make_client(server)
    with pytest.raises(LLMError) as info:
        client.complete_json(MESSAGES, SCHEMA)
    assert info.value.reason == reason and info.value.attempts == 1
    assert len(server.requests) == 1
    assert client.stats["retries"] == 0
    assert client.stats["failures_by_reason"] == {reason: 1}


def test_json_schema_rejected_steps_down_to_json_object(server):
    server.faults.append(("status", 400, {}, "Invalid parameter: response_format json_schema is not supported"))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA).data["task"]
    client.complete_json(MESSAGES, SCHEMA)  # the step down sticks for this client

    rejected, accepted, later = (body for _, body, _ in server.requests)
    assert rejected["response_format"]["type"] == "json_schema"
    for body in (accepted, later):
        assert body["response_format"] == {"type": "json_object"}
        assert json.dumps(SCHEMA) in body["messages"][0]["content"]  # the schema moved into the prompt


# ---------------------------------------------------------------------------------------------
# bad output
# ---------------------------------------------------------------------------------------------
def test_malformed_json_is_asked_again_once(server):
    server.faults.append(("malformed", None, {}))
    client = make_client(server)
    result = client.complete_json(MESSAGES, SCHEMA, validate=require_task)

    assert result.data["task"] and result.attempts == 2
    first, second = (body for _, body, _ in server.requests)
    assert second["messages"][: len(MESSAGES)] == MESSAGES
    bad, correction = second["messages"][len(MESSAGES) :]
    assert bad["role"] == "assistant" and "{not json" in bad["content"]
    assert correction["role"] == "user" and "JSON" in correction["content"]
    assert second["response_format"] == first["response_format"]
    assert client.stats["reasks"] == 1 and client.stats["retries"] == 0


def test_malformed_twice_raises_output_error(server):
    server.faults.extend([("malformed", None, {}), ("malformed", None, {})])
    client = make_client(server)
    with pytest.raises(LLMOutputError) as info:
        client.complete_json(MESSAGES, SCHEMA)
    assert info.value.reason == "invalid_json"
    assert "{not json" in info.value.content
    assert len(server.requests) == 2
    assert client.stats["failures_by_reason"] == {"invalid_json": 1}


def test_truncated_output_is_asked_again_shorter(server):
    server.faults.append(("truncated", None, {}))
    result = make_client(server).complete_json(MESSAGES, SCHEMA)
    assert result.data["task"] and result.attempts == 2
    correction = server.requests[1][1]["messages"][-1]["content"]
    assert "cut off" in correction


def test_validation_failure_is_asked_again(server):
    answers = iter(['{"task": ""}', '{"task": "Second try."}'])
    server.chat_handler = lambda body: next(answers)
    result = make_client(server).complete_json(MESSAGES, SCHEMA, validate=require_task)
    assert result.data == {"task": "Second try."}
    assert "non-empty" in server.requests[1][1]["messages"][-1]["content"]


def test_validation_failing_twice(server):
    server.chat_handler = lambda body: '{"task": 3}'
    with pytest.raises(LLMOutputError) as info:
        make_client(server).complete_json(MESSAGES, SCHEMA, validate=require_task)
    assert info.value.reason == "schema_invalid" and info.value.attempts == 2


# ---------------------------------------------------------------------------------------------
# concurrency and usage
# ---------------------------------------------------------------------------------------------
def test_map_runs_requests_concurrently(server):
    server.latency_s = 0.25
    server.chat_handler = lambda body: json.dumps({"task": body["messages"][-1]["content"]})
    client = make_client(server, max_in_flight=32)
    items = [f"trace {i}" for i in range(64)]
    done: list[int] = []

    started = time.monotonic()
    results = client.map(
        lambda text: client.complete_json([{"role": "user", "content": text}], SCHEMA),
        items,
        on_done=lambda i, r: done.append(i),
    )
    elapsed = time.monotonic() - started

    assert elapsed < 3.0, f"64 calls of 0.25 s took {elapsed:.2f} s"  # serial would be 16 s
    assert [r.data["task"] for r in results] == items  # input order
    assert sorted(done) == list(range(64))
    assert 16 <= server.max_in_flight_seen <= 32


def test_map_keeps_one_failure_to_its_item():
    def fn(x):
        if x == 3:
            raise ValueError("bad item")
        return x * 2

    results = run_bounded(fn, range(6), max_in_flight=4)
    assert results[:3] == [0, 2, 4] and results[4:] == [8, 10]
    assert isinstance(results[3], ValueError)


def test_map_limits_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def fn(x):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1

    run_bounded(fn, range(40), max_in_flight=3)
    assert state["peak"] == 3


def test_usage_counters_add_up(server):
    server.chat_handler = lambda body: json.dumps({"task": "x" * len(body["messages"][-1]["content"])})
    server.faults.extend([("status", 429, {}), ("malformed", None, {})])
    client = make_client(server, max_in_flight=4)
    prompts = [f"{'word ' * (10 * i)}end" for i in range(1, 9)]
    results = client.map(lambda p: client.complete_json([{"role": "user", "content": p}], SCHEMA), prompts)

    assert all(not isinstance(r, Exception) for r in results)
    stats = client.stats
    assert stats["calls"] == 8
    assert stats["requests"] == len(server.requests) == 10  # one retry, one re-ask
    assert stats["retries"] == 1 and stats["reasks"] == 1
    assert stats["input_tokens"] == server.usage_reported["prompt_tokens"]
    assert stats["output_tokens"] == server.usage_reported["completion_tokens"]
    assert stats["input_tokens"] == sum(r.input_tokens for r in results)
    assert stats["output_tokens"] == sum(r.output_tokens for r in results)
    assert stats["cost"] == 0.0 and stats["cost_unknown"] == 9  # nine answers, none priced
    assert results[-1].input_tokens > results[0].input_tokens  # proportional to input


# ---------------------------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------------------------
def test_embed_texts_through_litellm(server):
    texts = [f"facet summary number {i}" for i in range(10)]
    vectors = embed_texts(texts, "openai/test-embed", api_base=server.url, api_key="test-key", batch_size=4)

    assert vectors.shape == (10, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, np.array([hash_embedding(t) for t in texts]), atol=1e-6)
    bodies = [body for _, body, _ in server.requests_to("/embeddings")]
    assert [len(b["input"]) for b in bodies] == [4, 4, 2]
    assert [t for b in bodies for t in b["input"]] == texts


def test_embed_texts_concurrent_batches_keep_order(server):
    server.latency_s = 0.05
    texts = [f"t{i}" for i in range(50)]
    vectors = embed_texts(texts, "openai/test-embed", api_base=server.url, api_key="k", batch_size=5, max_in_flight=4)
    np.testing.assert_allclose(vectors, np.array([hash_embedding(t) for t in texts]), atol=1e-6)
    assert len(server.requests) == 10


def test_embed_texts_retries(server):
    server.faults.extend([("status", 429, {"Retry-After": "0"}), ("drop", None, {})])
    vectors = embed_texts(["a", "b"], "openai/test-embed", api_base=server.url, api_key="k", backoff_base_s=0.01)
    assert vectors.shape == (2, 16) and len(server.requests) == 3


def test_embed_texts_gives_up(server):
    server.faults.extend([("status", 500, {})] * 2)
    with pytest.raises(LLMError) as info:
        embed_texts(["a"], "openai/test-embed", api_base=server.url, api_key="k", max_retries=1, backoff_base_s=0.01)
    assert info.value.reason == "server_error" and info.value.attempts == 2
    assert len(server.requests) == 2  # no SDK retries hiding under ours


def test_embed_texts_through_voyage_sdk(server):
    texts = [f"text {i}" for i in range(130)]
    vectors = embed_texts(texts, "voyage/voyage-3.5", api_base=server.url, api_key="voyage-key", batch_size=500)
    assert vectors.shape == (130, 16)
    np.testing.assert_allclose(vectors[129], hash_embedding("text 129"), atol=1e-6)
    bodies = [body for _, body, _ in server.requests]
    assert [len(b["input"]) for b in bodies] == [128, 2]  # Voyage's 128-text limit
    assert bodies[0]["model"] == "voyage-3.5" and bodies[0]["input_type"] == "document"


def test_voyage_retries_honour_retry_after(server):
    server.faults.append(("status", 429, {"Retry-After": "0.3"}))
    vectors = embed_texts(["a"], "voyage/voyage-3.5", api_base=server.url, api_key="k", backoff_base_s=0.01)
    assert vectors.shape == (1, 16)
    first, second = server.requests
    assert second[2] - first[2] >= 0.28


def testvoyage_batches_respect_token_limit():
    long = "x" * 150_000  # about 50k estimated tokens
    batches = voyage_batches([long, long, long, "short"], max_texts=128, max_tokens=120_000)
    assert [len(b) for b in batches] == [2, 2]
    assert estimate_tokens("x" * 300) == 101
    assert voyage_batches(["a"] * 300, 128, 120_000)[-1] == ["a"] * 44


def test_embed_texts_edge_cases():
    assert embed_texts([], "openai/test-embed").shape == (0, 0)
    with pytest.raises(TypeError):
        embed_texts(["a", None], "openai/test-embed")


# ---------------------------------------------------------------------------------------------
# small pieces
# ---------------------------------------------------------------------------------------------
def test_parse_json_object():
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('Here you go:\n```json\n{"a": 1}\n```\nThanks') == {"a": 1}
    assert parse_json_object('```\n{"a": 1}\n```') == {"a": 1}
    for bad in ("", "nope", "[1, 2]", '{"a": '):
        with pytest.raises(ValueError):
            parse_json_object(bad)


def test_retry_after_parsing():
    class Err(Exception):
        def __init__(self, headers):
            self.headers = headers

    assert retry_after_s(Err({"Retry-After": "3"})) == 3.0
    assert retry_after_s(Err({"retry-after-ms": "250"})) == 0.25
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8 <= retry_after_s(Err({"Retry-After": date})) <= 11
    assert retry_after_s(Err({})) is None
    assert retry_after_s(ValueError()) is None


def test_classify_error_defaults():
    assert classify_error(TimeoutError()) == (True, "timeout", None)
    assert classify_error(ConnectionResetError()) == (True, "connection", None)
    assert classify_error(KeyError("x")) == (False, "unexpected", None)


# ---------------------------------------------------------------------------------------------
# total deadlines: a per-read timeout never fires on an answer that trickles in
# ---------------------------------------------------------------------------------------------
def test_a_dripping_answer_is_cut_at_the_total_deadline(server):
    # 8 bytes every 0.1 s: a ~400-byte answer takes ~5 s, every read well inside the 1 s timeout.
    server.faults.append(("drip", 0.1, {}))
    client = make_client(server, timeout_s=1.0, max_retries=0)
    litellm_module()  # its import (seconds) is not the call's time
    t0 = time.monotonic()
    with pytest.raises(LLMError) as info:
        client.complete_json(MESSAGES, SCHEMA, validate=require_task)
    elapsed = time.monotonic() - t0
    assert info.value.reason == "timeout"
    assert "deadline" in str(info.value)
    assert elapsed < 2.5, f"the call stayed open {elapsed:.1f}s past its 1 s deadline"


def test_the_deadline_has_its_own_setting_and_a_retry_follows(server):
    server.faults.append(("drip", 0.1, {}))
    client = make_client(server, timeout_s=30.0, deadline_s=1.0, max_retries=1)
    litellm_module()
    t0 = time.monotonic()
    result = client.complete_json(MESSAGES, SCHEMA, validate=require_task)
    assert result.attempts == 2 and time.monotonic() - t0 < 3.5
    assert client.stats["errors_by_reason"] == {"timeout": 1}


def test_a_dripping_embedding_batch_is_cut_at_the_deadline(server):
    server.faults.append(("drip", 0.1, {}))
    litellm_module()
    t0 = time.monotonic()
    with pytest.raises(LLMError) as info:
        embed_texts(["a text"] * 4, "openai/test-embed", api_base=server.url, api_key="k", max_retries=0,
                    timeout_s=1.0)
    assert info.value.reason == "timeout" and time.monotonic() - t0 < 2.5


# ---------------------------------------------------------------------------------------------
# an answer that is not UTF-8 is bad output: asked again once, never retried as an outage
# ---------------------------------------------------------------------------------------------
def test_invalid_utf8_answer_is_asked_again_once(server):
    server.faults.append(("bad_utf8", None, {}))
    client = make_client(server)
    result = client.complete_json(MESSAGES, SCHEMA, validate=require_task)
    assert result.data == {"task": "Password reset help for a mobile app."}
    assert len(server.requests) == 2 and result.attempts == 2
    assert client.stats["reasks"] == 1 and client.stats["retries"] == 0
    # the re-ask says what was wrong
    assert "UTF-8" in server.requests[1][1]["messages"][-1]["content"]


def test_invalid_utf8_twice_is_recorded_as_invalid_json(server):
    server.faults.extend([("bad_utf8", None, {})] * 3)
    client = make_client(server, max_retries=5)
    with pytest.raises(LLMOutputError) as info:
        client.complete_json(MESSAGES, SCHEMA, validate=require_task)
    assert info.value.reason == "invalid_json"
    assert len(server.requests) == 2
    assert client.stats["failures_by_reason"] == {"invalid_json": 1}
