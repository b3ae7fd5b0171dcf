import os
import random
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from topics_assets.config import PreprocessSettings
from topics_assets.ingest import parse_record, read_file
from topics_assets.preprocess import preprocess, strip_attachments
from topics_assets.preprocess.tokens import count_tokens, truncate_to_tokens
from topics_assets.traces import Message, Span, Trace, sha256_text

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
ELIDED = re.compile(r"\[\.\.\. ([\d,]+) messages, ~([\d,]+) tokens elided \.\.\.\]")


def trace(spans, trace_id="t"):
    return Trace(trace_id, "p", NOW, spans)


def agent_loop(turns: int, words_per_message: int = 8, shared: bool = True) -> Trace:
    """An agent loop logged the usual way: every LLM call re-sends the whole history."""
    history = [Message("system", "You are a booking agent."), Message("user", "Book me a flight to Paris please.")]
    spans = [Span("root", "task", name="run", start_time=0)]
    for k in range(turns):
        call = {"id": f"c{k}", "name": "search_flights", "arguments": f'{{"page":{k}}}'}
        out = Message("assistant", f"Step {k}: " + "checking " * words_per_message, tool_calls=[call])
        inp = (
            list(history)
            if shared
            else [Message(m.role, m.content, list(m.tool_calls), m.tool_call_id) for m in history]
        )
        spans.append(Span(f"llm{k}", "llm", parent_id="root", input=inp, output=[out], start_time=2 * k + 1))
        history += [out, Message("tool", f"result {k}: " + "flight " * words_per_message, tool_call_id=f"c{k}")]
    final = Message("assistant", "FINAL: booked flight AF123 to Paris.")
    spans.append(
        Span("llm-final", "llm", parent_id="root", input=list(history), output=[final], start_time=2 * turns + 1)
    )
    return trace(spans)


def test_growing_history_is_emitted_once_in_order():
    t = agent_loop(5)
    out = preprocess(t, PreprocessSettings())
    text = out.text
    assert text.count("[user] Book me a flight to Paris please.") == 1
    assert text.count("[system] You are a booking agent.") == 1
    for k in range(5):
        assert text.count(f"[assistant] Step {k}:") == 1
        assert text.count(f'[assistant -> search_flights] {{"page":{k}}}') == 1
        assert text.count(f"[tool search_flights] result {k}:") == 1  # the name comes from the call id
    positions = [text.index(f"Step {k}:") for k in range(5)]
    assert positions == sorted(positions) and text.rstrip().endswith("FINAL: booked flight AF123 to Paris.")
    assert out.n_messages == 2 + 5 * 2 + 1 and out.n_spans == 7 and not out.truncated
    # The same trace parsed back from storage (distinct objects) gives the same text.
    assert preprocess(Trace.from_json(t.to_json()), PreprocessSettings()).text == text


def test_a_repeated_message_within_the_conversation_is_kept():
    h = [Message("user", "Cancel my order"), Message("assistant", "Sure?"), Message("user", "yes")]
    h2 = h + [Message("assistant", "And the other one?"), Message("user", "yes")]
    t = trace(
        [
            Span("a", "llm", input=h, output=[h2[3]], start_time=1),
            Span("b", "llm", input=h2, output=[Message("assistant", "Done.")], start_time=2),
        ]
    )
    assert preprocess(t, PreprocessSettings()).text.count("[user] yes") == 2


def test_tool_results_show_once_and_errors_are_flagged():
    call = {"id": "c1", "name": "get_order", "arguments": '{"id":"W1"}'}
    call2 = {"id": "c2", "name": "refund", "arguments": "{}"}
    h1 = [Message("user", "where is my order?")]
    a1 = Message("assistant", "", tool_calls=[call])
    r1 = Message("tool", '{"status": "shipped"}', tool_call_id="c1")
    a2 = Message("assistant", "", tool_calls=[call2])
    r2 = Message("tool", "Error: refund not allowed", tool_call_id="c2")
    spans = [
        Span("l1", "llm", input=h1, output=[a1], start_time=1),
        # The tool span logs its result as a JSON value; the next call re-sends it as text.
        Span("t1", "tool", name="get_order", output={"status": "shipped"}, start_time=2),
        Span("l2", "llm", input=h1 + [a1, r1], output=[a2], start_time=3),
        Span(
            "l3", "llm", input=h1 + [a1, r1, a2, r2], output=[Message("assistant", "Sorry, no refund.")], start_time=4
        ),
        # Logged after the message: it only adds nothing new.
        Span("t2", "tool", name="refund", error="Error: refund not allowed", start_time=3.5),
        Span("t3", "tool", name="notify", error="SMTP timeout", start_time=5),
    ]
    full = preprocess(trace(spans), PreprocessSettings()).text
    head, text = full.split("\n\n", 1)  # the outcome header states each error once more, then the conversation
    assert head.startswith("[outcome] Errors (2):") and "- tool refund failed (error): Error: refund not allowed" in head
    assert text.count("shipped") == 1 and '[tool get_order] {"status":"shipped"}' in text
    assert text.count("refund not allowed") == 1 and "[tool refund ERROR] Error: refund not allowed" in text
    assert "[tool notify ERROR] SMTP timeout" in text


def test_score_spans_and_their_children_are_dropped_and_metadata_never_shown():
    spans = [
        Span("root", "task", start_time=0, metadata={"secret_note": "METADATA-ONLY"}),
        Span(
            "l1",
            "llm",
            parent_id="root",
            input=[Message("user", "hi")],
            output=[Message("assistant", "hello")],
            start_time=1,
            metadata={"tokens": 999, "model": "METADATA-ONLY"},
        ),
        Span("s1", "score", parent_id="root", name="helpfulness", output={"score": 0.2}, start_time=2),
        Span(
            "s1-judge",
            "llm",
            parent_id="s1",
            input=[Message("user", "JUDGE PROMPT: rate this")],
            output=[Message("assistant", "JUDGE SAYS 2/10")],
            start_time=3,
        ),
        Span("e1", "eval", parent_id="root", output="EVAL OUTPUT", start_time=4),
    ]
    text = preprocess(trace(spans), PreprocessSettings()).text
    assert text == "[user] hi\n\n[assistant] hello"


def test_spans_are_walked_in_tree_and_time_order():
    spans = [
        Span("b", "llm", parent_id="root", input=[Message("user", "second")], start_time=20),
        Span("root", "task", start_time=0),
        Span("a", "llm", parent_id="root", input=[Message("user", "first")], start_time=10),
        Span("a1", "llm", parent_id="a", input=[Message("user", "first, nested")], start_time=15),
        Span("orphan", "llm", parent_id="missing", input=[Message("user", "orphan")], start_time=30),
    ]
    text = preprocess(trace(spans), PreprocessSettings()).text
    assert text == "[user] first\n\n[user] first, nested\n\n[user] second\n\n[user] orphan"


def test_attachments_are_stripped_with_a_placeholder():
    rng = random.Random(1)
    blob = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(4000))
    spans = [
        Span(
            "l",
            "llm",
            input=[Message("user", f"see data:image/jpeg;base64,{blob} please")],
            output=[Message("assistant", "ok", tool_calls=[{"id": "c", "name": "ocr", "arguments": "{}"}])],
            start_time=1,
        ),
        Span("t", "tool", name="ocr", output=f"raw pdf: {blob}", start_time=2),
    ]
    text = preprocess(trace(spans), PreprocessSettings()).text
    assert blob[:100] not in text
    assert "[user] see [image attachment removed: image/jpeg, 2.9 KB] please" in text
    assert "[tool ocr] raw pdf: [base64 attachment removed: 2.9 KB]" in text
    # Long ordinary tokens (URL paths, identifiers) are not mistaken for blobs.
    path = "/".join(["segment"] * 40)
    assert strip_attachments(path) == path
    # Chat records with content parts: the parser leaves only a placeholder.
    (t,) = parse_record(
        {
            "id": "x",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{blob}"}},
                    ],
                }
            ],
        },
        "m",
        None,
    )
    assert preprocess(t, PreprocessSettings()).text == "[user] look\n[image attachment removed: image/png, 2.9 KB]"


def test_system_prompt_is_shortened():
    system = "You are an airline agent. " + "Policy clause. " * 500
    t = trace([Span("l", "llm", input=[Message("system", system), Message("user", "hi")])])
    text = preprocess(t, PreprocessSettings()).text
    first = text.split("\n\n")[0]
    assert first.startswith("[system] You are an airline agent.")
    assert f"[... system prompt shortened, {len(system):,} chars in all]" in first and len(first) < 400


def test_redaction_before_counting():
    t = trace(
        [
            Span(
                "l",
                "llm",
                input=[Message("user", "mail jane@example.com, key sk-ant-api03-abcdefghijklmnopqrstuv, order ZX-99")],
            )
        ]
    )
    out = preprocess(t, PreprocessSettings(extra_patterns={"order_id": r"ZX-\d+"}))
    assert out.text == "[user] mail [EMAIL], key [API_KEY], order [ORDER_ID]"
    assert out.redactions == {"EMAIL": 1, "API_KEY": 1, "ORDER_ID": 1}
    assert out.tokens_after == count_tokens(out.text) < out.tokens_before
    assert out.content_hash == sha256_text(out.text)
    raw = preprocess(t, PreprocessSettings(redact=False))
    assert "jane@example.com" in raw.text and raw.redactions == {}


def test_token_cap_keeps_first_request_final_answer_errors_and_recent_turns():
    t = agent_loop(60, words_per_message=60)
    # A failed tool call in the middle must survive the cut.
    t.spans.insert(
        30, Span("boom", "tool", parent_id="root", name="charge_card", error="card declined", start_time=29.5)
    )
    full = preprocess(t, PreprocessSettings())
    assert full.tokens_before > 8000 and not full.truncated

    out = preprocess(t, PreprocessSettings(max_tokens=2000))
    assert out.truncated and out.tokens_after <= 2000 and out.tokens_after == count_tokens(out.text)
    assert out.tokens_before == full.tokens_before
    text = out.text
    assert "[user] Book me a flight to Paris please." in text
    assert text.rstrip().endswith("[assistant] FINAL: booked flight AF123 to Paris.")
    assert "[tool charge_card ERROR] card declined" in text
    assert "result 59:" in text and "Step 59:" in text  # the most recent turn
    markers = ELIDED.findall(text)
    assert markers and "Step 10:" not in text
    n_elided = sum(int(n.replace(",", "")) for n, _ in markers)
    kept_blocks = len(text.split("\n\n")) - len(markers)
    assert n_elided + kept_blocks == len(preprocess(t, PreprocessSettings(redact=False)).text.split("\n\n"))


def test_a_huge_first_request_is_cut_not_dropped():
    request = "Please summarise this contract. " + "Clause text goes here. " * 20_000
    t = trace(
        [Span("l", "llm", input=[Message("user", request)], output=[Message("assistant", "Here is the summary.")])]
    )
    out = preprocess(t, PreprocessSettings(max_tokens=3000))
    assert out.tokens_after <= 3000 and out.truncated
    assert out.text.startswith("[user] Please summarise this contract.")
    assert re.search(r"\[\.\.\. cut, ~[\d,]+ tokens more\]", out.text)
    assert out.text.endswith("[assistant] Here is the summary.")


def test_no_conversation_falls_back_to_the_root_input_and_output():
    t = trace([Span("f", "function", name="classify", input={"text": "refund please"}, output={"label": "refund"})])
    assert preprocess(t, PreprocessSettings()).text == '[input] {"text":"refund please"}\n\n[output] {"label":"refund"}'


def test_real_traces(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {DATA}")
    traces = [x for x in read_file(DATA / "tau-bench" / "gpt-4o-airline.json", now=NOW) if isinstance(x, Trace)]
    for t in traces[:50]:
        out = preprocess(t, PreprocessSettings())
        traj = t.spans[1].input
        assert out.text.count("[system] ") == 1
        n_calls = sum(len(m.tool_calls) for m in traj)
        assert len(re.findall(r"^\[assistant -> ", out.text, re.MULTILINE)) == n_calls
        assert len(re.findall(r"^\[tool ", out.text, re.MULTILINE)) == sum(m.role == "tool" for m in traj)
        assert "@example.com" not in out.text
        assert not out.truncated and out.tokens_after < out.tokens_before  # the system prompt was shortened


def test_a_million_token_agent_loop_preprocesses_in_about_a_second():
    rng = random.Random(0)
    words = "flight booking refund order cancel user agent status change seat baggage payment the a of to".split()

    def para(n):
        return " ".join(rng.choice(words) for _ in range(n))

    history = [Message("system", para(400)), Message("user", "Please help me. " + para(900))]
    spans = [Span("root", "task", start_time=0)]
    for k in range(500):
        out = Message("assistant", para(600), tool_calls=[{"id": f"c{k}", "name": "search", "arguments": "{}"}])
        spans.append(Span(f"l{k}", "llm", parent_id="root", input=list(history), output=[out], start_time=2 * k + 1))
        history += [out, Message("tool", para(1400), tool_call_id=f"c{k}")]
    spans.append(
        Span(
            "final",
            "llm",
            parent_id="root",
            input=list(history),
            output=[Message("assistant", "FINAL " + para(50))],
            start_time=1001,
        )
    )
    count_tokens("warm up the encoder")
    start = time.process_time()  # CPU time: other processes on the machine do not count
    out = preprocess(trace(spans), PreprocessSettings())
    elapsed = time.process_time() - start
    print(f"\n1M-token trace, 501 llm spans: {elapsed:.2f}s, {out.tokens_before:,} -> {out.tokens_after:,} tokens")
    assert out.tokens_before > 1_000_000 and out.tokens_after <= 128_000
    assert out.text.startswith("[system]") and "FINAL" in out.text
    assert elapsed < 4.0  # about a second on a 2-core box; generous for slow CI


def test_tokens_work_offline_with_a_bad_cache_setting(tmp_path):
    script = (
        "import os, socket\n"
        "def refuse(*a, **k): raise OSError('network disabled')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from topics_assets.preprocess.tokens import count_tokens\n"
        "assert count_tokens('hello world') == 2\n"
        "assert os.environ['TIKTOKEN_CACHE_DIR'] == os.environ['EXPECTED']\n"
    )
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"),
        "EXPECTED": str(tmp_path / "empty"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)


def test_truncate_to_tokens():
    text = "The quick brown fox jumps over the lazy dog. " * 100
    cut = truncate_to_tokens(text, 25)
    assert text.startswith(cut) and count_tokens(cut) <= 25 and len(cut) > 50
    assert truncate_to_tokens("short", 100) == "short" and truncate_to_tokens("x", 0) == ""


# ---------------------------------------------------------------------------
# Properties and the shapes agent frameworks log

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_text = st.lists(
    st.sampled_from(list("ab c.,;:!?/\\\n\r\t[]{}\"'-_0123456789éü中🙂") + [" the", "\n\n", "  ", "'s", "//"]),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "tool x", "assistant -> f", "system"]), _text), min_size=1,
                max_size=6))
def test_block_token_counts_add_up_to_the_joined_text(blocks):
    """Why per-block counts are exact: the tokenizer never merges across "\\n\\n" before a "[label]"."""
    texts = [f"[{label}] {body}" for label, body in blocks]
    pieces = [t + "\n\n" for t in texts[:-1]] + [texts[-1]]
    assert sum(count_tokens(p) for p in pieces) == count_tokens("\n\n".join(texts))


_ids = st.sampled_from(["a", "b", "c", "d", "e", None, "missing"])
_message = st.builds(
    Message,
    role=st.sampled_from(["user", "assistant", "tool", "system"]),
    content=st.sampled_from(["hi", "yes", "mail x@example.com", "Error: boom", "{\"k\": 1}", "", "ok " * 50]),
    tool_call_id=st.sampled_from([None, "c1", "c2"]),
)
_span = st.builds(
    Span,
    id=st.sampled_from(["a", "b", "c", "d", "e"]),
    type=st.sampled_from(["llm", "tool", "score", "task", "other"]),
    parent_id=_ids,
    name=st.sampled_from([None, "lookup"]),
    input=st.lists(_message, max_size=5),
    output=st.one_of(st.none(), st.lists(_message, max_size=2), st.just({"k": 1})),
    metadata=st.sampled_from([{}, {"tool_call_id": "c1"}]),
    start_time=st.one_of(st.none(), st.floats(0, 10)),
    error=st.sampled_from([None, "timeout"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_span, max_size=8), st.sampled_from([40, 200, 128_000]))
@example(  # a two-span parent cycle: reachable from no root
    [Span("a", "llm", parent_id="b", input=[Message("user", "in a")]),
     Span("b", "llm", parent_id="a", input=[Message("user", "in b")])],
    128_000,
)
def test_any_span_tree_preprocesses_within_the_cap(spans, max_tokens):
    """Cycles, self-parents, missing parents, duplicate ids, odd outputs: never an exception, never over the cap."""
    for i, s in enumerate(spans):  # user messages unique to their span, so a lost span shows
        s.input = [Message(m.role, f"{m.content} #{i}", m.tool_calls, m.tool_call_id) if m.role == "user" else m
                   for m in s.input]
    out = preprocess(trace(spans), PreprocessSettings(max_tokens=max_tokens))
    assert out.tokens_after <= max_tokens and out.tokens_after == count_tokens(out.text)
    assert "x@example.com" not in out.text
    assert out.tokens_before >= out.tokens_after or out.redactions
    again = preprocess(Trace.from_json(trace(spans).to_json()), PreprocessSettings(max_tokens=max_tokens))
    assert again.text == out.text  # shared objects (in-memory) and parsed copies give the same text
    if max_tokens == 128_000 and not any(s.type == "score" for s in spans):  # nothing dropped or cut
        for s in spans:
            for m in (s.input if s.type == "llm" else []):
                if m.role == "user" and m.content.strip() and "@" not in m.content:
                    assert f"[user] {m.content}" in out.text, "a span was lost (a parent cycle?)"


def test_interleaved_sub_agents_are_each_deduplicated():
    """An orchestrator and a sub-agent alternate calls; each re-sends its own growing history."""
    main = [Message("user", "Plan my trip to Rome.")]
    sub = [Message("system", "You search hotels."), Message("user", "Hotels in Rome, May 3-5")]
    spans = []
    for k in range(6):
        out_main = Message("assistant", f"main step {k}")
        out_sub = Message("assistant", f"sub step {k}")
        spans.append(Span(f"m{k}", "llm", input=list(main), output=[out_main], start_time=2 * k))
        spans.append(Span(f"s{k}", "llm", input=list(sub), output=[out_sub], start_time=2 * k + 1))
        main.append(out_main)
        sub.append(out_sub)
    text = preprocess(trace(spans), PreprocessSettings()).text
    for k in range(6):
        assert text.count(f"main step {k}") == 1 and text.count(f"sub step {k}") == 1
    assert text.count("Plan my trip to Rome.") == 1 and text.count("Hotels in Rome") == 1
    parsed = preprocess(Trace.from_json(trace(spans).to_json()), PreprocessSettings()).text
    assert parsed == text


def test_tool_span_before_its_message_is_shown_once_by_call_id():
    call = {"id": "call_9", "name": "get_order", "arguments": "{}"}
    ask = Message("user", "where is it?")
    a1 = Message("assistant", "", tool_calls=[call])
    spans = [
        Span("l1", "llm", input=[ask], output=[a1], start_time=1),
        # The span logs a dict; the message re-sends it with different spacing: the same call, shown once.
        Span("t1", "tool", name="get_order", output={"status": "late", "eta": "Fri"}, start_time=2,
             metadata={"tool_call_id": "call_9"}),
        Span("l2", "llm", input=[ask, a1, Message("tool", '{"eta":"Fri",  "status":"late"}', tool_call_id="call_9")],
             output=[Message("assistant", "It arrives Friday.")], start_time=3),
    ]
    text = preprocess(trace(spans), PreprocessSettings()).text
    assert text.count("late") == 1 and '[tool get_order] {"status":"late","eta":"Fri"}' in text


def test_tokens_before_counts_the_whole_system_prompt():
    system = "You are a careful agent. " + "Rule: be kind. " * 400
    t = trace([Span("l", "llm", input=[Message("system", system), Message("user", "hi")])])
    out = preprocess(t, PreprocessSettings(redact=False))
    assert out.tokens_after == count_tokens(out.text) < count_tokens(system)
    assert abs(out.tokens_before - count_tokens(system) - count_tokens("[user] hi") - 4) < 30


def test_redaction_counts_stay_exact_when_blocks_are_odd():
    """A NUL in the text, or a custom pattern that spans two messages: the count is still the real one."""
    t = trace([Span("l", "llm", input=[Message("user", "nul \x00 here, mail a@b.io"), Message("user", "hello")],
                    output=[Message("assistant", "bye a@b.io")])])
    out = preprocess(t, PreprocessSettings())
    assert out.redactions == {"EMAIL": 2} and out.tokens_after == count_tokens(out.text)
    across = PreprocessSettings(extra_patterns={"pair": r"hello\s+\[assistant\] bye"})
    for t in (t, trace([Span("l", "llm", input=[Message("user", "mail a@b.io"), Message("user", "hello")],
                             output=[Message("assistant", "bye a@b.io")])])):
        out = preprocess(t, across)
        assert out.redactions == {"EMAIL": 2, "PAIR": 1} and "[PAIR]" in out.text
        assert out.tokens_after == count_tokens(out.text)
