"""Defaults that decide quality: no_match catches foreign texts, keeps in-domain ones, and
classification streams in bounded chunks."""

import tracemalloc

import numpy as np
import pytest

from topics_assets.config import ClusterSettings
from topics_assets.embed import LocalEmbedder
from topics_assets.topics.topic_map import TopicMap, classify_chunks, classify_vectors

FOREIGN = [
    "What's the best way to cook risotto without it turning mushy?",
    "My tomato plants have yellow leaves at the bottom, what should I do?",
    "Can you recommend a good sci-fi novel for a long flight?",
    "How do I fix a segmentation fault in my C program?",
    "Who won the football world cup in 2010?",
    "How many moons does Jupiter have?",
    "Write a haiku about autumn rain",
    "My cat keeps scratching the sofa, how do I stop her?",
    "Is it safe to hike in the Alps in early spring?",
    "How long should I boil an egg for a runny yolk?",
    "My docker container exits immediately after starting",
    "What are the symptoms of vitamin D deficiency?",
    "How do I change the oil in a 2015 Honda Civic?",
    "Recommend some board games for a family of four",
    "Summarise the plot of Hamlet",
    "How do I get red wine out of a white carpet?",
    "How do I tune my guitar to drop D?",
    "How do volcanoes form?",
    "Plan a three day itinerary for Kyoto",
    "Tell me a joke about penguins",
]


@pytest.fixture(scope="module")
def banking_map(banking77_embedded):
    """A map of 40 texts per intent, with 8 held-out texts per intent: slices of the session's embedded subset."""
    train, train_vectors, test, test_vectors = banking77_embedded
    fit = train.groupby("category").head(40).index.to_numpy()
    held = test.groupby("category").head(8).index.to_numpy()
    tm = TopicMap.fit(train_vectors[fit], train.text.iloc[fit].tolist(), ClusterSettings())
    return tm, test_vectors[held], LocalEmbedder().embed(FOREIGN)


def test_foreign_texts_are_mostly_no_match(banking_map):
    tm, _, foreign = banking_map
    idx, _ = tm.classify(foreign)
    assert np.mean(idx < 0) >= 0.8, f"only {np.mean(idx < 0):.0%} of foreign-domain texts are no_match"


def test_in_domain_texts_mostly_match(banking_map):
    tm, test, _ = banking_map
    idx, _ = tm.classify(test)
    assert np.mean(idx >= 0) >= 0.85, f"no_match rate {np.mean(idx < 0):.1%} on in-domain texts"


def test_classification_streams_in_bounded_chunks():
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((300, 384)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    x = rng.standard_normal((60_000, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tracemalloc.start()
    idx, dist = classify_vectors(x, centroids, 0.9, chunk=4096)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    full = x @ centroids.T  # what an unchunked classifier would hold: 60k x 300 floats
    assert peak < full.nbytes / 3 + idx.nbytes + dist.nbytes
    best = full.argmax(axis=1)
    assert np.array_equal(np.where(1 - full.max(axis=1) <= 0.9, best, -1), idx)
    streamed = np.concatenate([i for i, _ in classify_chunks((x[s:s + 7000] for s in range(0, len(x), 7000)),
                                                             centroids, 0.9)])
    assert np.array_equal(streamed, idx)
