import json
import tempfile
import tracemalloc
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topics_assets.ingest import RecordError, parse_record, read_file, write_actions
from topics_assets.traces import Message, Quarantined, Trace

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {DATA} (a checkout without ../shared/data)")
    return DATA


def split(items):
    traces = [i for i in items if isinstance(i, Trace)]
    quarantined = [i for i in items if isinstance(i, Quarantined)]
    assert len(traces) + len(quarantined) == len(items)
    return traces, quarantined


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def jline(obj) -> bytes:
    return json.dumps(obj).encode()


# ---------------------------------------------------------------------------
# Real benchmark files


def test_tau_bench_file(data):
    path = data / "tau-bench" / "gpt-4o-airline.json"
    raw = json.loads(path.read_text())
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert len(traces) == len(raw) == 200 and not quarantined
    t = traces[0]
    assert t.trace_id == f"tau-bench/gpt-4o-airline/{raw[0]['task_id']}/{raw[0]['trial']}"
    assert t.project == "tau-bench-airline" and t.format == "tau-bench"
    assert t.started_at == NOW
    assert [s.type for s in t.spans] == ["task", "llm", "score"] and t.spans[1].parent_id == "task"
    assert len(t.spans[1].input) == len(raw[0]["traj"])
    # The reward is a score span (outcome signals read it; the facet text never shows it).
    assert [t.spans[2].output["score"] for t in traces] == [float(r["reward"]) for r in raw]
    assert t.spans[1].metadata["llm_calls"] == sum(m["role"] == "assistant" for m in raw[0]["traj"])
    assert len({t.trace_id for t in traces}) == 200

    expected = Counter()
    for r in raw:
        names = {a["name"] for a in r["info"]["task"]["actions"]}
        writes = sorted(n for n in names if not n.startswith(("get_", "search_", "list_", "calculate", "think")))
        expected["+".join(writes) or "no_write"] += 1
    assert Counter(t.labels["write_actions"] for t in traces) == expected
    assert expected["no_write"] == 64 and expected["cancel_reservation"] == 20
    assert {t.labels["reward"] for t in traces} == {0.0, 1.0}
    assert [t.labels["task_id"] for t in traces] == [r["task_id"] for r in raw]

    # OpenAI-style tool calls are normalised to {id, name, arguments-as-JSON-string}.
    calls = [tc for t in traces for m in t.spans[1].input for tc in m.tool_calls]
    assert calls and all(set(tc) == {"id", "name", "arguments"} and isinstance(tc["arguments"], str) for tc in calls)
    json.loads(calls[0]["arguments"])


@pytest.mark.parametrize("domain,count", [("airline", 20), ("retail", 40), ("telecom", 40)])
def test_tau2_files(data, domain, count):
    path = data / "tau2-bench" / f"gpt-4.1_{domain}.json"
    raw = json.loads(path.read_text())
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert len(traces) == len(raw["simulations"]) == count and not quarantined
    sim = raw["simulations"][0]
    t = traces[0]
    assert t.trace_id == f"tau2/{domain}/{sim['id']}"
    assert t.project == f"tau2-{domain}" and t.format == "tau2-bench"
    assert t.started_at == datetime.fromisoformat(sim["start_time"]).replace(tzinfo=timezone.utc)
    assert len(t.spans[1].input) == len(sim["messages"])
    for t, sim in zip(traces, raw["simulations"]):
        assert t.labels["domain"] == domain
        assert t.labels["reward"] == sim["reward_info"]["reward"]
        assert t.labels["termination_reason"] == sim["termination_reason"]
        # What outcome signals read: the termination reason, the agent's usage and cost, the reward.
        assert t.spans[0].metadata["termination_reason"] == sim["termination_reason"]
        assert t.spans[1].metadata["cost_usd"] == sim["agent_cost"] and t.spans[1].metadata["model"] == "gpt-4.1"
        assert t.spans[1].metadata["usage"]["input_tokens"] == sum(
            (m.get("usage") or {}).get("prompt_tokens", 0) for m in sim["messages"] if m["role"] == "assistant")
        assert t.spans[2].type == "score" and t.spans[2].output == {"score": sim["reward_info"]["reward"]}

    intents = Counter(t.labels["intent"] for t in traces)
    if domain == "telecom":
        assert set(intents) == {"mobile_data_issue", "mms_issue", "service_issue"}
    else:
        tasks = {t["id"]: t for t in raw["tasks"]}
        for t, sim in zip(traces, raw["simulations"]):
            names = [a["name"] for a in tasks[sim["task_id"]]["evaluation_criteria"]["actions"] or []]
            assert t.labels["intent"] == write_actions(names)
        assert not any(part.startswith(("get_", "find_")) for i in intents for part in i.split("+"))

    # Flat tool calls with dict arguments become JSON strings; results point at their call.
    messages = [m for t in traces for m in t.spans[1].input]
    calls = {tc["id"]: tc for m in messages for tc in m.tool_calls}
    results = [m for m in messages if m.role == "tool"]
    assert calls and results and all(m.tool_call_id in calls for m in results)
    assert all(isinstance(json.loads(tc["arguments"]), dict) for tc in calls.values())


def test_write_actions_rule():
    assert write_actions([]) == "no_write"
    assert write_actions(["get_user_details", "find_user_id_by_email", "think", "calculate"]) == "no_write"
    assert (
        write_actions(["cancel_reservation", "book_reservation", "cancel_reservation"])
        == "book_reservation+cancel_reservation"
    )


# ---------------------------------------------------------------------------
# Generic chat and span records


def test_chat_record_and_project_precedence(tmp_path):
    rec = {
        "id": "c1",
        "timestamp": "2025-02-03T04:05:06Z",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}},
                    {"id": "t2", "name": "flat", "arguments": {"q": 2}},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "name": "lookup", "content": "found"},
        ],
        "metadata": {"cost": 1.5},
        "labels": {"intent": "greet"},
    }
    path = write_lines(
        tmp_path / "chats.jsonl",
        [jline(rec), jline({**rec, "id": "c2", "project": "own"}), jline({**rec, "id": "c3", "trace_id": "ignored"})],
    )
    traces, quarantined = split(list(read_file(path, default_project="dflt", now=NOW)))
    assert not quarantined
    t1, t2, t3 = traces
    assert (t1.trace_id, t1.project, t1.format) == ("c1", "dflt", "chat")
    assert t1.started_at == datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    assert t1.labels == {"intent": "greet"}
    (span,) = t1.spans
    assert span.type == "llm" and span.output is None and span.metadata == {"cost": 1.5}
    assert all(isinstance(m, Message) for m in span.input)
    assert span.input[2].tool_calls == [
        {"id": "t1", "name": "lookup", "arguments": '{"q":1}'},
        {"id": "t2", "name": "flat", "arguments": '{"q":2}'},
    ]
    assert span.input[3].tool_call_id == "t1"
    assert t2.project == "own" and t3.trace_id == "c3"
    # The CLI's --project overrides the record's own.
    assert {t.project for t in read_file(path, project="cli")} == {"cli"}
    # trace_id is accepted in place of id; no timestamp means `now`.
    (t,) = parse_record({"trace_id": "x", "messages": []}, "mem", None, now=NOW)
    assert t.trace_id == "x" and t.started_at == NOW and t.project == "default"


def test_span_record():
    rec = {
        "trace_id": "s1",
        "project": "agents",
        "labels": {"k": "v"},
        "spans": [
            {"id": "root", "type": "task", "name": "run", "start_time": 1_700_000_100},
            {
                "id": "a",
                "parent_id": "root",
                "type": "llm",
                "start_time": 1_700_000_050_000,
                "input": {"messages": [{"role": "user", "content": "q"}]},
                "output": {"choices": [{"message": {"content": "a1"}}]},
            },
            {
                "id": "b",
                "parent_id": "root",
                "type": "llm",
                "start_time": "2023-11-14T22:15:00Z",
                "input": [{"role": "user", "content": "q"}],
                "output": {"role": "assistant", "content": "a2"},
            },
            {"id": "c", "parent_id": "root", "type": "LLM", "input": "plain prompt", "output": "plain answer"},
            {
                "id": "d",
                "parent_id": "root",
                "type": "llm",
                "input": None,
                "output": [{"role": "assistant", "content": "a4"}],
            },
            {"id": "e", "parent_id": "root", "type": "tool", "name": "search", "error": "timeout", "output": None},
            {"id": "f", "parent_id": "root", "type": "eval", "name": "judge", "output": {"score": 1}},
            {"id": "g", "parent_id": "root", "type": "mystery"},
        ],
    }
    (t,) = parse_record(rec, "mem", 1, now=NOW)
    assert (t.trace_id, t.project, t.labels, t.format) == ("s1", "agents", {"k": "v"}, "spans")
    spans = {s.id: s for s in t.spans}
    assert spans["a"].start_time == 1_700_000_050.0  # epoch milliseconds
    # started_at is the earliest span start.
    assert t.started_at == datetime.fromtimestamp(1_700_000_050, tz=timezone.utc)
    assert spans["b"].start_time == datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc).timestamp()
    assert [m.content for m in spans["a"].output] == ["a1"] and spans["a"].output[0].role == "assistant"
    assert [m.content for m in spans["b"].output] == ["a2"]
    assert spans["c"].type == "llm" and spans["c"].input == [Message("user", "plain prompt")]
    assert spans["c"].output == [Message("assistant", "plain answer")]
    assert spans["d"].input == [] and spans["d"].output[0].content == "a4"
    assert spans["e"].error == "timeout"
    assert spans["f"].type == "score" and spans["g"].type == "other"
    # Without span times: the record's timestamp, then now.
    (t,) = parse_record({"id": "s2", "timestamp": 1_700_000_000, "spans": [{"id": "x"}]}, "mem", None, now=NOW)
    assert t.started_at == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)
    (t,) = parse_record({"id": "s3", "spans": [{"id": "x"}]}, "mem", None, now=NOW)
    assert t.started_at == NOW


@pytest.mark.parametrize(
    "record,needle",
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"id": "x"}, "unknown record shape"),
        ({"id": "x", "messages": "hi"}, "'messages' must be a list"),
        ({"messages": []}, "missing or invalid 'id'"),
        ({"id": True, "messages": []}, "missing or invalid 'id'"),
        ({"id": "x", "messages": [{"content": "no role"}]}, "messages[0]: message without a role"),
        ({"id": "x", "messages": [{"role": "assistant", "tool_calls": [{"id": "1"}]}]}, "tool call without a name"),
        ({"id": "x", "messages": [], "timestamp": "yesterday"}, "'timestamp': cannot read time"),
        ({"id": "x", "messages": [], "project": 7}, "'project' must be a non-empty string"),
        ({"id": "x", "spans": []}, "'spans' must be a non-empty list"),
        ({"id": "x", "spans": [{"id": "a"}, {"id": "a"}]}, "duplicate span id"),
        ({"id": "x", "spans": [{"type": "llm"}]}, "spans[0]: 'id'"),
        ({"id": "x", "spans": [{"id": "a", "type": "llm", "output": 5}]}, "an llm output must be"),
        ({"id": "x", "spans": [{"id": "a", "metadata": []}]}, "'metadata' must be an object"),
    ],
)
def test_bad_records_raise_record_error(record, needle):
    with pytest.raises(RecordError) as e:
        parse_record(record, "mem", 3)
    assert needle in str(e.value) and str(e.value).startswith("line 3: ")


def test_malformed_lines_are_quarantined_and_good_ones_land(tmp_path):
    good = {"id": "g1", "messages": [{"role": "user", "content": "hello"}]}
    lines = [
        jline(good),  # 1
        b'{"id": "bad", "messages": [}',  # 2: not JSON
        b"[1, 2, 3]",  # 3: not an object
        jline({"id": "m1"}),  # 4: no messages/spans
        b'{"id": "u1", "messages": [{"role": "user", "content": "caf\xe9"}]}',  # 5: Latin-1, not UTF-8
        jline({"id": 5.5, "messages": []}),  # 6: wrong id type
        jline({"id": "w1", "messages": [{"role": "user", "content": "x"}, "not a message"]}),  # 7
        b"",  # 8: blank lines are skipped
        jline(
            {"trace_id": "g2", "spans": [{"id": "s", "type": "llm", "input": [{"role": "user", "content": "hey"}]}]}
        ),  # 9
        b"\x00\xff\xfe garbage",  # 10
        jline({**good, "id": "g3"}),  # 11
    ]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert [t.trace_id for t in traces] == ["g1", "g2", "g3"]
    by_line = {q.line: q for q in quarantined}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 10]
    assert all(q.source == str(path) and q.reason.startswith(f"line {q.line}: ") for q in quarantined)
    assert "not valid JSON" in by_line[2].reason and "column" in by_line[2].reason
    assert "expected a JSON object, got list" in by_line[3].reason
    assert "unknown record shape" in by_line[4].reason and by_line[4].trace_id == "m1"
    assert "not valid UTF-8" in by_line[5].reason
    assert "missing or invalid 'id'" in by_line[6].reason
    assert "messages[1]: a message must be an object, got str" in by_line[7].reason
    assert "not valid UTF-8" in by_line[10].reason
    assert by_line[2].snippet == lines[1].decode()
    assert all(len(q.snippet) <= 800 for q in quarantined)  # redacted, then cut to 200, when stored


def test_json_files(tmp_path):
    chat = {"id": "a", "messages": [{"role": "user", "content": "x"}]}
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([chat, {"id": "b"}, {**chat, "id": "c"}]))
    traces, quarantined = split(list(read_file(listed)))
    assert [t.trace_id for t in traces] == ["a", "c"]
    assert len(quarantined) == 1 and quarantined[0].reason.startswith("record 1: unknown record shape")

    single = tmp_path / "single.json"
    single.write_text(json.dumps(chat))
    assert [t.trace_id for t in read_file(single)] == ["a"]

    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "a",\n "messages": [}]')
    (q,) = list(read_file(broken))
    assert isinstance(q, Quarantined) and q.reason.startswith("broken.json: not valid JSON") and q.line == 2

    other = tmp_path / "traces.csv"
    other.write_text("a,b\n")
    (q,) = list(read_file(other))
    assert isinstance(q, Quarantined) and "unsupported file type '.csv'" in q.reason


def test_tau2_bad_simulation_is_quarantined_alone(tmp_path):
    doc = {
        "timestamp": "2025-08-01T16:20:43",
        "info": {"environment_info": {"domain_name": "retail"}},
        "tasks": [
            {
                "id": "1",
                "evaluation_criteria": {"actions": [{"name": "cancel_pending_order"}, {"name": "get_order_details"}]},
            }
        ],
        "simulations": [
            {
                "id": "s1",
                "task_id": "1",
                "messages": [{"role": "user", "content": "cancel it"}],
                "reward_info": {"reward": 1.0},
                "termination_reason": "user_stop",
            },
            {"id": "s2", "task_id": "1", "messages": "oops"},
            {"id": "s3", "task_id": "1", "start_time": "2025-08-02T00:00:00", "messages": []},
        ],
    }
    path = tmp_path / "tau2_retail.json"
    path.write_text(json.dumps(doc))
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert [t.trace_id for t in traces] == ["tau2/retail/s1", "tau2/retail/s3"]
    assert traces[0].labels["intent"] == "cancel_pending_order"
    assert traces[0].started_at == datetime(2025, 8, 1, 16, 20, 43, tzinfo=timezone.utc)  # the file's timestamp
    assert traces[1].started_at == datetime(2025, 8, 2, tzinfo=timezone.utc)
    (q,) = quarantined
    assert q.reason.startswith("simulation 1: 'messages' must be a list") and q.trace_id == "s2"


def test_attachments_never_reach_the_trace():
    blob = "iVBORw0KGgo" + "A" * 40_000
    rec = {
        "id": "att",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{blob}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR" + "B" * 8000, "format": "wav"}},
                ],
            },
        ],
    }
    (t,) = parse_record(rec, "mem", None)
    content = t.spans[0].input[0].content
    assert content.startswith("what is in this picture?\n")
    assert "[image attachment removed: image/png, 29.3 KB]" in content
    assert "[image attachment removed: linked by URL, size unknown]" in content
    assert "[audio attachment removed: audio/wav, 5.9 KB]" in content
    assert blob[:200] not in t.to_json()


def test_jsonl_is_streamed(tmp_path):
    path = tmp_path / "big.jsonl"
    line = jline({"id": "x", "messages": [{"role": "user", "content": "y" * 2000}]})
    with path.open("wb") as f:
        for _ in range(3000):  # ~6 MB
            f.write(line + b"\n")
    tracemalloc.start()
    n = sum(1 for _ in read_file(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 3000
    assert peak < 1_000_000, f"peak {peak} bytes: the file was not streamed"


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_keys = st.sampled_from(
    [
        "id",
        "trace_id",
        "messages",
        "spans",
        "traj",
        "simulations",
        "role",
        "content",
        "tool_calls",
        "type",
        "input",
        "output",
        "parent_id",
        "start_time",
        "timestamp",
        "project",
        "labels",
        "metadata",
        "function",
        "name",
        "arguments",
        "choices",
        "message",
        "error",
        "task_id",
        "info",
        "task",
        "actions",
        "tasks",
        "evaluation_criteria",
        "reward_info",
        "trial",
        "text",
        "image_url",
        "url",
        "source",
        "input_audio",
    ]
)
_json = st.recursive(
    _json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_keys, kids, max_size=6), max_leaves=30
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80) | _json.map(lambda v: json.dumps(v).encode()), max_size=12))
def test_read_file_never_raises(lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.jsonl"
        path.write_bytes(b"\n".join(lines))
        items = list(read_file(path, now=NOW))
    assert all(isinstance(i, (Trace, Quarantined)) for i in items)
    for q in (i for i in items if isinstance(i, Quarantined)):
        assert q.line is not None and q.reason.startswith(f"line {q.line}: ")


# ---------------------------------------------------------------------------
# Bad input at scale: huge lines, deep nesting, odd text, many spans, cycles


def test_a_line_over_the_limit_is_skipped_unread_and_the_rest_lands(tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.write(jline({"id": "before", "messages": [{"role": "user", "content": "a"}]}) + b"\n")
        huge = b'{"id": "huge", "messages": [{"role": "user", "content": "' + b"x" * 20_000_000 + b'"}]}\n'
        f.write(huge)
        f.write(jline({"id": "after", "messages": [{"role": "user", "content": "b"}]}) + b"\n")
    tracemalloc.start()
    traces, quarantined = split(list(read_file(path, now=NOW, max_record_bytes=1_000_000)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [t.trace_id for t in traces] == ["before", "after"]
    (q,) = quarantined
    assert q.line == 2 and q.reason == f"line 2: record too large ({len(huge):,} bytes, limit 1,000,000); skipped unread"
    assert peak < 5_000_000, f"peak {peak:,} for a {len(huge):,}-byte line: it was held whole"
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"id": "x", "messages": [{"role": "user", "content": "y" * 2_000_000}]}]))
    (q,) = list(read_file(big, max_record_bytes=1_000_000))
    assert isinstance(q, Quarantined) and "record too large" in q.reason and "split it into JSONL" in q.reason


def test_a_100_mb_line_is_parsed_in_memory_bounded_by_the_line(tmp_path):
    """A real 100 MB record (an inline image): it lands, its bytes are not kept, memory stays ~2x the line."""
    import subprocess
    import sys

    path = tmp_path / "one-huge-line.jsonl"
    with path.open("wb") as f:
        f.write(jline({"id": "small-1", "messages": [{"role": "user", "content": "hi"}]}) + b"\n")
        f.write(b'{"id": "photo", "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},'
                b' {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo')
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b'"}}]}]}\n')
        f.write(jline({"id": "small-2", "messages": [{"role": "user", "content": "bye"}]}) + b"\n")
    size = path.stat().st_size
    script = (
        "import json, resource, sys\n"
        "from topics_assets.ingest import read_file\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "items = list(read_file(sys.argv[1]))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base\n"
        "print(json.dumps({'ids': [getattr(i, 'trace_id', None) for i in items], 'peak': peak,\n"
        "                  'content': items[1].spans[0].input[0].content, 'payload': len(items[1].to_json())}))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(repo)}, check=True)
    result = json.loads(out.stdout)
    assert result["ids"] == ["small-1", "photo", "small-2"]
    assert result["content"] == "what is this?\n[image attachment removed: image/png, 75.0 MB]"
    assert result["payload"] < 2_000  # what gets stored
    assert result["peak"] < 3 * size, f"peak {result['peak']:,} bytes for a {size:,}-byte line"


def test_lone_surrogates_are_replaced_so_the_store_can_hold_the_trace(tmp_path, settings):
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.store import DuckDBStore

    path = tmp_path / "surrogates.jsonl"
    path.write_bytes(
        b'{"id": "s1", "timestamp": "2026-11-20T10:00:00Z", "messages": [{"role": "user", '
        b'"content": "bad \\ud800 half, good \\ud83d\\ude00 pair"}], "labels": {"k\\udfff": "v"}}\n'
        + jline({"id": "s2", "timestamp": "2026-11-20T10:00:00Z", "messages": [{"role": "user", "content": "ok"}]})
        + b"\n"
    )
    (t1, t2) = list(read_file(path, now=NOW))
    assert t1.spans[0].input[0].content == "bad \ufffd half, good \U0001f600 pair"
    assert t1.labels == {"k\ufffd": "v"}
    t1.to_json().encode("utf-8")  # would raise on a lone surrogate
    summary = ingest_paths(store=DuckDBStore(settings.database_path), settings=settings, paths=[str(path)])
    assert (summary.loaded, summary.quarantined) == (2, 0)


def test_deeply_nested_json_is_quarantined_with_a_reason(tmp_path):
    deep_value = {"a": 1}
    for _ in range(200):
        deep_value = {"nested": deep_value}
    lines = [
        b"[" * 100_000 + b"]" * 100_000,  # the parser's own limit
        jline({"id": "t", "spans": [{"id": "s1", "type": "tool", "name": "x", "output": deep_value}]}),
        jline({"id": "ok", "spans": [{"id": "s1", "type": "tool", "name": "x", "output": {"a": {"b": [1]}}}]}),
        jline({"id": "lbl", "messages": [], "labels": deep_value}),
    ]
    path = write_lines(tmp_path / "deep.jsonl", lines)
    traces, quarantined = split(list(read_file(path, now=NOW)))
    assert [t.trace_id for t in traces] == ["ok"]
    reasons = {q.line: q.reason for q in quarantined}
    assert reasons[1] == "line 1: not valid JSON: nested too deeply"
    assert reasons[2] == "line 2: span 's1' (spans[0]): 'output' nested deeper than 64 levels"
    assert reasons[4] == "line 4: 'labels' nested deeper than 64 levels"
    traces[0].to_json()
    listed = tmp_path / "deep.json"
    listed.write_text("[" * 50_000 + "]" * 50_000)
    (q,) = list(read_file(listed))
    assert q.reason == "deep.json: not valid JSON: nested too deeply"


def test_ten_thousand_spans_in_one_trace(tmp_path):
    """A chain 10,000 deep (each span the child of the last), LLM calls re-sending history, tool spans."""
    import time

    from topics_assets.config import PreprocessSettings
    from topics_assets.preprocess import preprocess

    spans, history = [{"id": "s0", "type": "task", "name": "root", "start_time": 1_790_000_000}], []
    for k in range(1, 10_000):
        if k % 2:
            history = history + [{"role": "user", "content": f"step {k}"}]
            spans.append({"id": f"s{k}", "parent_id": f"s{k - 1}", "type": "llm", "start_time": 1_790_000_000 + k,
                          "input": history[-20:], "output": f"answer {k}"})
        else:
            spans.append({"id": f"s{k}", "parent_id": f"s{k - 1}", "type": "tool", "name": "lookup",
                          "start_time": 1_790_000_000 + k, "output": {"k": k}})
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({"trace_id": "big", "spans": spans}) + "\n")
    start = time.process_time()  # CPU time: other processes on the machine do not count
    (t,) = list(read_file(path, now=NOW))
    out = preprocess(t, PreprocessSettings())
    elapsed = time.process_time() - start
    assert len(t.spans) == 10_000 and out.n_spans == 10_000
    assert out.n_messages == 3 * 5_000 - 1  # every user step, answer and tool result once
    assert not out.truncated and out.tokens_after == out.tokens_before < 128_000
    assert out.text.count("[user] step ") == 5_000 and out.text.count("[tool lookup] ") == 4_999
    assert out.text.endswith('[tool lookup] {"k":9998}\n\n[user] step 9999\n\n[assistant] answer 9999')
    assert elapsed < 10, f"{elapsed:.1f}s"


def test_parent_id_cycles_do_not_lose_or_repeat_spans():
    rec = {"id": "cyc", "spans": [
        {"id": "a", "parent_id": "c", "type": "llm", "start_time": 3, "input": [{"role": "user", "content": "in a"}]},
        {"id": "b", "parent_id": "a", "type": "llm", "start_time": 2, "input": [{"role": "user", "content": "in b"}]},
        {"id": "c", "parent_id": "b", "type": "llm", "start_time": 1, "input": [{"role": "user", "content": "in c"}]},
        {"id": "self", "parent_id": "self", "type": "llm", "input": [{"role": "user", "content": "own parent"}]},
        {"id": "root", "type": "llm", "start_time": 0, "input": [{"role": "user", "content": "root"}]},
    ]}
    from topics_assets.config import PreprocessSettings
    from topics_assets.preprocess import preprocess

    (t,) = parse_record(rec, "mem", None, now=NOW)
    text = preprocess(t, PreprocessSettings()).text
    assert sorted(text.split("\n\n")) == sorted(f"[user] {w}" for w in ("in a", "in b", "in c", "own parent", "root"))
    # Roots by start time (no time last), then the cycle from its first span in file order.
    assert text == "[user] root\n\n[user] own parent\n\n[user] in a\n\n[user] in b\n\n[user] in c"


def test_re_sent_messages_are_parsed_once_per_record():
    """A 500-call trace re-sends its history 500 times; parsed, it holds each message once."""
    from topics_assets.ingest.records import MEMO as _MEMO

    history = [{"role": "user", "content": "hi"}]
    spans = []
    for k in range(3):
        out = {"role": "assistant", "content": f"step {k}",
               "tool_calls": [{"id": f"c{k}", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        spans.append({"id": f"l{k}", "type": "llm", "input": json.loads(json.dumps(history)), "output": out})
        history += [out, {"role": "tool", "tool_call_id": f"c{k}", "content": "ok"}]
    rec = {"trace_id": "t", "spans": spans}
    (t,) = parse_record(json.loads(json.dumps(rec)), "mem", None, now=NOW)
    (t2,) = parse_record(json.loads(json.dumps(rec)), "mem", None, now=NOW)
    assert t.spans[2].input[0] is t.spans[0].input[0] and t.spans[2].input[1] is t.spans[0].output[0]
    assert t2.spans[0].input[0] is not t.spans[0].input[0]  # nothing shared across records
    assert t.spans[2].input[4] == Message("tool", "ok", tool_call_id="c1")
    assert _MEMO.get() is None
