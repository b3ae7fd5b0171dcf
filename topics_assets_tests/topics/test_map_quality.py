"""One topic per meaning and labels faithful to the map: the demo's maps through the real stages,
in-sample agreement between the fit and `trace_topics`, a minimum topic size chosen from the data,
and the same seed giving the same maps."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from topics_assets.config import ClusterSettings, load_settings
from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.embed.stage import embed_days
from topics_assets.facets.stage import facet_days
from topics_assets.ingest.stage import ingest_paths
from topics_assets.preprocess.stage import preprocess_days
from topics_assets.store import DuckDBStore
from topics_assets.testing.facets import write_facet_vectors
from topics_assets.topics.stage import classify_days, generate_topic_map
from topics_assets.topics.topic_map import TopicMap

PROJECT = "acme-support"
TOPIC_ROWS = "SELECT facet, topic_id, name, size, keywords, examples, centroid, threshold, status FROM topic_maps"


def demo_store(root, n_traces: int = 800, seed: int = 7):
    """The demo's pipeline in a fresh store: synthetic traces -> ingest -> preprocess -> facet -> embed -> maps."""
    settings = load_settings(env={})
    settings.home = str(root)
    store = DuckDBStore(settings.database_path)
    path = root / "traces.jsonl"
    write_jsonl(generate_traces(n_traces=n_traces, days=3, seed=seed, project=PROJECT,
                                end=__import__("datetime").date(2026, 3, 4)), path)
    days = ingest_paths(store=store, settings=settings, paths=[str(path)]).days
    preprocess_days(store=store, settings=settings, days=days)
    facet_days(store=store, settings=settings, days=days)
    embed_days(store=store, settings=settings, days=days)
    for facet in settings.text_facet_names:
        assert generate_topic_map(store=store, settings=settings, project=PROJECT, facet=facet, force=True).generated
    classify_days(store=store, settings=settings, days=days, project=PROJECT)
    return store, settings


@pytest.fixture(scope="module")
def two_demo_stores(tmp_path_factory):
    return [demo_store(tmp_path_factory.mktemp(f"demo{i}")) for i in range(2)]


def test_demo_issues_map_has_one_topic_per_text_and_distinct_names(two_demo_stores):
    store, _ = two_demo_stores[0]
    topics = store.load_topics(PROJECT, "issues")
    facets = store.query_df("SELECT text, count(*) n FROM facets WHERE facet = 'issues' GROUP BY text")
    assert facets.n.max() > 100  # the demo repeats "No issues observed." a lot: the case being tested
    labels = store.query_df("""SELECT f.text, count(DISTINCT tt.topic_id) AS topics FROM facets f
                               JOIN trace_topics tt ON tt.trace_id = f.trace_id AND tt.facet = f.facet
                               WHERE f.facet = 'issues' GROUP BY f.text""")
    assert labels.topics.max() == 1  # every copy of a text carries the same label
    dominant = [e[0] for e in topics.examples]
    assert len(set(dominant)) == len(dominant), "two topics lead with the same text"
    for facet in ("task", "sentiment", "issues"):
        names = store.load_topics(PROJECT, facet).name.str.lower().tolist()
        assert len(set(names)) == len(names) and all(len(n) <= 48 for n in names), names
    # A topic's size is what it labels.
    counts = store.query_df("SELECT topic_id, count(*) n FROM trace_topics WHERE facet = 'issues' GROUP BY 1")
    sizes = dict(zip(topics.topic_id, topics["size"]))
    assert {r.topic_id: r.n for r in counts.itertuples() if r.topic_id != "no_match"} == sizes


def test_same_seed_gives_the_same_maps(two_demo_stores):
    (a, _), (b, _) = two_demo_stores
    rows_a = a.query_df(TOPIC_ROWS + " ORDER BY facet, topic_id")
    rows_b = b.query_df(TOPIC_ROWS + " ORDER BY facet, topic_id")
    assert len(rows_a) > 20
    assert rows_a.drop(columns=["centroid"]).astype(str).equals(rows_b.drop(columns=["centroid"]).astype(str))
    assert np.array_equal(np.vstack(rows_a.centroid), np.vstack(rows_b.centroid))


def test_trace_topics_agree_with_the_fit_on_the_maps_own_sample(banking77_embedded, tmp_path):
    train, vectors, *_ = banking77_embedded
    train = train.groupby("category").head(30)
    vectors = vectors[train.index.to_numpy()]
    settings = load_settings(env={})
    settings.home = str(tmp_path)
    store = DuckDBStore(settings.database_path)
    ids = write_facet_vectors(store, "test/b77", train.text.tolist(), vectors, project="p", day="2026-01-05")
    generate_topic_map(store=store, settings=settings, project="p", facet="task", embedder_id="test/b77", force=True)
    classify_days(store=store, settings=settings, days=["2026-01-05"], project="p")
    landed = store.query_df("SELECT trace_id, topic_id FROM trace_topics").set_index("trace_id").topic_id[ids].to_numpy()
    tm = TopicMap.fit(vectors, train.text.tolist(), settings.cluster)  # the stage's sample: every row, in id order
    assert adjusted_rand_score(tm.labels, landed) >= 0.95
    assert np.mean(landed == "no_match") <= tm.cluster_noise_share + 0.02
    assert adjusted_rand_score(train.category, landed) > 0.45  # BERTopic's defaults: 0.41 (bench_map_quality.py)


def granular(n_classes: int, n_per: int, dim: int = 64, spread: float = 0.35, seed: int = 0):
    """Unit vectors around n_classes random centres: texts of each class share its words."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(n_classes), n_per)
    x = centres[truth] + spread * rng.standard_normal((len(truth), dim)) / np.sqrt(dim) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    texts = [f"class{g} word{g}x item {i}" for i, g in enumerate(truth)]
    return x.astype(np.float32), texts, truth


@pytest.mark.parametrize("n_classes,n_per", [(40, 30), (4, 1000)])
def test_min_topic_size_adapts_to_fine_and_coarse_data(n_classes, n_per):
    x, texts, truth = granular(n_classes, n_per)
    tm = TopicMap.fit(x, texts, ClusterSettings())
    assert adjusted_rand_score(truth, tm.labels) > 0.9, (len(tm.topics), tm.min_cluster_size, tm.candidates)
    assert 0.8 * n_classes <= len(tm.topics) <= 1.25 * n_classes
    assert len(tm.candidates) > 3  # chosen among several, not fixed


def test_a_regeneration_keeps_the_previous_size_unless_another_is_clearly_more_valid(banking77_embedded):
    train, vectors, *_ = banking77_embedded
    sub = train.groupby("category").head(30)
    x, texts = vectors[sub.index.to_numpy()], sub.text.tolist()  # neighbouring sizes score a few % apart
    first = TopicMap.fit(x, texts, ClusterSettings())
    scores, best = first.candidates, first.min_cluster_size
    near = [m for m, s in scores.items() if 0.85 * scores[best] <= s < scores[best]]  # a tie keeps the previous
    far = [m for m, s in scores.items() if s < 0.5 * scores[best]]
    assert near and far, scores
    kept = TopicMap.fit(x, texts, ClusterSettings(), prefer_min_cluster_size=near[0])
    assert kept.min_cluster_size == near[0]
    # a size between candidates is matched to the nearest one
    assert TopicMap.fit(x, texts, ClusterSettings(), prefer_min_cluster_size=near[0] + 1).min_cluster_size == near[0]
    assert TopicMap.fit(x, texts, ClusterSettings(), prefer_min_cluster_size=far[-1]).min_cluster_size == best
    strict = TopicMap.fit(x, texts, ClusterSettings(keep_size_within=0), prefer_min_cluster_size=near[0])
    assert strict.min_cluster_size == best
