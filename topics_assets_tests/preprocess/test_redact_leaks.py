"""Each leak the redaction benchmark found (issue 15), with the planted corpus it was measured on.

Every test here failed before its fix: secrets after JSON escapes, whole kinds not covered, a
secret at the system prompt's cut, Unicode tricks, base64, raw payloads and quarantine snippets
stored as they came, and planted secrets copied into facets.
"""

from __future__ import annotations

import base64
import json

import pytest

from topics_assets.config import PreprocessSettings
from topics_assets.ingest.files import read_file
from topics_assets.ingest.stage import ingest_paths
from topics_assets.preprocess.core import preprocess
from topics_assets.preprocess.redact import iban_ok, normalise, redact, rules, ssn_ok
from topics_assets.preprocess.stage import preprocess_days
from topics_assets.store import DuckDBStore
from topics_assets.testing.planted import KINDS, PLACEMENTS, planted, trace_id, trace_record, write_corpus
from topics_assets.traces import Message, Span, Trace


def leaked(secret: str, text: str) -> bool:
    seen, s = normalise(text), normalise(secret)
    return s in seen or (len(s) >= 16 and (s[: len(s) // 2] in seen or s[len(s) // 2:] in seen))


def _trace(tmp_path, kind: str, placement: str) -> tuple[Trace, str]:
    suffix, line, p = trace_record(kind, placement)
    path = tmp_path / f"{kind}-{placement}.{suffix}"
    path.write_text(line + "\n")
    (item,) = list(read_file(str(path), default_project="p"))
    assert isinstance(item, Trace), item
    return item, p.secret


# ---------------------------------------------------------------------------
# Escaped JSON: what follows "\n" or "\t" inside a JSON string


@pytest.mark.parametrize("text", [
    json.dumps({"out": "ok\nAKIAJQ4XMPLEXAMPLE7Z"}),
    json.dumps({"out": "ok\tAKIAJQ4XMPLEXAMPLE7Z"}),
    json.dumps({"env": "A=1\nSTRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n"}),
    json.dumps(json.dumps({"env": "A=1\nAKIAJQ4XMPLEXAMPLE7Z"})),  # escaped twice
    json.dumps({"k": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAwJ\nQk9ZcGxvYWQ\n-----END RSA PRIVATE KEY-----"}),
    '{"out": "ok\\nAKIAJQ4XMPLEXAMPLE7Z", "broken": "\\d"}',  # one literal that does not decode
])
def test_secrets_after_escapes_inside_json_are_redacted(text):
    out, counts = redact(text)
    assert "AKIAJQ4XMPLEXAMPLE7Z" not in out and "4eC39HqLyjWDarjtT1zdp7dc" not in out and "MIIEow" not in out, out
    assert counts
    json.loads(out) if text.startswith(("{", '"')) and "\\d" not in text else None  # still valid JSON


def test_decoding_changes_nothing_that_holds_no_secret():
    text = json.dumps({"msg": "caf\u00e9\nline two\ttabbed \u2014 \uff21", "n": 3}, ensure_ascii=True)
    assert redact(text) == (text, {})


# ---------------------------------------------------------------------------
# Whole kinds, in every placement, through the real ingester and preprocessor


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_planted_kind_is_redacted_in_every_placement(kind, tmp_path):
    from topics_assets.ingest.stage import redact_payload

    for placement in PLACEMENTS:
        trace, secret = _trace(tmp_path, kind, placement)
        out = preprocess(trace, PreprocessSettings())
        assert not leaked(secret, out.text), (placement, out.text)
        assert out.redactions, placement
        assert not leaked(secret, redact_payload(trace.to_json())), placement


def test_the_planted_corpus_has_forty_kinds_in_six_placements():
    assert len(KINDS) >= 40 and len(PLACEMENTS) >= 6
    assert iban_ok(planted("iban_de").secret) and iban_ok(planted("iban_fr").secret)
    assert ssn_ok(planted("ssn").secret)
    assert len({r.id for r in rules()}) == len(rules()) >= 35


# ---------------------------------------------------------------------------
# The system prompt is redacted before it is shortened


def test_a_secret_at_the_system_prompt_cut_is_not_kept_by_half():
    key = "sk_live_" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    system = "x" * 290 + " " + key + " " + "Policy clause. " * 50
    t = Trace("t", "p", __import__("datetime").datetime(2025, 6, 2, tzinfo=__import__("datetime").timezone.utc),
              [Span("l", "llm", input=[Message("system", system), Message("user", "hi")])])
    text = preprocess(t, PreprocessSettings()).text
    assert "[API_KEY]" in text and "sk_live_" not in text and "a1B2c3D4" not in text, text
    assert "system prompt shortened" in text


def test_a_secret_at_the_token_cap_is_redacted_before_the_cut():
    key = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    big = "word " * 3000 + key + " tail " * 3000
    t = Trace("t", "p", __import__("datetime").datetime(2025, 6, 2, tzinfo=__import__("datetime").timezone.utc),
              [Span("l", "llm", input=[Message("user", big)], output=[Message("assistant", "ok")])])
    out = preprocess(t, PreprocessSettings(max_tokens=3000))
    assert out.truncated and "ghp_" not in out.text and "A1b2C3d4" not in out.text


# ---------------------------------------------------------------------------
# Unicode, base64, glued tokens


@pytest.mark.parametrize("text,kind", [
    ("card \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11", "CARD"),
    ("key AKIAJQ4X\u200bMPLEXAMPLE7Z", "API_KEY"),
    ("key sk_live_4eC39Hq\u200dLyjWDarjtT1zdp7dc", "API_KEY"),
    ("token\u00a0ghp_abcdefghijklmnopqrstuvwxyz0123456789", "API_KEY"),
    ("mail jane\u200b.doe@example.com", "EMAIL"),
])
def test_normalised_before_matching(text, kind):
    out, counts = redact(text)
    assert counts.get(kind) == 1, (out, counts)
    assert not any(c.isdigit() for c in normalise(out).split("[")[0][-3:])


def test_clean_non_ascii_text_is_returned_unchanged():
    text = "Caf\u00e9 \uff21\uff22\uff23 \ufb01ne \u2014 r\u00e9servation confirm\u00e9e, \u200bmerci"
    assert redact(text) == (text, {})


def test_a_secret_in_base64_is_found():
    blob = base64.b64encode(b"STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n").decode()
    out, counts = redact(f"config: {blob} end")
    assert blob not in out and counts == {"API_KEY": 1}
    harmless = base64.b64encode(b"just a harmless sentence about flights").decode()
    assert redact(f"data: {harmless}") == (f"data: {harmless}", {})


@pytest.mark.parametrize("text", [
    "stripekeysk_live_4eC39HqLyjWDarjtT1zdp7dc", "awsAKIAJQ4XMPLEXAMPLE7Z", "tokghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "slackxoxb-123456789012-abcdefABCDEF", "jwteyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
])
def test_tokens_glued_to_a_word_are_found(text):
    out, counts = redact(text)
    assert counts and out.count("[") == 1, out


@pytest.mark.parametrize("text", [
    "passengers: 2, basic economy, first class",
    "the password is required to log in; reset your password: see settings",
    "order W4923227, flight HAT041 on 2024-05-15, total 1,234.56 USD",
    "dates 01.02.2024 and 03-12-2026, time 09:30:00",
    "IBAN GB82 WEST 1234 5698 7654 33 has a bad checksum",
    "SSN 000-12-3456 and 666-12-3456 are never issued",
    "token: none, api_key: <your key here>, secret = ${SECRET}",
    "user_id mia_li_3668 and reservation 4WQ150 with payment credit_card_7815826",
    "see https://example.com/docs and postgres://localhost/app",
    "task-abcdefghijklmnopqrstuvwxyz0123 and a scheduled_departure_time_est field",
])
def test_lookalikes_of_the_new_kinds_stay(text):
    assert redact(text) == (text, {})


# ---------------------------------------------------------------------------
# What ingest stores: preprocess.store_raw


def _bad_and_good(tmp_path) -> str:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "timestamp": "2025-06-02T10:00:00Z", "project": "p",
                    "messages": [{"role": "user", "content": "key AKIAJQ4XMPLEXAMPLE7Z, mail jane@example.com"}]}),
        "not json: password=hunter2x9 and AKIAJQ4XMPLEXAMPLE7Z",
    ]) + "\n")
    return str(path)


@pytest.mark.parametrize("mode", ["full", "redacted", "none"])
def test_store_raw_decides_what_raw_traces_and_quarantine_keep(mode, settings, tmp_path):
    settings.partitions_start = "2020-01-01"
    settings.preprocess.store_raw = mode
    store = DuckDBStore(settings.database_path)
    path = _bad_and_good(tmp_path)
    first = ingest_paths(store=store, settings=settings, paths=[path])
    assert (first.loaded, first.quarantined) == (1, 1)
    payload = store.query_df("SELECT payload FROM raw_traces").payload[0]
    snippet = store.query_df("SELECT snippet FROM quarantine").snippet[0]
    if mode == "full":
        assert "AKIAJQ4XMPLEXAMPLE7Z" in payload and "hunter2x9" in snippet
    else:
        assert "AKIAJQ4XMPLEXAMPLE7Z" not in payload and "jane@example.com" not in payload
        assert Trace.from_json(payload).trace_id == "a"  # still a trace preprocessing reads
        assert snippet == ("" if mode == "none" else "not json: password=[PASSWORD] and [API_KEY]")
    again = ingest_paths(store=store, settings=settings, paths=[path])
    assert (again.unchanged, again.updated) == (1, 0)  # the same trace again: unchanged (dedup)
    done = preprocess_days(store=store, settings=settings, days=first.days)
    assert done.redactions == {"API_KEY": 1, "EMAIL": 1}  # placeholders stored at ingest still count
    content = store.query_df("SELECT content FROM traces").content[0]
    assert "AKIAJQ4XMPLEXAMPLE7Z" not in content and "[API_KEY]" in content


def test_store_raw_default_is_redacted():
    assert PreprocessSettings().store_raw == "redacted"


def test_a_quarantine_snippet_is_redacted_before_it_is_cut(settings, tmp_path):
    settings.partitions_start = "2020-01-01"
    path = tmp_path / "bad.jsonl"
    path.write_text("x" * 185 + " AKIAJQ4XMPLEXAMPLE7Z not json\n")  # the key straddles the 200-character cut
    store = DuckDBStore(settings.database_path)
    ingest_paths(store=store, settings=settings, paths=[str(path)])
    snippet = store.query_df("SELECT snippet FROM quarantine").snippet[0]
    assert "AKIAJQ4X" not in snippet and len(snippet) <= 200 and "[API_KEY]" in snippet


# ---------------------------------------------------------------------------
# Offline facets read the redacted text: no planted secret reaches facets or facet_embeddings


def test_no_planted_secret_reaches_facets_or_their_embeddings(settings, tmp_path):
    from topics_assets.embed.stage import embed_days
    from topics_assets.facets.stage import facet_days
    from topics_assets_tests.test_project_scope import HashingEmbedder

    settings.partitions_start = "2020-01-01"
    kinds = ["aws_access_key", "stripe_secret_key", "postgres_url_password", "card_dots", "email", "iban_de",
             "pem_without_end", "secret_zero_width", "phone_uk_national", "secret_in_base64"]
    corpus = write_corpus(tmp_path / "corpus", kinds=kinds)
    store = DuckDBStore(settings.database_path)
    ing = ingest_paths(store=store, settings=settings, paths=sorted(str(p) for p in (tmp_path / "corpus").iterdir()))
    assert ing.loaded == len(corpus)
    preprocess_days(store=store, settings=settings, days=ing.days)
    faceted = facet_days(store=store, settings=settings, days=ing.days)
    assert faceted.faceted == len(corpus) and faceted.failed == 0
    embed_days(store=store, settings=settings, days=ing.days, embedder=HashingEmbedder())
    facets = store.query_df("SELECT trace_id, text FROM facets")
    vectors = store.query_df("SELECT text FROM facet_embeddings")
    assert len(facets) and len(vectors)
    by_trace = facets.groupby("trace_id").text.apply(" ".join)
    for (kind, placement), p in corpus.items():
        assert not leaked(p.secret, by_trace.get(trace_id(kind, placement), "")), (kind, placement)
        assert not any(leaked(p.secret, t) for t in vectors.text), (kind, placement)
