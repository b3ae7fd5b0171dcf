"""The offline engine: sentiment on held-out sentences, issues that name every signal, task without fillers."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from importlib import resources

import pytest

from topics_assets.config import BUILTIN_FACETS, PreprocessSettings
from topics_assets.embed import LocalEmbedder
from topics_assets.facets.extractive import (
    EXTRACTIVE_MODEL,
    MAX_TASK_CHARS,
    ExtractiveFacetEngine,
    SentimentClassifier,
    first_request,
    load_prototypes,
)
from topics_assets.preprocess import preprocess
from topics_assets.traces import Message, Span, Trace

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def embedder():
    return LocalEmbedder()


@pytest.fixture(scope="module")
def engine(embedder):
    return ExtractiveFacetEngine(BUILTIN_FACETS, embedder=embedder)


@pytest.fixture(scope="module")
def classifier(engine):
    return engine.classifier


def facets_of(engine, spans: list[Span]) -> dict[str, str]:
    return engine.facet(preprocess(Trace("t", "p", NOW, spans), PreprocessSettings()).text)


def chat(*turns: tuple[str, str]) -> list[Span]:
    msgs = [Message(role, text) for role, text in turns]
    return [Span("l", "llm", input=msgs[:-1], output=[msgs[-1]])]


def test_model_id_changed_with_the_output():
    assert EXTRACTIVE_MODEL == "extractive-v2"


# ----- sentiment ------------------------------------------------------------------------------

HELD_OUT = {  # written for this test; none is a prototype
    "satisfied": ["Thanks a million, the invoice is correct now.", "Super, that did the trick!",
                  "Really appreciate the quick help."],
    "neutral": ["I want to add a second passenger to the booking.", "The parcel number is on the receipt.",
                "Please send the statement for March.", "transfer me to a human", "tell me a joke",
                "What time does the store open on Sunday?"],
    "confused": ["I honestly don't get what I'm supposed to enter here.", "Where exactly is that menu? I can't see it.",
                 "Sorry, which of the two accounts do you mean?"],
    "frustrated": ["I'm upset, this is the fourth email I've sent about it.",
                   "It broke again, just like last week and the week before.",
                   "I've spent the whole afternoon on this and it still fails."],
    "angry": ["This is disgraceful, I want compensation immediately!", "Your company is a total rip-off.",
              "I'm absolutely fuming, fix this NOW."],
}


def test_sentiment_on_held_out_sentences(classifier):
    sentences = [s for v in HELD_OUT.values() for s in v]
    truth = [k for k, v in HELD_OUT.items() for _ in v]
    got = [label for label, _ in classifier.sentence_labels(sentences)]
    wrong = [(s, t, g) for s, t, g in zip(sentences, truth, got) if t != g]
    assert len(wrong) <= 3, wrong  # 18 of 21 at least
    # The substring engine's known mistakes are not made.
    assert dict(zip(sentences, got))["transfer me to a human"] != "angry"
    assert dict(zip(sentences, got))["tell me a joke"] != "angry"
    assert dict(zip(sentences, got))["What time does the store open on Sunday?"] != "confused"


def test_sentiment_facet_quotes_the_most_severe_mood(engine):
    f = facets_of(engine, chat(("user", "Hi. I'd like to move my dentist appointment."),
                               ("assistant", "Done, it's on Friday now."),
                               ("user", "This is the second time you moved the wrong one, I'm really fed up."),
                               ("assistant", "Sorry! Fixed.")))
    assert f["sentiment"].startswith(("Frustrated user:", "Angry user:")) and "second time" in f["sentiment"]
    calm = facets_of(engine, chat(("user", "Please change my plan to the yearly one."), ("assistant", "Done.")))
    assert calm["sentiment"].startswith("Neutral user")


def test_prototypes_are_not_the_generators_wording():
    protos = load_prototypes()
    assert all(len(v) >= 15 for v in protos.values())
    demo = " ".join(
        resources.files("topics_assets.demo").joinpath(name).read_text() for name in ("generator.py", "families.yaml")
    ).lower()
    copied = [s for v in protos.values() for s in v if len(s) > 12 and s.lower().rstrip(".!?") in demo]
    assert not copied, copied


def test_an_injected_embedder_is_used(embedder):
    class Counting:
        calls = 0

        def embed(self, texts):
            Counting.calls += 1
            return embedder.embed(texts)

    c = SentimentClassifier(Counting())
    c.sentence_labels(["fine"])
    assert Counting.calls == 6  # five prototype sets, then the sentence


# ----- issues ---------------------------------------------------------------------------------

def test_issues_name_every_error_kind_and_never_show_json(engine):
    user = Message("user", "Please deploy the release and refund order W1.")
    spans = [
        Span("root", "task", metadata={"termination_reason": "max_steps"}),
        Span("l", "llm", parent_id="root", input=[user], output=[Message("assistant", "", tool_calls=[
            {"id": "c1", "name": "run_tests", "arguments": '{"suite": "all"}'}])]),
        Span("a", "tool", parent_id="root", name="run_tests", output="collected 12 items\nexitcode: 1"),
        Span("b", "tool", parent_id="root", name="refund_api", output={"status_code": 502, "message": "Bad Gateway"}),
        Span("c", "tool", parent_id="root", name="search", error="TimeoutError: search did not respond in 30s"),
        Span("d", "tool", parent_id="root", name="parse", error="ValueError: bad date"),
        Span("e", "tool", parent_id="root", name="lookup", output="Error: order not found"),
    ]
    issues = facets_of(engine, spans)["issues"]
    for needle in ("max_steps", "run_tests", "exit", "refund_api", "HTTP", "search", "timed out", "parse",
                   "exception", "lookup", "returned an error"):
        assert needle in issues, (needle, issues)
    assert not re.search(r"[{}]", issues)


def test_issues_from_the_conversation(engine):
    f = facets_of(engine, chat(
        ("user", "My card was charged twice for one order."),
        ("assistant", "I'm sorry, I'm unable to issue refunds from this chat."),
        ("user", "My card was charged twice for a single order!"),
        ("assistant", "I'm transferring you to a human agent now.")))
    assert 'could not do it: "I\'m sorry, I\'m unable to issue refunds' in f["issues"]
    assert "handed the user over to a human" in f["issues"] and "repeated themselves" in f["issues"]
    esc = [Span("l", "llm", input=[Message("user", "Talk to a person please.")], output=[Message("assistant", "", tool_calls=[
        {"id": "c", "name": "transfer_to_human_agents", "arguments": "{}"}])])]
    assert "Escalated to a human (transfer_to_human_agents)" in facets_of(engine, esc)["issues"]
    assert facets_of(engine, chat(("user", "What is 2 + 2?"), ("assistant", "4.")))["issues"] == "No issues observed."


def test_multi_agent_issues_say_which_agent_failed(engine):
    spans = [
        Span("root", "task", metadata={"agent_name": "orchestrator"}),
        Span("r", "task", parent_id="root", metadata={"agent_name": "researcher"}),
        Span("l", "llm", parent_id="r", input=[Message("user", "Summarise the latest filings.")],
             output=[Message("assistant", "Searching.", name="researcher")]),
        Span("w", "tool", parent_id="r", name="web_search", error="HTTP 503 Service Unavailable"),
        Span("x", "task", parent_id="root", metadata={"agent_name": "critic"}, error="critic crashed"),
    ]
    text = preprocess(Trace("t", "p", NOW, spans), PreprocessSettings()).text
    assert "[assistant researcher] Searching." in text  # the speaking agent keeps its name
    issues = engine.facet(text)["issues"]
    assert "Tool web_search (in agent researcher) failed" in issues and "Agent critic failed" in issues


# ----- task -----------------------------------------------------------------------------------

@pytest.mark.parametrize("message,expected", [
    ("I've got two things I need help with today: I want to cancel order W12 and change my address.",
     "I want to cancel order W12 and change my address."),
    ("Hi there! Hope you're well. My flight to Oslo was cancelled, can you rebook me for tomorrow?",
     "My flight to Oslo was cancelled, can you rebook me for tomorrow?"),
    ("Hello. I need some help. The export button gives a blank file. My email is [EMAIL].",
     "The export button gives a blank file."),
])
def test_task_is_the_first_real_request_without_fillers(message, expected):
    assert first_request([message]) == expected


def test_task_is_bounded_and_keeps_whole_sentences():
    long = " ".join(f"Sentence number {i} explains one more detail of the request." for i in range(40))
    out = first_request([long])
    assert len(out) <= MAX_TASK_CHARS and out.endswith(".") and out.startswith("Sentence number 0")
    assert first_request(["Hi!", "Thanks.", "Where is my parcel?"]) == "Where is my parcel?"
