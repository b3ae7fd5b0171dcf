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


@pytest.fixture
def settings(tmp_path):
    """Offline default settings on a fresh DuckDB file in a temporary home."""
    from topics_assets.config import load_settings

    s = load_settings(env={})
    s.home = str(tmp_path / "home")
    return s


@pytest.fixture(scope="session")
def banking77_embedded():
    """A stratified banking77 subset (60 train / 20 test texts per intent) with local-model vectors."""
    import pandas as pd

    from topics_assets.embed import LocalEmbedder

    train = pd.read_csv(shared_data("banking77", "train.csv")).groupby("category").head(60).reset_index(drop=True)
    test = pd.read_csv(shared_data("banking77", "test.csv")).groupby("category").head(20).reset_index(drop=True)
    embedder = LocalEmbedder()
    return train, embedder.embed(train.text.tolist()), test, embedder.embed(test.text.tolist())


# ----- stores: a throwaway PostgreSQL server for the session, and a fresh store of each kind -----

def _initdb() -> "Path | None":
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]) if versions else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of its own on a loopback port for the session (as `postgres` when root)."""
    import shutil
    import subprocess
    import tempfile

    initdb = _initdb()
    if initdb is None:
        why = ("PostgreSQL server binaries not found (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
               "install Debian's postgresql package (.ci/run does)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="topics-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    pg_ctl = str(initdb.parent / "pg_ctl")

    def run(*cmd: str) -> None:
        done = subprocess.run(as_user + list(cmd), capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"

    run(str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    try:
        run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o", options, "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server_url: str) -> str:
    """An empty database on the session's server; its URL."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def postgres_database(postgres_url) -> str:
    return new_postgres_database(postgres_url)


@pytest.fixture(params=["duckdb", "postgres"])
def store(request, tmp_path):
    """A fresh, empty store of each kind."""
    from topics_assets.store import open_store

    if request.param == "duckdb":
        return open_store(str(tmp_path / "store.duckdb"))
    return open_store(new_postgres_database(request.getfixturevalue("postgres_url")))
