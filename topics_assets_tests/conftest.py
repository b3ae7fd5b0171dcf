import contextlib
import fcntl
import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data; the test is skipped (with the reason) only if that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it lives beside the repo as ../shared/data)")
    path = SHARED_DATA.joinpath(*parts)
    assert path.exists(), f"{path} is missing from ../shared/data"
    return path


@contextlib.contextmanager
def built_once(tmp_path_factory, name: str):
    """A folder where the first of this run's pytest-xdist workers builds `name` while the others wait
    (a plain run has it to itself); yields (folder, built): built is True when another worker already
    made it. So a session fixture that costs tens of seconds is built once per run, not per worker."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' basetemps are siblings
    folder = root / f"built-{name}"
    folder.mkdir(exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".built"
        yield folder, done.exists()
        done.touch()


@pytest.fixture
def settings(tmp_path):
    """Offline default settings on a fresh DuckDB file in a temporary home."""
    from topics_assets.config import load_settings

    s = load_settings(env={})
    s.home = str(tmp_path / "home")
    return s


@pytest.fixture(scope="session")
def banking77_embedded(tmp_path_factory):
    """A stratified banking77 subset (60 train / 20 test texts per intent) with local-model vectors."""
    import pandas as pd

    from topics_assets.embed import LocalEmbedder

    with built_once(tmp_path_factory, "banking77") as (folder, built):
        if built:
            return pd.read_pickle(folder / "embedded.pkl")
        train = pd.read_csv(shared_data("banking77", "train.csv")).groupby("category").head(60).reset_index(drop=True)
        test = pd.read_csv(shared_data("banking77", "test.csv")).groupby("category").head(20).reset_index(drop=True)
        embedder = LocalEmbedder()
        out = train, embedder.embed(train.text.tolist()), test, embedder.embed(test.text.tolist())
        pd.to_pickle(out, folder / "embedded.pkl")
        return out


# ----- stores: a throwaway PostgreSQL server for the session, and a fresh store of each kind -----

@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of its own on a loopback port for the session (as `postgres` when root)."""
    from topics_assets.testing.postgres import LocalPostgres, PostgresMissing

    try:
        server = LocalPostgres().start()
    except PostgresMissing as e:
        why = f"{e} (.ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    return postgres_server.url


@pytest.fixture
def postgres_database(postgres_server) -> str:
    """A fresh, empty database on the session's server; its URL."""
    return postgres_server.create_database()


BACKENDS = ["duckdb", "postgres"]


def use_backend(settings, backend: str, request) -> None:
    """Point settings at a fresh store of this kind: the home's DuckDB file, or a new PostgreSQL database."""
    if backend == "postgres":
        settings.database = request.getfixturevalue("postgres_server").create_database()


@pytest.fixture(params=BACKENDS)
def backend_settings(request, settings):
    """The offline default settings, on each backend in turn."""
    use_backend(settings, request.param, request)
    return settings


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh, empty store of each kind."""
    from topics_assets.store import open_store

    if request.param == "duckdb":
        return open_store(str(tmp_path / "store.duckdb"))
    return open_store(request.getfixturevalue("postgres_server").create_database())


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    """A user's environment on a temporary home: its own store and Dagster instance, no config file."""
    monkeypatch.setenv("TOPICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    monkeypatch.delenv("TOPICS_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def topics(cli_home):
    """`topics ARGS...` run as a user would (click's CliRunner) on the temporary home."""
    from click.testing import CliRunner

    from topics_assets.cli import cli

    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)

