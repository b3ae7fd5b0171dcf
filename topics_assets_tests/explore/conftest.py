"""A small demo store, built once per session through the real stages (ingest, preprocess, extractive
facets, the local embedding model, map generation, classification), and the explorer serving it on a
free loopback port (uvicorn in a thread)."""

import contextlib
import shutil
import threading
import time

import pytest

from topics_assets_tests.conftest import built_once
from topics_assets_tests.serve.conftest import free_port

N_TRACES = 240
PROJECT = "shop"


def build_demo_store(home: str, n_traces: int = N_TRACES, days: int = 3, database: str | None = None):
    """The demo's synthetic traces end to end, without Dagster, in the home's DuckDB file or in
    `database` (a PostgreSQL URL); the maps come from PCA + k-means so no UMAP JIT runs (the layout is
    made from whatever the reducer gives)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from topics_assets.config import load_settings
    from topics_assets.demo import generate_traces, write_jsonl
    from topics_assets.embed.stage import embed_days
    from topics_assets.facets.stage import facet_days
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.preprocess.stage import preprocess_days
    from topics_assets.store import open_store
    from topics_assets.topics.stage import classify_days, generate_topic_map

    settings = load_settings(env={})
    settings.home = home
    if database:
        settings.database = database
    store = open_store(settings.database_path)
    path = f"{home}/traces.jsonl"
    write_jsonl(generate_traces(n_traces=n_traces, days=days, seed=3, project=PROJECT), path)
    ingest_paths(store=store, settings=settings, paths=[path])
    all_days = store.days_with_traces()
    preprocess_days(store=store, settings=settings, days=all_days)
    facet_days(store=store, settings=settings, days=all_days)
    embed_days(store=store, settings=settings, days=all_days)
    for facet in settings.text_facet_names:
        generate_topic_map(store=store, settings=settings, project=PROJECT, facet=facet, force=True,
                           reducer=PCA(n_components=5, random_state=0),
                           clusterer=KMeans(n_clusters=6, n_init=3, random_state=0))
    classify_days(store=store, settings=settings, days=all_days)
    return store, settings


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """Built once per run (by the first pytest-xdist worker to ask); each worker reads its own copy."""
    from topics_assets.store import open_store

    with built_once(tmp_path_factory, "explore-demo") as (folder, built):
        if not built:
            build_demo_store(str(folder / "home"))
    home = tmp_path_factory.mktemp("explore") / "home"
    shutil.copytree(folder / "home", home)
    return open_store(str(home / "topics.duckdb"))


@contextlib.contextmanager
def running_explorer(store):
    import uvicorn

    from topics_assets.explore.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the explorer did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="session")
def explorer_url(demo_store):
    with running_explorer(demo_store) as url:
        yield url
