"""The DuckDB store: the SQL contract every user can query, and every write the pipeline makes.

All access goes through `Store` (the Dagster layer builds it from dagster-duckdb's resource),
so a warehouse can replace DuckDB in this one module.
Writers keep connections short (read, close, compute, then write in one transaction):
DuckDB allows one writing process at a time, and a short hold is what keeps two runs safe.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_traces (
    trace_id VARCHAR PRIMARY KEY,
    project VARCHAR NOT NULL,
    day DATE NOT NULL,
    started_at TIMESTAMPTZ,
    format VARCHAR,
    source VARCHAR,
    payload VARCHAR,
    payload_hash VARCHAR,
    version INTEGER,
    ingested_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS quarantine (
    source VARCHAR,
    line INTEGER,
    trace_id VARCHAR,
    reason VARCHAR,
    snippet VARCHAR,
    quarantined_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS traces (
    trace_id VARCHAR PRIMARY KEY,
    project VARCHAR NOT NULL,
    day DATE NOT NULL,
    started_at TIMESTAMPTZ,
    format VARCHAR,
    version INTEGER,
    payload_hash VARCHAR,
    content VARCHAR,
    content_hash VARCHAR,
    n_spans INTEGER,
    n_messages INTEGER,
    tokens_before INTEGER,
    tokens_after INTEGER,
    truncated BOOLEAN,
    redactions JSON,
    status VARCHAR,          -- ok | failed
    error VARCHAR,
    preprocessed_at TIMESTAMPTZ,
    preprocess_hash VARCHAR  -- the preprocessing settings it was made with
);
ALTER TABLE traces ADD COLUMN IF NOT EXISTS preprocess_hash VARCHAR;
CREATE TABLE IF NOT EXISTS facets (
    trace_id VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    day DATE NOT NULL,
    text VARCHAR,
    text_hash VARCHAR,
    engine VARCHAR,          -- llm | extractive
    model VARCHAR,
    content_hash VARCHAR,
    facets_hash VARCHAR,
    created_at TIMESTAMPTZ,
    PRIMARY KEY (trace_id, facet)
);
CREATE TABLE IF NOT EXISTS facet_failures (
    trace_id VARCHAR PRIMARY KEY,
    project VARCHAR,
    day DATE,
    reason VARCHAR,
    detail VARCHAR,
    failed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS facet_embeddings (
    model VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    text VARCHAR,
    vector FLOAT[],
    created_at TIMESTAMPTZ,
    PRIMARY KEY (model, text_hash)
);
CREATE TABLE IF NOT EXISTS topic_map_generations (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    created_at TIMESTAMPTZ,
    embedding_model VARCHAR,
    naming_engine VARCHAR,
    n_facets INTEGER,
    n_sampled INTEGER,
    n_topics INTEGER,
    noise_share DOUBLE,
    threshold DOUBLE,
    params JSON,
    PRIMARY KEY (project, facet, generation)
);
CREATE TABLE IF NOT EXISTS topic_maps (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    topic_id VARCHAR NOT NULL,
    name VARCHAR,
    description VARCHAR,
    keywords VARCHAR[],
    size INTEGER,
    centroid FLOAT[],
    examples VARCHAR[],
    status VARCHAR,          -- active | retired (a predecessor's topic with no match)
    PRIMARY KEY (project, facet, generation, topic_id)
);
CREATE TABLE IF NOT EXISTS classifications (
    trace_id VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    topic_id VARCHAR NOT NULL,   -- 'no_match' beyond the map's distance threshold
    distance DOUBLE,
    day DATE,
    classified_at TIMESTAMPTZ,
    PRIMARY KEY (trace_id, facet, generation)
);
-- Each trace's label from the newest generation that has classified it.
CREATE OR REPLACE VIEW trace_topics AS
SELECT c.trace_id, c.project, c.facet, c.topic_id,
       CASE WHEN c.topic_id = 'no_match' THEN 'no_match' ELSE t.name END AS topic_name,
       c.distance, c.generation
FROM classifications c
LEFT JOIN topic_maps t
  ON t.project = c.project AND t.facet = c.facet AND t.generation = c.generation AND t.topic_id = c.topic_id
QUALIFY row_number() OVER (PARTITION BY c.trace_id, c.facet ORDER BY c.generation DESC) = 1;
"""

class GenerationConflict(RuntimeError):
    """Another run landed a topic map generation while this one was fitting."""


def _is_lock_error(e: Exception) -> bool:
    msg = str(e).lower()
    return "lock" in msg or "conflicting" in msg


@contextlib.contextmanager
def connect_with_retry(database: str, wait_s: float = 300.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the file, waiting out another process's write lock instead of failing."""
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(database)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            if not _is_lock_error(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    try:
        yield conn
    finally:
        conn.close()


def _drop_departed(c: duckdb.DuckDBPyConnection, table: str, days: list[str], keep_ids: list[str]) -> None:
    """Rows of these days whose trace is no longer there (moved to another day, or gone)."""
    c.execute(f"""DELETE FROM {table} WHERE day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))
                  AND trace_id NOT IN (SELECT unnest(?::VARCHAR[]))""", [days, keep_ids])


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def vectors_to_array(values: Iterable[Any]) -> np.ndarray:
    rows = list(values)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack(rows).astype(np.float32, copy=False)


class Store:
    def __init__(self, database: str, lock_wait_s: float = 300.0):
        self.database = database
        self.lock_wait_s = lock_wait_s
        self._schema_ready = False

    @contextlib.contextmanager
    def conn(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_with_retry(self.database, self.lock_wait_s) as c:
            if not self._schema_ready:
                c.execute(SCHEMA)
                self._schema_ready = True
            yield c

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.conn() as c:
            c.execute("BEGIN TRANSACTION")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def query_df(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.conn() as c:
            return c.execute(sql, params or []).df()

    # ----- ingest -----------------------------------------------------------------
    def upsert_raw_traces(self, rows: list[dict]) -> dict[str, int]:
        """Insert new traces; replace a trace only when its payload changed. Returns counts."""
        counts = {"loaded": 0, "updated": 0, "unchanged": 0}
        if not rows:
            return counts
        df = pd.DataFrame(rows).drop_duplicates("trace_id", keep="last")
        with self.transaction() as c:
            c.register("incoming", df)
            existing = dict(
                c.execute(
                    "SELECT r.trace_id, r.payload_hash FROM raw_traces r JOIN incoming i USING (trace_id)"
                ).fetchall()
            )
            df["status"] = [
                "loaded" if t not in existing else ("unchanged" if existing[t] == h else "updated")
                for t, h in zip(df.trace_id, df.payload_hash)
            ]
            for k in counts:
                counts[k] = int((df.status == k).sum())
            changed = df[df.status != "unchanged"].drop(columns="status")
            c.register("changed", changed)
            c.execute(
                """
                INSERT INTO raw_traces
                SELECT ch.trace_id, ch.project, ch.day::DATE, ch.started_at::TIMESTAMPTZ, ch.format, ch.source,
                       ch.payload, ch.payload_hash, coalesce(r.version, 0) + 1, now()
                FROM changed ch LEFT JOIN raw_traces r USING (trace_id)
                ON CONFLICT (trace_id) DO UPDATE SET
                    project = excluded.project, day = excluded.day, started_at = excluded.started_at,
                    format = excluded.format, source = excluded.source, payload = excluded.payload,
                    payload_hash = excluded.payload_hash, version = excluded.version,
                    ingested_at = excluded.ingested_at
                """
            )
            c.unregister("incoming")
            c.unregister("changed")
        return counts

    def raw_payloads(self, trace_ids: list[str], formats: Iterable[str]) -> dict[str, str]:
        """Stored payloads of these traces, where they were stored in one of `formats`."""
        if not trace_ids:
            return {}
        with self.conn() as c:
            return dict(c.execute(
                """SELECT trace_id, payload FROM raw_traces WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))
                   AND format IN (SELECT unnest(?::VARCHAR[]))""", [trace_ids, sorted(formats)]).fetchall())

    def add_quarantined(self, rows: list[dict]) -> None:
        if not rows:
            return
        df = pd.DataFrame(rows, columns=["source", "line", "trace_id", "reason", "snippet"])
        with self.transaction() as c:
            c.register("q", df)
            c.execute(
                "INSERT INTO quarantine SELECT source, line::INTEGER, trace_id, reason, snippet, now() FROM q"
            )
            c.unregister("q")

    # ----- traces (preprocessed) ---------------------------------------------------
    def raw_traces_for_days(self, days: list[str]) -> pd.DataFrame:
        return self.query_df(
            """SELECT r.trace_id, r.project, r.day::VARCHAR AS day, r.started_at, r.format, r.version,
                      r.payload, r.payload_hash, t.payload_hash AS done_hash, t.status AS done_status,
                      t.preprocess_hash AS done_preprocess_hash
               FROM raw_traces r LEFT JOIN traces t USING (trace_id)
               WHERE r.day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))""",
            [days],
        )

    def replace_traces(self, days: list[str], rows: list[dict], keep_ids: list[str]) -> None:
        """Write preprocessed rows; drop rows of these days whose raw trace moved or vanished."""
        df = pd.DataFrame(rows, columns=TRACE_COLUMNS)
        with self.transaction() as c:
            _drop_departed(c, "traces", days, keep_ids)
            if len(df):
                c.register("t", df)
                cols = ", ".join(TRACE_COLUMNS)
                c.execute(f"INSERT OR REPLACE INTO traces ({cols}) SELECT {cols} FROM t")
                c.unregister("t")

    # ----- facets ------------------------------------------------------------------
    def write_facets(self, days: list[str], rows: list[dict], failures: list[dict], live_ids: list[str]) -> None:
        fdf = pd.DataFrame(rows, columns=FACET_COLUMNS)
        xdf = pd.DataFrame(failures, columns=["trace_id", "project", "day", "reason", "detail"])
        with self.transaction() as c:
            # Facets and failures of traces that left these days (or were deleted) go with them.
            _drop_departed(c, "facets", days, live_ids)
            _drop_departed(c, "facet_failures", days, live_ids)
            if len(fdf):
                c.register("f", fdf)
                c.execute("DELETE FROM facets WHERE trace_id IN (SELECT DISTINCT trace_id FROM f)")
                cols = ", ".join(FACET_COLUMNS)
                c.execute(f"INSERT INTO facets ({cols}) SELECT {cols} FROM f")
                c.execute("DELETE FROM facet_failures WHERE trace_id IN (SELECT DISTINCT trace_id FROM f)")
                c.unregister("f")
            if len(xdf):
                c.register("x", xdf)
                c.execute(
                    "INSERT OR REPLACE INTO facet_failures SELECT trace_id, project, day::DATE, reason, detail, now() FROM x"
                )
                c.unregister("x")

    def traces_to_facet(self, days: list[str]) -> pd.DataFrame:
        """Preprocessed traces of these days that can be faceted."""
        return self.query_df(
            """SELECT trace_id, project, day::VARCHAR AS day, content, content_hash FROM traces
               WHERE status = 'ok' AND day::VARCHAR IN (SELECT unnest(?::VARCHAR[])) ORDER BY trace_id""", [days])

    def facet_versions(self, days: list[str]) -> pd.DataFrame:
        """What each stored facet of these days was made from (content, facet definitions, model)."""
        return self.query_df(
            """SELECT f.trace_id, f.facet, f.content_hash, f.facets_hash, f.model FROM facets f
               WHERE f.day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))""", [days])

    # ----- embeddings --------------------------------------------------------------
    def texts_missing_embeddings(self, days: list[str], model: str, facets: list[str]) -> pd.DataFrame:
        return self.query_df(
            """SELECT DISTINCT f.text_hash, f.text FROM facets f
               WHERE f.day::VARCHAR IN (SELECT unnest(?::VARCHAR[])) AND f.facet IN (SELECT unnest(?::VARCHAR[]))
                 AND f.text IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM facet_embeddings e WHERE e.model = ? AND e.text_hash = f.text_hash)
               ORDER BY f.text_hash""",
            [days, facets, model],
        )

    def write_embeddings(self, model: str, text_hashes: list[str], texts: list[str], vectors: np.ndarray) -> None:
        df = pd.DataFrame({"text_hash": text_hashes, "text": texts, "vector": list(vectors.astype(np.float32))})
        with self.transaction() as c:
            c.register("e", df)
            c.execute(
                "INSERT OR IGNORE INTO facet_embeddings SELECT ?, text_hash, text, vector::FLOAT[], now() FROM e",
                [model],
            )
            c.unregister("e")

    def facet_vectors(self, model: str, facet: str, project: str | None = None, days: list[str] | None = None,
                      where: str | None = None, limit_sample: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """Facet rows joined to their vectors; optionally a reproducible sample of at most limit_sample."""
        conds = ["f.facet = ?", "e.model = ?"]
        params: list[Any] = [facet, model]
        if project is not None:
            conds.append("f.project = ?")
            params.append(project)
        if days is not None:
            conds.append("f.day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))")
            params.append(days)
        if where:
            conds.append(f"f.trace_id IN (SELECT trace_id FROM traces t WHERE {where})")
        sql = f"""SELECT f.trace_id, f.project, f.day::VARCHAR AS day, f.text, f.text_hash, e.vector
                  FROM facets f JOIN facet_embeddings e ON e.text_hash = f.text_hash
                  WHERE {' AND '.join(conds)} ORDER BY f.trace_id"""
        if limit_sample:
            sql = f"SELECT * FROM ({sql}) USING SAMPLE reservoir({int(limit_sample)} ROWS) REPEATABLE ({int(seed)}) ORDER BY trace_id"
        with self.conn() as c:
            res = c.execute(sql, params).fetchnumpy()
        vectors = vectors_to_array(res.pop("vector"))
        return pd.DataFrame(res), vectors

    # ----- topic maps --------------------------------------------------------------
    def gate_counts(self, project: str, facet: str) -> dict[str, int]:
        with self.conn() as c:
            n_traces = c.execute("SELECT count(*) FROM traces WHERE project = ? AND status = 'ok'", [project]).fetchone()[0]
            n_unique = c.execute(
                "SELECT count(DISTINCT text_hash) FROM facets WHERE project = ? AND facet = ?", [project, facet]
            ).fetchone()[0]
        return {"traces": int(n_traces), "unique_facets": int(n_unique)}

    def latest_generation(self, project: str, facet: str) -> int | None:
        with self.conn() as c:
            row = c.execute(
                "SELECT max(generation) FROM topic_map_generations WHERE project = ? AND facet = ?", [project, facet]
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def load_topics(self, project: str, facet: str, generation: int | None = None, active_only: bool = True) -> pd.DataFrame:
        generation = self.latest_generation(project, facet) if generation is None else generation
        if generation is None:
            return pd.DataFrame(columns=TOPIC_COLUMNS)
        status = "AND status = 'active'" if active_only else ""
        return self.query_df(
            f"""SELECT * FROM topic_maps WHERE project = ? AND facet = ? AND generation = ? {status}
                ORDER BY size DESC, topic_id""",
            [project, facet, generation],
        )

    def next_topic_number(self, project: str, facet: str) -> int:
        """Topic ids are never reused, not even those of retired topics."""
        with self.conn() as c:
            row = c.execute(
                """SELECT max(try_cast(split_part(topic_id, '-', -1) AS INTEGER)) FROM topic_maps
                   WHERE project = ? AND facet = ?""", [project, facet]).fetchone()
        return (row[0] or 0) + 1

    def generation_info(self, project: str, facet: str, generation: int) -> dict[str, Any]:
        df = self.query_df(
            "SELECT * FROM topic_map_generations WHERE project = ? AND facet = ? AND generation = ?",
            [project, facet, generation],
        )
        return df.iloc[0].to_dict() if len(df) else {}

    def write_generation(self, info: dict[str, Any], topics: list[dict], expected_previous: int | None) -> None:
        """Land a generation, unless another one landed since `expected_previous` was read."""
        tdf = pd.DataFrame(topics, columns=TOPIC_COLUMNS)
        with self.transaction() as c:
            latest = c.execute("SELECT max(generation) FROM topic_map_generations WHERE project = ? AND facet = ?",
                               [info["project"], info["facet"]]).fetchone()[0]
            if latest != expected_previous:
                raise GenerationConflict(f"{info['project']}/{info['facet']}: generation {latest} landed meanwhile")
            c.execute(
                """INSERT INTO topic_map_generations VALUES (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?)""",
                [info["project"], info["facet"], info["generation"], info["embedding_model"], info["naming_engine"],
                 info["n_facets"], info["n_sampled"], info["n_topics"], info["noise_share"], info["threshold"],
                 json.dumps(info.get("params", {}))],
            )
            c.register("tm", tdf)
            cols = ", ".join(TOPIC_COLUMNS)
            c.execute(
                f"""INSERT INTO topic_maps ({cols}) SELECT project, facet, generation, topic_id, name, description,
                    keywords::VARCHAR[], size, centroid::FLOAT[], examples::VARCHAR[], status FROM tm"""
            )
            c.unregister("tm")

    def projects(self) -> list[str]:
        with self.conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT project FROM raw_traces ORDER BY 1").fetchall()]

    def days_with_traces(self, project: str | None = None) -> list[str]:
        sql = "SELECT DISTINCT day::VARCHAR FROM raw_traces"
        params: list[Any] = []
        if project:
            sql += " WHERE project = ?"
            params.append(project)
        with self.conn() as c:
            return [r[0] for r in c.execute(sql + " ORDER BY 1", params).fetchall()]

    def pending_days(self, project: str | None = None, preprocess_hash: str | None = None) -> list[str]:
        """Days with work left: new or changed traces (or ones preprocessed with other settings than
        `preprocess_hash`), traces without facets (failures are retried), or facets not yet labelled
        by their map's newest generation."""
        only = "AND {t}.project = ?" if project else ""
        same_settings = "AND t.preprocess_hash = ?" if preprocess_hash else ""
        sql = f"""
            SELECT r.day::VARCHAR FROM raw_traces r
            WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = r.trace_id
                              AND t.payload_hash = r.payload_hash AND t.day = r.day {same_settings})
                  {only.format(t="r")}
            UNION
            SELECT t.day::VARCHAR FROM traces t
            WHERE t.status = 'ok' {only.format(t="t")}
              AND NOT EXISTS (SELECT 1 FROM facets f WHERE f.trace_id = t.trace_id AND f.content_hash = t.content_hash)
            UNION
            SELECT f.day::VARCHAR FROM facets f
            JOIN (SELECT project, facet, max(generation) AS generation FROM topic_map_generations GROUP BY ALL) g
              USING (project, facet)
            WHERE NOT EXISTS (SELECT 1 FROM classifications c WHERE c.trace_id = f.trace_id AND c.facet = f.facet
                              AND c.generation = g.generation) {only.format(t="f")}
            ORDER BY 1"""
        # Placeholders in order: the settings hash (first union), then the project once per union.
        params = ([preprocess_hash] if preprocess_hash else []) + ([project] * 3 if project else [])
        with self.conn() as c:
            return [r[0] for r in c.execute(sql, params).fetchall()]

    # ----- classifications ---------------------------------------------------------
    def write_classifications(self, project: str, facet: str, generation: int, days: list[str], df: pd.DataFrame) -> None:
        """Replace this generation's labels for these days (re-running a partition never duplicates)."""
        with self.transaction() as c:
            c.execute(
                """DELETE FROM classifications WHERE project = ? AND facet = ? AND generation = ?
                   AND day::VARCHAR IN (SELECT unnest(?::VARCHAR[]))""",
                [project, facet, generation, days],
            )
            if len(df):
                c.register("cl", df)
                c.execute(
                    """INSERT OR REPLACE INTO classifications
                       SELECT trace_id, ?, ?, ?, topic_id, distance, day::DATE, now() FROM cl""",
                    [project, facet, generation],
                )
                c.unregister("cl")


TRACE_COLUMNS = [
    "trace_id", "project", "day", "started_at", "format", "version", "payload_hash", "content", "content_hash",
    "n_spans", "n_messages", "tokens_before", "tokens_after", "truncated", "redactions", "status", "error",
    "preprocessed_at", "preprocess_hash",
]
FACET_COLUMNS = [
    "trace_id", "facet", "project", "day", "text", "text_hash", "engine", "model", "content_hash", "facets_hash",
    "created_at",
]
TOPIC_COLUMNS = [
    "project", "facet", "generation", "topic_id", "name", "description", "keywords", "size", "centroid",
    "examples", "status",
]
