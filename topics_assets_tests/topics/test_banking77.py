"""embed -> cluster -> classify against ground truth: banking77 texts read like Task facets."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from topics_assets.config import ClusterSettings
from topics_assets.topics.topic_map import TopicMap, classify_vectors


@pytest.fixture(scope="module")
def banking77(banking77_embedded):
    train, train_vectors, test, test_vectors = banking77_embedded
    tm = TopicMap.fit(train_vectors, train.text.tolist(), ClusterSettings())
    return train, test, tm, test_vectors


def test_clusters_recover_intents_well_above_chance(banking77):
    train, _, tm, _ = banking77
    ari = adjusted_rand_score(train.category, tm.labels)
    shuffled = adjusted_rand_score(np.random.default_rng(0).permutation(train.category.to_numpy()), tm.labels)
    assert abs(shuffled) < 0.02  # chance
    assert ari > 0.40, f"ARI {ari:.3f}"  # measured 0.46 with the defaults (0.41-0.46 over seeds)
    assert 40 <= len(tm.topics) <= 150  # 77 intents


def test_test_split_lands_in_the_topic_holding_its_category(banking77):
    train, test, tm, test_vectors = banking77
    members = pd.DataFrame({"category": train.category, "cluster": tm.labels})
    members = members[members.cluster >= 0]
    majority = members.groupby("category").cluster.agg(lambda s: s.value_counts().index[0])
    idx, dist = tm.classify(test_vectors)
    positions = np.array([t.index for t in tm.topics])
    predicted = np.where(idx >= 0, positions[np.maximum(idx, 0)], -1)
    expected = test.category.map(majority).fillna(-2).to_numpy()
    matched = idx >= 0
    assert matched.mean() > 0.85, f"no_match rate {1 - matched.mean():.3f} on in-domain texts"
    accuracy = float((predicted[matched] == expected[matched]).mean())
    assert accuracy > 0.65, f"{accuracy:.3f} of matched test texts land in their category's topic"  # measured 0.73
    nearest, _ = classify_vectors(test_vectors, tm.centroids, 2.0)  # each text's nearest topic, any distance
    limits = tm.thresholds[nearest]  # that topic's own no_match distance
    assert np.array_equal(nearest[matched], idx[matched])
    assert np.all(dist[~matched] > limits[~matched]) and np.all(dist[matched] <= limits[matched])
