"""Tests for the synthetic trace generator (topics_assets/demo/).

They pin the properties `topics demo` and the pipeline tests rely on:
determinism, the span-format shape, a growing llm history, tool errors only
where they belong, PII to redact, and enough variety to cluster.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import random
import re
import string
import time

import pytest

from topics_assets.demo import generator as S
from topics_assets.demo import SCENARIOS, generate_traces, write_jsonl

END = dt.date(2026, 11, 20)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE_RE = re.compile(r"(?:\+1 \(\d{3}\) |\b\d{3}-)555-01\d\d\b|\+44 7700 900\d{3}\b")
CARD_RE = re.compile(r"(?<![\d-])\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?![\d-])")
KEY_RE = re.compile(r"\bsk-[A-Za-z0-9]{40}\b")


@pytest.fixture(scope="module")
def traces() -> list[dict]:
    return generate_traces(1200, days=7, seed=7, end=END)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def text_of(content) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


def llm_spans(trace: dict) -> list[dict]:
    return [s for s in trace["spans"] if s["type"] == "llm"]


def full_conversation(trace: dict) -> list[dict]:
    """The last llm span's history plus its reply: every message of the trace."""
    last = llm_spans(trace)[-1]
    return last["input"]["messages"] + [last["output"]]


def user_texts(trace: dict) -> list[str]:
    return [text_of(m["content"]) for m in full_conversation(trace) if m["role"] == "user"]


# ---------------------------------------------------------------- determinism


def test_same_seed_is_identical_and_other_seed_differs():
    a = generate_traces(150, seed=7, end=END)
    b = generate_traces(150, seed=7, end=END)
    c = generate_traces(150, seed=8, end=END)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c)
    # Not just the ids: the content differs too.
    assert [t["spans"][0]["input"] for t in a] != [t["spans"][0]["input"] for t in c]


def test_trace_i_does_not_depend_on_how_many_were_asked_for():
    assert generate_traces(20, seed=3, end=END) == generate_traces(60, seed=3, end=END)[:20]


def test_count_and_ids(traces):
    assert len(traces) == 1200
    ids = [t["trace_id"] for t in traces]
    assert ids == [f"syn-7-{i:06d}" for i in range(1200)]
    assert len(set(ids)) == len(ids)
    assert generate_traces(0, end=END) == []
    assert [t["trace_id"] for t in generate_traces(3, seed=42, end=END)] == [
        "syn-42-000000", "syn-42-000001", "syn-42-000002"]
    assert {t["project"] for t in generate_traces(5, end=END, project="p1")} == {"p1"}


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        generate_traces(10, days=0)
    with pytest.raises(ValueError):
        generate_traces(-1)


# ---------------------------------------------------------------- coverage


def test_families_sentiments_outcomes_all_present(traces):
    assert len(SCENARIOS) >= 18 and len(set(SCENARIOS)) == len(SCENARIOS)
    by_family = collections.Counter(t["labels"]["scenario"] for t in traces)
    assert set(by_family) == set(SCENARIOS)
    assert min(by_family.values()) >= 15, by_family
    assert {t["labels"]["sentiment"] for t in traces} == set(S.SENTIMENTS)
    assert {t["labels"]["outcome"] for t in traces} == set(S.OUTCOMES)
    for t in traces:
        assert set(t["labels"]) == {"scenario", "sentiment", "outcome"}


def test_every_family_has_enough_templates():
    for fam in S.FAMILIES:
        assert len(fam.openers) >= 6, fam.name
        assert len({o if isinstance(o, str) else o[0] for o in fam.openers}) == len(fam.openers), fam.name


def test_every_template_fills():
    """A typo'd slot would otherwise only surface for the unlucky seed that draws it."""
    ctx = S._slots(random.Random(0), END)
    ctx.update(topic="t", team="t", system="t", action="t")
    for fam in S.FAMILIES:
        for o in fam.openers:
            (o if isinstance(o, str) else o[0]).format_map(ctx)
        for tpl in (fam.ask, *fam.details, *fam.resolve):
            tpl.format_map(ctx)
        for tool in fam.tools:
            json.dumps(S._fill(tool.args, ctx))
            json.dumps(S._fill(tool.result, ctx))
    for table in (S.ESCALATE_POLICY, S.ESCALATE_PROACTIVE, S.ESCALATE_AFTER_ERROR, S.ESCALATE_DONE,
                  S.RETRY_PREFACE, S.TOOL_ERROR_APOLOGY, S.PII_EMAIL, S.PII_PHONE, S.PII_CARD, S.PII_KEY):
        for tpl in table:
            tpl.format_map(ctx)


def test_first_requests_are_varied(traces):
    firsts = [t["spans"][0]["input"]["user"] for t in traces]
    assert len(set(firsts)) > 300
    # ...and each family contributes many distinct ones, not one family carrying the count.
    per_family = collections.defaultdict(set)
    for t, f in zip(traces, firsts):
        per_family[t["labels"]["scenario"]].add(f)
    assert all(len(v) >= 10 for v in per_family.values())


def test_started_at_covers_exactly_the_requested_days(traces):
    days = {t["started_at"][:10] for t in traces}
    assert days == {(END - dt.timedelta(days=k)).isoformat() for k in range(7)}
    assert len({t["started_at"][11:13] for t in traces}) >= 20  # spread over times of day
    for n, d in ((3, 3), (10, 3), (40, 14)):
        got = {t["started_at"][:10] for t in generate_traces(n, days=d, end=END)}
        assert len(got) == min(n, d)
        assert max(got) <= END.isoformat()


def test_default_end_is_today_utc():
    before = dt.datetime.now(dt.timezone.utc).date()
    got = {t["started_at"][:10] for t in generate_traces(10, days=2)}
    after = dt.datetime.now(dt.timezone.utc).date()
    assert max(got) in {before.isoformat(), after.isoformat()}
    assert len(got) == 2


# ---------------------------------------------------------------- shape


def test_span_shape(traces):
    keys = {"id", "parent_id", "type", "name", "input", "output", "metadata", "start_time", "end_time", "error"}
    for t in traces:
        assert ISO_Z.match(t["started_at"]) and t["started_at"].endswith("Z")
        spans = t["spans"]
        ids = [s["id"] for s in spans]
        assert len(set(ids)) == len(ids)
        root = spans[0]
        assert root["type"] == "task" and root["name"] == "support-agent" and root["parent_id"] is None
        assert root["start_time"][:19] == t["started_at"][:19]
        assert isinstance(root["input"]["user"], str) and root["input"]["user"]
        assert root["output"]["final"] == llm_spans(t)[-1]["output"]["content"]
        for s in spans:
            assert set(s) == keys
            assert ISO_Z.match(s["start_time"]) and ISO_Z.match(s["end_time"])
            assert s["start_time"] <= s["end_time"] <= root["end_time"]
            assert s["start_time"] >= root["start_time"]
            if s is not root:
                assert s["parent_id"] == "s0"
        assert 2 <= len(llm_spans(t)) <= 6
        for s in llm_spans(t):
            meta = s["metadata"]
            assert meta["model"] in s["name"]
            assert meta["tokens"]["prompt"] > 0 and meta["tokens"]["completion"] > 0
        assert json.loads(json.dumps(t)) == t  # JSON-ready


def test_llm_count_range_is_used(traces):
    counts = collections.Counter(len(llm_spans(t)) for t in traces)
    assert min(counts) == 2 and max(counts) == 6
    assert len(counts) == 5


def test_each_trace_has_one_score_span_at_the_end(traces):
    for t in traces:
        scores = [s for s in t["spans"] if s["type"] == "score"]
        assert len(scores) == 1
        assert t["spans"][-1] is scores[0]
        assert scores[0]["name"] == "helpfulness_scorer"
        assert 0.0 <= scores[0]["output"]["score"] <= 1.0


def test_scores_track_outcome(traces):
    mean = collections.defaultdict(list)
    for t in traces:
        mean[t["labels"]["outcome"]].append(t["spans"][-1]["output"]["score"])
    avg = {k: sum(v) / len(v) for k, v in mean.items()}
    assert avg["resolved"] > avg["escalated"] > avg["tool_error"]


def test_llm_history_grows_by_prefix_extension(traces):
    for t in traces:
        llms = llm_spans(t)
        first = llms[0]["input"]["messages"]
        assert first[0]["role"] == "system" and first[1]["role"] == "user"
        assert text_of(first[1]["content"]) == t["spans"][0]["input"]["user"]
        for prev, cur in zip(llms, llms[1:]):
            p, c = prev["input"]["messages"], cur["input"]["messages"]
            assert len(c) > len(p) + 1
            assert c[: len(p)] == p
            assert c[len(p)] == prev["output"]  # the previous reply is re-sent next
        assert all(m["role"] in {"system", "user", "assistant", "tool"} for m in full_conversation(t))


def test_histories_are_independent_objects(traces):
    """Mutating one span's history (e.g. in-place redaction) must not leak into another span."""
    t = next(t for t in traces if len(llm_spans(t)) >= 3)
    a, b = llm_spans(t)[0]["input"]["messages"], llm_spans(t)[1]["input"]["messages"]
    assert a[0] is not b[0] and a is not b
    assert llm_spans(t)[0]["output"] is not b[len(a)]


def test_tool_calls_match_tool_spans_and_tool_messages(traces):
    for t in traces:
        tool_spans = [s for s in t["spans"] if s["type"] == "tool"]
        calls = [c for s in llm_spans(t) for c in s["output"].get("tool_calls", [])]
        assert len(calls) == len(tool_spans)
        assert len({c["id"] for c in calls}) == len(calls)
        convo = full_conversation(t)
        tool_msgs = {m["tool_call_id"]: m for m in convo if m["role"] == "tool"}
        for call, span in zip(calls, tool_spans):
            assert call["type"] == "function"
            assert span["name"] == call["function"]["name"]
            assert span["input"] == json.loads(call["function"]["arguments"])
            msg = tool_msgs[call["id"]]  # the result is fed back into the history
            assert msg["name"] == span["name"]
            if span["error"]:
                assert span["output"] is None
                assert json.loads(msg["content"]) == {"error": span["error"]}
            else:
                assert json.loads(msg["content"]) == span["output"]


# ---------------------------------------------------------------- errors & outcomes


def test_tool_errors_only_in_flaky_families(traces):
    flaky = set(S.TOOL_ERROR_FAMILIES)
    assert "inventory_check_tool_failure" in flaky and len(flaky) < len(SCENARIOS)
    errored = collections.Counter()
    for t in traces:
        errs = [s for s in t["spans"] if s["type"] == "tool" and s["error"]]
        fam = t["labels"]["scenario"]
        if errs:
            errored[fam] += 1
            assert fam in flaky, (t["trace_id"], fam)
        if fam == "inventory_check_tool_failure":
            assert errs, t["trace_id"]  # this family always hits the failing backend
        if t["labels"]["outcome"] == "tool_error":
            assert fam in flaky and errs
            # The agent retried and the last attempt still failed.
            assert len(errs) >= 2
            assert [s for s in t["spans"] if s["type"] == "tool"][-1]["error"]
        # Errors are never set on non-tool spans.
        assert all(s["error"] is None for s in t["spans"] if s["type"] != "tool")
    assert set(errored) >= {"inventory_check_tool_failure"} and len(errored) >= 3
    texts = {s["error"] for t in traces for s in t["spans"] if s["error"]}
    assert any(e.startswith("TimeoutError") for e in texts) and any("HTTP 500" in e for e in texts)


def test_conversation_reflects_tool_failure(traces):
    for t in traces:
        if t["labels"]["outcome"] == "tool_error":
            final = t["spans"][0]["output"]["final"].lower()
            reply_after_failure = [s["output"]["content"] for s in llm_spans(t)
                                   if "error" in s["output"]["content"].lower()
                                   or "isn't responding" in s["output"]["content"]]
            assert reply_after_failure, t["trace_id"]
            assert "sorry" in final or "apolog" in final


def test_escalations_call_the_handoff_tool(traces):
    for t in traces:
        names = [s["name"] for s in t["spans"] if s["type"] == "tool"]
        assert ("escalate_to_human" in names) == (t["labels"]["outcome"] == "escalated")


def test_sentiment_shows_in_follow_up_wording(traces):
    shouting = re.compile(r"\b[A-Z]{4,}\b|!!")
    follow_ups = collections.defaultdict(list)
    for t in traces:
        follow_ups[t["labels"]["sentiment"]].extend(user_texts(t)[1:])
    assert all(follow_ups[s] for s in S.SENTIMENTS)
    assert all(shouting.search(u) for u in follow_ups["angry"])
    satisfied = follow_ups["satisfied"]
    assert sum(bool(shouting.search(u)) for u in satisfied) / len(satisfied) < 0.05
    assert sum("?" in u for u in follow_ups["confused"]) / len(follow_ups["confused"]) > 0.6


# ---------------------------------------------------------------- PII & images


def test_pii_appears_sometimes(traces):
    found = collections.Counter()
    cards = []
    for t in traces:
        text = " ".join(user_texts(t))
        for kind, rx in (("email", EMAIL_RE), ("phone", PHONE_RE), ("key", KEY_RE)):
            if rx.search(text):
                found[kind] += 1
        got = [m.group(0) for m in CARD_RE.finditer(text)]
        if got:
            found["card"] += 1
            cards.extend(got)
    assert found["email"] >= 50 and found["phone"] >= 20 and found["card"] >= 10 and found["key"] >= 3, found
    assert all(v < len(traces) / 2 for v in found.values()), found  # sometimes, not always
    assert all(luhn_ok(c) for c in cards)


def test_generated_cards_pass_luhn_directly():
    for seed in range(300):
        card = S._card_number(random.Random(seed))
        digits = re.sub(r"\D", "", card)
        assert len(digits) == 16 and luhn_ok(card), card
        bad = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        assert not luhn_ok(bad)


def test_api_keys_look_real(traces):
    keys = [k for t in traces for k in KEY_RE.findall(" ".join(user_texts(t)))]
    assert keys and all(len(k) == 43 and set(k[3:]) <= set(string.ascii_letters + string.digits) for k in keys)


def test_some_user_messages_carry_base64_images(traces):
    with_image = 0
    for t in traces:
        first_user = llm_spans(t)[0]["input"]["messages"][1]
        if isinstance(first_user["content"], list):
            with_image += 1
            text_part, image_part = first_user["content"]
            assert text_part["type"] == "text" and text_part["text"] == t["spans"][0]["input"]["user"]
            url = image_part["image_url"]["url"]
            assert image_part["type"] == "image_url" and url.startswith("data:image/png;base64,")
            b64 = url.split(",", 1)[1]
            assert 2000 <= len(b64) <= 4200
            assert base64.b64decode(b64, validate=True).startswith(b"\x89PNG")
    assert 0.02 * len(traces) <= with_image <= 0.10 * len(traces), with_image


# ---------------------------------------------------------------- io & speed


def test_write_jsonl_round_trips(tmp_path):
    recs = generate_traces(25, end=END)
    path = tmp_path / "sub" / "traces.jsonl"
    assert write_jsonl(recs, path) == 25
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 25
    assert [json.loads(line) for line in lines] == recs
    assert write_jsonl(iter(recs[:3]), str(path)) == 3  # any iterable, str path, overwrites
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_generation_is_fast():
    generate_traces(20, end=END)  # warm imports / caches
    t0 = time.process_time()  # CPU time: other processes on the machine do not count
    out = generate_traces(1200, days=7, seed=11, end=END)
    elapsed = time.process_time() - t0
    assert len(out) == 1200
    assert elapsed < 2.0, f"1,200 traces took {elapsed:.2f}s"
