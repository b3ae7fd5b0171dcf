"""The reducer and the clusterer are components: any fit_transform / fit_predict object gives a valid map."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from topics_assets.config import ClusterSettings
from topics_assets.topics.cluster import HDBSCANClusterer, build_components
from topics_assets.topics.reduce import UMAPReducer
from topics_assets.topics.topic_map import TopicMap

WORDS = [["refund", "card", "payment"], ["password", "login", "account"], ["shipping", "parcel", "delivery"]]


def blobs(n_per: int = 60, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Three tight groups of unit vectors, each with texts of its own words."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, dim))
    truth = np.repeat(np.arange(3), n_per)
    x = centres[truth] + 0.15 * rng.standard_normal((len(truth), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    texts = [f"{WORDS[g][i % 3]} question number {i} about {WORDS[g][(i + 1) % 3]}" for i, g in enumerate(truth)]
    return x.astype(np.float32), texts, truth


class FirstAxisClusterer:
    """No sklearn base, no min_cluster_size: splits on the sign of the first reduced coordinate."""

    def fit_predict(self, X):
        return (np.asarray(X)[:, 0] > 0).astype(int)


def check_valid(tm: TopicMap, x: np.ndarray, n_topics: int) -> None:
    assert len(tm.topics) == n_topics
    assert sum(t.size for t in tm.topics) + int((tm.labels < 0).sum()) == len(x)
    assert all(t.keywords and t.examples for t in tm.topics)
    idx, dist = tm.classify(x)
    assert (idx >= 0).mean() > 0.9 and np.all(dist[idx >= 0] <= tm.thresholds[idx[idx >= 0]])
    assert np.array_equal(idx, tm.labels)  # the map's labels are its own classification of the sample


def test_sklearn_pca_and_kmeans_stand_in_for_umap_and_hdbscan():
    x, texts, truth = blobs()
    tm = TopicMap.fit(x, texts, ClusterSettings(), reducer=PCA(n_components=5, random_state=0),
                      clusterer=KMeans(n_clusters=3, n_init=4, random_state=0))
    check_valid(tm, x, 3)
    assert adjusted_rand_score(truth, tm.labels) == 1.0
    keywords = {w for t in tm.topics for w in t.keywords[:3]}
    assert {"refund", "password", "shipping"} & keywords


def test_a_plain_object_with_fit_predict_is_enough():
    x, texts, _ = blobs()
    tm = TopicMap.fit(x, texts, ClusterSettings(), reducer=PCA(n_components=3, random_state=0),
                      clusterer=FirstAxisClusterer())
    check_valid(tm, x, 2)


def test_core_sample_extends_an_injected_clustering_to_every_row():
    x, texts, truth = blobs(n_per=100)
    tm = TopicMap.fit(x, texts, ClusterSettings(core_sample=90), reducer=PCA(n_components=5, random_state=0),
                      clusterer=KMeans(n_clusters=3, n_init=4, random_state=0))
    check_valid(tm, x, 3)
    assert adjusted_rand_score(truth, tm.labels) == 1.0  # rows outside the core joined their group


def test_build_components_reads_settings_and_takes_an_explicit_min_cluster_size():
    s = ClusterSettings(n_components=4, n_neighbors=9, pca_components=32, min_cluster_size=40, random_state=3)
    reducer, clusterer = build_components(s)
    assert isinstance(reducer, UMAPReducer) and isinstance(clusterer, HDBSCANClusterer)
    assert (reducer.n_components, reducer.n_neighbors, reducer.pca_components, reducer.random_state) == (4, 9, 32, 3)
    assert clusterer.min_cluster_size == 40
    assert build_components(s, min_cluster_size=7)[1].min_cluster_size == 7
    assert s.min_cluster_size == 40  # the settings are not copied or changed


@pytest.mark.parametrize("n", [5, 300])
def test_default_components_find_the_groups(n):
    """The defaults end to end on a small sample; too few rows for two clusters are all noise."""
    x, texts, truth = blobs(n_per=n // 3 or 1)
    tm = TopicMap.fit(x, texts, ClusterSettings(min_cluster_size=20))
    if n < 40:
        assert tm.topics == [] and np.all(tm.labels == -1)
    else:
        check_valid(tm, x, 3)
        assert adjusted_rand_score(truth, tm.labels) > 0.95


_FIT_AND_REPORT_CACHE = """
import json, numpy as np
from topics_assets.config import ClusterSettings
from topics_assets.topics.topic_map import TopicMap
import umap.umap_
rng = np.random.default_rng(0)
v = rng.normal(size=(120, 32)).astype(np.float32)
TopicMap.fit(v / np.linalg.norm(v, axis=1, keepdims=True), [str(i) for i in range(120)], ClusterSettings())
kernels = [umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths]
print(json.dumps({"hits": [sum(k.stats.cache_hits.values()) for k in kernels],
                  "misses": [sum(k.stats.cache_misses.values()) for k in kernels]}))
"""


def test_a_second_process_loads_umaps_compiled_kernels_from_the_disk_cache():
    """UMAP compiles most of its kernels without numba's cache; each new process would pay the JIT again.
    The cache is the one users get (the first process may compile into it; the second must not)."""
    import json
    import subprocess
    import sys

    runs = [json.loads(subprocess.run([sys.executable, "-c", _FIT_AND_REPORT_CACHE], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1]) for _ in range(2)]
    assert sum(runs[0]["hits"]) + sum(runs[0]["misses"]) == 2  # each kernel ran once, compiled or loaded
    assert runs[1] == {"hits": [1, 1], "misses": [0, 0]}  # loaded, not compiled
