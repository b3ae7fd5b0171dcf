"""Classifier: one trace labelled now, in-process, must get the label the pipeline gave it in trace_topics."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from topics_assets.config import Settings, load_settings
from topics_assets.demo import generate_traces, write_jsonl
from topics_assets.embed.stage import embed_days
from topics_assets.facets.stage import facet_days
from topics_assets.ingest import parse_record
from topics_assets.ingest.stage import ingest_paths
from topics_assets.preprocess.stage import preprocess_days
from topics_assets.store import open_store
from topics_assets.topics.classifier import Classifier, ClassifyError, NoTopicMaps
from topics_assets.topics.stage import classify_days, generate_topic_map

PROJECT = "shop"


@functools.lru_cache(maxsize=1)
def _built(root: Path) -> tuple[Path, list[dict]]:
    """A store the pipeline's own stages filled and labelled (real traces, extractive facets, local vectors);
    the maps are fitted with PCA + KMeans so that no UMAP runs. Built once per session."""
    settings = pipeline_settings(root / "home")
    store = open_store(settings.database_path)
    records = generate_traces(n_traces=240, days=2, seed=5, project=PROJECT)
    write_jsonl(records, root / "traces.jsonl")
    days = ingest_paths(store=store, settings=settings, paths=[str(root / "traces.jsonl")]).days
    for stage in (preprocess_days, facet_days, embed_days):
        stage(store=store, settings=settings, days=days)
    for facet in settings.text_facet_names:
        assert generate_topic_map(store=store, settings=settings, project=PROJECT, facet=facet, force=True,
                                  reducer=PCA(n_components=8, random_state=0),
                                  clusterer=KMeans(n_clusters=6, n_init=4, random_state=0)).generated
    classify_days(store=store, settings=settings, days=days)
    return root / "home", records


def pipeline_settings(home: Path) -> Settings:
    settings = load_settings(env={})
    settings.home = str(home)
    return settings


def labelled_home(tmp_path_factory, copy_to: Path | None = None) -> tuple[Path, list[dict]]:
    """The built home (read it only), or a copy of it at `copy_to` that a test may write."""
    home, records = _built(tmp_path_factory.getbasetemp() / "classifier-store")
    if copy_to is not None:
        shutil.copytree(home, copy_to)
        home = copy_to
    return home, records


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home, records = labelled_home(tmp_path_factory)
    settings = pipeline_settings(home)
    return open_store(settings.database_path), settings, records


@pytest.fixture(scope="module")
def classifier(built):
    store, settings, _ = built
    return Classifier.from_store(store, settings, project=PROJECT)


def test_each_trace_gets_the_label_the_pipeline_gave_it(built, classifier):
    store, _, records = built
    want = {(r.trace_id, r.facet): (r.topic_id, r.topic_name, r.distance)
            for r in store.query_df("SELECT * FROM trace_topics").itertuples()}
    assert len(want) == 3 * len(records)
    got = {}
    for i, record in enumerate(records):
        # every way in: a dict, a JSON line, a parsed Trace
        rec = record if i % 3 == 0 else json.dumps(record) if i % 3 == 1 else parse_record(record, "t", None)[0]
        labels = classifier.classify(rec)
        assert labels.trace_id == record["trace_id"] and labels.project == PROJECT
        for facet, lab in labels.labels.items():
            got[(labels.trace_id, facet)] = lab
    assert set(got) == set(want)
    for key, (topic_id, name, distance) in want.items():
        lab = got[key]
        assert (lab.topic_id, lab.topic_name if not lab.no_match else None) == (topic_id, name if topic_id != "no_match" else None), key
        assert lab.distance == pytest.approx(distance, abs=1e-4), key
        assert lab.generation == 1
    # The test means something: most traces matched a topic, several distinct ones, and some are no_match.
    ids = [lab.topic_id for lab in got.values()]
    assert len(set(ids)) >= 10 and 0 < ids.count("no_match") < len(ids) / 3


def test_a_new_trace_in_another_format_is_labelled(classifier):
    chat = {"id": "chat-1", "messages": [{"role": "user", "content": "I want a refund for my broken blender."},
                                         {"role": "assistant", "content": "Sure, I have issued the refund."}]}
    labels = classifier.classify(json.dumps(chat))
    assert labels.trace_id == "chat-1" and set(labels.labels) == {"task", "sentiment", "issues"}
    assert labels.labels["task"].text.startswith("I want a refund")
    d = labels.to_dict()
    assert d["facets"]["task"]["topic_id"] == labels.labels["task"].topic_id and "text" in d["facets"]["task"]


@pytest.mark.parametrize(("record", "reason"), [
    ("{not json", "record: not valid JSON"),
    ('{"trace_id": "t-9", "payload": 1}', "record (trace t-9): unknown record shape"),
    ("[1, 2]", "record: expected a JSON object, got list"),
    ({"trace_id": "t-8", "spans": "nope"}, "record (trace t-8): "),
])
def test_a_bad_record_is_an_error_naming_it_and_why(classifier, record, reason):
    with pytest.raises(ClassifyError) as e:
        classifier.classify(record)
    assert str(e.value).startswith(reason), str(e.value)


def test_no_maps_says_so_and_points_to_topics_run(built):
    store, settings, _ = built
    with pytest.raises(NoTopicMaps, match=r"project 'elsewhere' has no topic maps yet \(projects with maps: shop\);"
                                         r" `topics run`"):
        Classifier.from_store(store, settings, project="elsewhere")
    assert Classifier.from_store(store, settings).project == PROJECT  # the only project with maps


def test_maps_are_loaded_once(built, classifier, monkeypatch):
    """classify reads nothing from the store: the maps were loaded by from_store."""
    store, _, records = built

    def forbidden(*a, **k):
        raise AssertionError("the store was read while classifying")

    for name in ("latest_generation", "load_topics", "generation_info", "query_df"):
        monkeypatch.setattr(store, name, forbidden)
    assert classifier.classify(records[0]).labels
