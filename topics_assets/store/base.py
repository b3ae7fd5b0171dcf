"""Every read and write the pipeline makes, written once over the SQL both backends speak.

A backend supplies connections, transactions, how a DataFrame becomes a relation inside a
transaction (`_stage`), how rows come back, the sample and the per-key lock. Everything else, the
logic and the SQL (with `?` placeholders), lives here, so DuckDB and PostgreSQL cannot drift apart.
Writers keep connections short (read, close, compute, then write in one transaction) and upsert,
so two runs writing the same rows end with one copy of each and no lost write.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .protocol import TraceKey
from .schema import (
    ALERT_COLUMNS,
    ALERT_KEY,
    CLASSIFICATION_COLUMNS,
    DDL,
    TABLES,
    VIEW_DDL,
    VIEWS,
    tables_required,
    FACET_COLUMNS,
    FAILURE_COLUMNS,
    HIERARCHY_COLUMNS,
    MIGRATIONS,
    OUTCOME_COLUMNS,
    POINT_COLUMNS,
    QUARANTINE_COLUMNS,
    RAW_COLUMNS,
    SCHEMA_VERSION,
    TOPIC_COLUMNS,
    TOPIC_STATS_COLUMNS,
    TRACE_COLUMNS,
)

T = TypeVar("T")


class GenerationConflict(RuntimeError):
    """Another run landed a topic map generation while this one was fitting."""


class QueryError(RuntimeError):
    """A query given to `query_df` failed (bad SQL, or a write on a read-only query)."""


class StoreUnusable(RuntimeError):
    """The store cannot be used as it is (damaged, incomplete, or newer than this release); the
    message says why and what to do, in one line, and nothing was written to it."""


class StoreDamaged(StoreUnusable):
    """The store's file is damaged (truncated, or not a database of this backend)."""


class StoreIncomplete(StoreUnusable):
    """The store is at a recorded schema version but lacks tables it must have (dropped, or lost)."""


def one_statement_error(found: int | None) -> "QueryError":
    """The refusal of a query holding other than one statement (`found`: how many, if known)."""
    many = "none" if found == 0 else "more than one" if found is None else str(found)
    return QueryError(f"one SQL statement per call, and this query has {many}; run each statement on its own")


class SchemaTooNew(StoreUnusable):
    """The store was made by a newer release than this one."""


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def vectors_to_array(values: Iterable[Any]) -> np.ndarray:
    rows = list(values)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack(rows).astype(np.float32, copy=False)


def _in(column: str) -> str:
    """`column` is one of a list parameter (both dialects unnest a typed array)."""
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))"


def _key_in(table: str) -> str:
    """`table`'s (project, trace_id) is one of the pairs of two parallel list parameters (both
    dialects zip unnests in one select list)."""
    return (f"EXISTS (SELECT 1 FROM (SELECT unnest(?::VARCHAR[]) AS project, unnest(?::VARCHAR[]) AS trace_id) k "
            f"WHERE k.project = {table}.project AND k.trace_id = {table}.trace_id)")


def _key_params(keys: Iterable[TraceKey]) -> list[list[str]]:
    """The two parameters of `_key_in`."""
    pairs = list(keys)
    return [[p for p, _ in pairs], [t for _, t in pairs]]


def _upsert(table: str, cols: list[str], key: list[str], select: str, where: str = "",
            update: dict[str, str] | None = None) -> str:
    """Insert `select`'s rows; a row whose key exists takes the new values (`update` overrides some)."""
    update = update or {}
    updates = ", ".join(f"{c} = {update.get(c, 'excluded.' + c)}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) {select} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} {where}")


def _rows(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """One row per key (an upsert may touch a row once), in key order (concurrent writers lock
    rows in the same order, so they queue instead of deadlocking)."""
    return df.drop_duplicates(key, keep="last").sort_values(key, kind="stable").reset_index(drop=True)


class SQLStore:
    """The Store protocol over a SQL backend; subclasses supply the dialect hooks below."""

    #: the backend's own error class (what a failing query raises before `query_df` wraps it)
    Error: type[Exception] = Exception
    retries = 6

    def __init__(self, database: str, lock_wait_s: float = 300.0):
        self.database = database
        self.lock_wait_s = lock_wait_s
        self._schema_ready = False

    # ----- dialect hooks -----------------------------------------------------------
    def _connect(self, read_only: bool = False) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def _begin(self, c) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def _stage(self, c, name: str, df: pd.DataFrame, like: str) -> None:
        """Make `df` readable as relation `name` until the transaction ends (columns as in table `like`)."""
        raise NotImplementedError

    def _fetch_df(self, c, sql: str, params: list) -> pd.DataFrame:
        raise NotImplementedError

    def _fetch_columns(self, c, sql: str, params: list) -> dict[str, Any]:
        df = self._fetch_df(c, sql, params)
        return {k: df[k].to_numpy() for k in df.columns}

    def _sample(self, sql: str, n: int, seed: int) -> str:
        """At most n rows of `sql`, the same ones for the same data and seed, ordered by (project, trace_id)."""
        raise NotImplementedError

    def _lock(self, c, key: str) -> None:
        """Hold a lock on `key` until the transaction ends (a single-writer backend needs none)."""

    def _retryable(self, e: Exception) -> bool:
        return False

    # ----- connections, schema, transactions ----------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Read-only calls inside share one read-only connection (this thread's): the explorer's answers
        make several reads each, and opening the store is most of a small read's time."""
        pinned = self.__dict__.setdefault("_pinned", threading.local())
        if getattr(pinned, "c", None) is not None:
            yield
            return
        with self.conn(read_only=True) as c:
            pinned.c = c
            try:
                yield
            finally:
                pinned.c = None

    @contextlib.contextmanager
    def conn(self, read_only: bool = False) -> Iterator[Any]:
        pinned = getattr(self.__dict__.get("_pinned"), "c", None)
        if read_only and pinned is not None:
            yield pinned
            return
        if read_only and not self._schema_ready:
            # A reader of an up-to-date store never opens it for writing (so it runs beside another
            # process's connections); an older or empty one is migrated first, as for any caller.
            try:
                with self._connect(read_only=True) as c:
                    ready = self._version(c) == SCHEMA_VERSION
                    if ready:
                        self._check_readable(c)  # a damaged file is refused to readers too
                    self._schema_ready = ready
            except self.Error:  # e.g. no DuckDB file yet: made below
                pass
        self._ensure_schema()
        with self._connect(read_only) as c:
            yield c

    def _exec(self, c, sql: str, params: list | None = None):
        return c.execute(self._sql(sql), params or [])

    def _one(self, c, sql: str, params: list | None = None) -> Any:
        return self._exec(c, sql, params).fetchone()[0]

    def _column(self, c, sql: str, params: list | None = None) -> list:
        return [r[0] for r in self._exec(c, sql, params).fetchall()]

    def _has_table(self, c, name: str) -> bool:
        return bool(self._one(c, """SELECT count(*) FROM information_schema.tables
                                    WHERE table_schema = current_schema() AND table_name = ?""", [name]))

    def _version(self, c) -> int | None:
        if not self._has_table(c, "schema_version"):
            return 1 if self._has_table(c, "raw_traces") else None
        return self._one(c, "SELECT max(version) FROM schema_version")

    def _relations(self, c) -> set[str]:
        """Names of the tables and views in the store's schema."""
        return set(self._column(c, """SELECT table_name FROM information_schema.tables
                                      WHERE table_schema = current_schema()"""))

    def _check_readable(self, c) -> None:
        """Raise StoreDamaged when the store open on `c` cannot be read whole (the backend knows how)."""

    def _check_intact(self) -> None:
        """Raise StoreDamaged when the store's storage is damaged (a backend that can tell)."""

    def _check_complete(self, c) -> None:
        """A store at a recorded version must have its tables: one that lacks some is refused, never
        silently given new empty ones (its rows would be gone without a word). A store with none of
        them is new. A missing view is remade (it holds no rows)."""
        present = self._relations(c)
        found = self._version(c)
        if found is None:
            required = TABLES if present & set(TABLES) else ()
        else:
            required = tables_required(min(found, SCHEMA_VERSION))
        missing = [t for t in required if t not in present]
        if missing:
            at = f"at schema version {found}" if found is not None else "without a schema version"
            raise StoreIncomplete(
                f"{self.database}: the store is {at} but lacks table(s) {', '.join(missing)} (dropped or lost); "
                f"nothing was written and they are not recreated empty. Restore the store from a backup, or "
                f"move it aside and ingest into a new one")
        if found == SCHEMA_VERSION and not set(VIEWS) <= present:
            with self._begin(c):
                c.execute(VIEW_DDL)

    def schema_version(self) -> int | None:
        with self.conn() as c:
            return self._version(c)

    def _ensure_schema(self) -> None:
        """Create the schema, or migrate a store made by an older release forward, keeping its rows."""
        if self._schema_ready:
            return
        self._check_intact()
        with self._connect() as c:
            self._check_complete(c)
            if self._version(c) != SCHEMA_VERSION:
                with self._begin(c):
                    self._lock(c, "schema")
                    found = self._version(c)
                    if found is not None and found > SCHEMA_VERSION:
                        raise SchemaTooNew(f"{self.database}: schema version {found}, this release knows "
                                           f"{SCHEMA_VERSION}; upgrade topics")
                    if found != SCHEMA_VERSION:
                        c.execute(DDL)
                        for v in range((found or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
                            for statement in MIGRATIONS.get(v, []):
                                c.execute(statement)
                        self._exec(c, "INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])
        self._schema_ready = True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.conn() as c, self._begin(c):
            yield c

    def _write(self, body: Callable[[Any], T]) -> T:
        """Run `body` in one transaction, again from the start if the backend aborted it for a
        conflict with another writer (a deadlock or serialization failure)."""
        delay = 0.05
        for attempt in range(self.retries):
            try:
                with self.transaction() as c:
                    return body(c)
            except Exception as e:
                if attempt == self.retries - 1 or not self._retryable(e):
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _drop_departed(self, c, table: str, days: list[str], keep: list[TraceKey]) -> None:
        """Rows of these days whose trace is no longer there (moved to another day, or gone)."""
        self._exec(c, f"DELETE FROM {table} WHERE {_in('day::VARCHAR')} AND NOT {_key_in(table)}",
                   [days, *_key_params(keep)])

    # ----- the SQL contract for users and tests ------------------------------------
    def query_df(self, sql: str, params: list | None = None, read_only: bool = False) -> pd.DataFrame:
        """Exactly one SQL statement on the store (`?` placeholders); `read_only` refuses changes.

        More than one is refused before any runs: a `SELECT 1; DROP TABLE ...` never drops."""
        try:
            with self.conn(read_only=read_only) as c:
                return self._fetch_statement(c, sql, params or [])
        except self.Error as e:
            raise QueryError(str(e)) from e

    def _fetch_statement(self, c, sql: str, params: list) -> pd.DataFrame:
        """`_fetch_df`, but QueryError(ONE_STATEMENT) unless `sql` is exactly one statement."""
        raise NotImplementedError

    def _df(self, sql: str, params: list | None = None, read_only: bool = False) -> pd.DataFrame:
        with self.conn(read_only=read_only) as c:
            return self._fetch_df(c, sql, params or [])

    # ----- ingest -----------------------------------------------------------------
    def upsert_raw_traces(self, rows: list[dict]) -> dict[str, int]:
        """Insert new traces; replace a trace only when its payload changed. Returns counts."""
        counts = {"loaded": 0, "updated": 0, "unchanged": 0}
        if not rows:
            return counts
        df = _rows(pd.DataFrame(rows), ["project", "trace_id"])

        def body(c) -> None:
            existing = {(p, t): h for p, t, h in self._exec(
                c, f"SELECT project, trace_id, payload_hash FROM raw_traces WHERE {_key_in('raw_traces')}",
                _key_params(zip(df.project, df.trace_id))).fetchall()}
            status = ["loaded" if k not in existing else ("unchanged" if existing[k] == h else "updated")
                      for k, h in zip(zip(df.project, df.trace_id), df.payload_hash)]
            for k in counts:
                counts[k] = status.count(k)
            changed = df[[s != "unchanged" for s in status]]
            if not len(changed):
                return
            self._stage(c, "changed", changed[RAW_COLUMNS], "raw_traces")
            cols = RAW_COLUMNS + ["version", "ingested_at"]
            self._exec(c, _upsert(
                "raw_traces", cols, ["project", "trace_id"],
                """SELECT trace_id, project, day::DATE, started_at::TIMESTAMPTZ, format, source, payload,
                          payload_hash, 1, now() FROM changed""",
                "WHERE raw_traces.payload_hash IS DISTINCT FROM excluded.payload_hash",
                update={"version": "raw_traces.version + 1"}))

        self._write(body)
        return counts

    def raw_payloads(self, keys: list[TraceKey], formats: Iterable[str]) -> dict[TraceKey, str]:
        """Stored payloads of these (project, trace_id) traces, where they were stored in one of `formats`."""
        if not keys:
            return {}
        with self.conn() as c:
            rows = self._exec(c, f"""SELECT project, trace_id, payload FROM raw_traces
                                     WHERE {_key_in('raw_traces')} AND {_in('format')}""",
                              [*_key_params(keys), sorted(formats)]).fetchall()
        return {(p, t): payload for p, t, payload in rows}

    def add_quarantined(self, rows: list[dict]) -> None:
        if not rows:
            return
        df = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)

        def body(c) -> None:
            self._stage(c, "q", df, "quarantine")
            self._exec(c, "INSERT INTO quarantine SELECT source, line::INTEGER, trace_id, reason, snippet, now() FROM q")

        self._write(body)

    def ingest_watermark(self) -> tuple[str | None, int]:
        """When the newest trace was ingested, and how many there are: changes whenever ingest did."""
        with self.conn() as c:
            w, n = self._exec(c, "SELECT max(ingested_at)::VARCHAR, count(*) FROM raw_traces").fetchone()
        return w, int(n)

    # ----- traces (preprocessed) ---------------------------------------------------
    def raw_traces_for_days(self, days: list[str]) -> pd.DataFrame:
        return self._df(
            f"""SELECT r.trace_id, r.project, r.day::VARCHAR AS day, r.started_at, r.format, r.version,
                      r.payload, r.payload_hash, t.payload_hash AS done_hash, t.status AS done_status,
                      t.preprocess_hash AS done_preprocess_hash
               FROM raw_traces r LEFT JOIN traces t USING (project, trace_id)
               WHERE {_in('r.day::VARCHAR')}""",
            [days],
        )

    def replace_traces(self, days: list[str], rows: list[dict], keep: list[TraceKey]) -> None:
        """Write preprocessed rows; drop rows of these days whose raw trace moved or vanished (all
        but the (project, trace_id) pairs in `keep`)."""
        df = _rows(pd.DataFrame(rows, columns=TRACE_COLUMNS), ["project", "trace_id"])

        def body(c) -> None:
            self._drop_departed(c, "traces", days, keep)
            if len(df):
                self._stage(c, "t", df, "traces")
                self._exec(c, _upsert("traces", TRACE_COLUMNS, ["project", "trace_id"],
                                      f"SELECT {', '.join(TRACE_COLUMNS)} FROM t"))

        self._write(body)

    def replace_outcomes(self, days: list[str], rows: list[dict], keep: list[tuple[str, str]]) -> None:
        """Write outcome rows; drop rows of these days whose (project, trace_id) is not in `keep`."""
        df = _rows(pd.DataFrame(rows, columns=OUTCOME_COLUMNS), ["project", "trace_id"])
        kept = pd.DataFrame(keep, columns=["project", "trace_id"])
        lists = {"error_kinds", "failed_tools", "models", "tools", "agents"}
        select = ", ".join(f"{c}::TEXT[]" if c in lists else "day::DATE" if c == "day" else c
                           for c in OUTCOME_COLUMNS)

        def body(c) -> None:
            self._stage(c, "kept", kept, "trace_outcomes")
            self._exec(c, f"""DELETE FROM trace_outcomes WHERE {_in('day::VARCHAR')} AND NOT EXISTS (
                SELECT 1 FROM kept WHERE kept.project = trace_outcomes.project
                AND kept.trace_id = trace_outcomes.trace_id)""", [days])
            if len(df):
                self._stage(c, "o", df, "trace_outcomes")
                self._exec(c, _upsert("trace_outcomes", OUTCOME_COLUMNS + ["extracted_at"], ["project", "trace_id"],
                                      f"SELECT {select}, now() FROM o"))

        self._write(body)

    def ok_traces_for_days(self, days: list[str]) -> pd.DataFrame:
        """The preprocessed traces of these days that can be faceted."""
        return self._df(
            f"""SELECT trace_id, project, day::VARCHAR AS day, content, content_hash FROM traces
               WHERE status = 'ok' AND {_in('day::VARCHAR')} ORDER BY project, trace_id""", [days])

    # ----- facets ------------------------------------------------------------------
    def facets_for_days(self, days: list[str]) -> pd.DataFrame:
        """What each trace of these days was faceted from, and with which facet definitions and model."""
        return self._df(
            f"""SELECT trace_id, project, facet, content_hash, facets_hash, model FROM facets
               WHERE {_in('day::VARCHAR')} ORDER BY project, trace_id, facet""", [days])

    def write_facets(self, days: list[str], rows: list[dict], failures: list[dict], live: list[TraceKey]) -> None:
        """Upsert facets and failures; drop those of these days' traces not in `live` ((project, trace_id) pairs)."""
        fdf = _rows(pd.DataFrame(rows, columns=FACET_COLUMNS), ["project", "trace_id", "facet"])
        xdf = _rows(pd.DataFrame(failures, columns=FAILURE_COLUMNS), ["project", "trace_id"])

        def body(c) -> None:
            # Facets and failures of traces that left these days (or were deleted) go with them.
            self._drop_departed(c, "facets", days, live)
            self._drop_departed(c, "facet_failures", days, live)
            if len(fdf):
                self._stage(c, "f", fdf, "facets")
                # A faceted trace keeps exactly the facets it was given now.
                self._exec(c, """DELETE FROM facets WHERE (project, trace_id) IN (SELECT project, trace_id FROM f)
                                 AND NOT EXISTS (SELECT 1 FROM f WHERE f.project = facets.project
                                                 AND f.trace_id = facets.trace_id AND f.facet = facets.facet)""")
                self._exec(c, _upsert("facets", FACET_COLUMNS, ["project", "trace_id", "facet"],
                                      f"SELECT {', '.join(FACET_COLUMNS)} FROM f"))
                self._exec(c, """DELETE FROM facet_failures
                                 WHERE (project, trace_id) IN (SELECT project, trace_id FROM f)""")
            if len(xdf):
                self._stage(c, "x", xdf, "facet_failures")
                self._exec(c, _upsert("facet_failures", FAILURE_COLUMNS + ["failed_at"], ["project", "trace_id"],
                                      "SELECT trace_id, project, day::DATE, reason, detail, now() FROM x"))

        self._write(body)

    # ----- embeddings --------------------------------------------------------------
    def texts_missing_embeddings(self, days: list[str], model: str, facets: list[str]) -> pd.DataFrame:
        return self._df(
            f"""SELECT DISTINCT f.text_hash, f.text FROM facets f
               WHERE {_in('f.day::VARCHAR')} AND {_in('f.facet')} AND f.text IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM facet_embeddings e WHERE e.model = ? AND e.text_hash = f.text_hash)
               ORDER BY f.text_hash""",
            [days, facets, model],
        )

    def write_embeddings(self, model: str, text_hashes: list[str], texts: list[str], vectors: np.ndarray) -> None:
        df = _rows(pd.DataFrame({"text_hash": text_hashes, "text": texts,
                                 "vector": list(np.asarray(vectors, dtype=np.float32))}), ["text_hash"])

        def body(c) -> None:
            self._stage(c, "e", df, "facet_embeddings")
            self._exec(c, """INSERT INTO facet_embeddings SELECT ?::VARCHAR, text_hash, text, vector::REAL[], now() FROM e
                             ON CONFLICT DO NOTHING""", [model])

        if len(df):
            self._write(body)

    def facet_vectors(self, model: str, facet: str, project: str | None = None, days: list[str] | None = None,
                      where: str | None = None, limit_sample: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """Facet rows joined to their vectors; optionally a reproducible sample of at most limit_sample."""
        conds = ["f.facet = ?", "e.model = ?"]
        params: list[Any] = [facet, model]
        if project is not None:
            conds.append("f.project = ?")
            params.append(project)
        if days is not None:
            conds.append(_in("f.day::VARCHAR"))
            params.append(days)
        if where:
            conds.append(f"EXISTS (SELECT 1 FROM traces t WHERE t.project = f.project AND t.trace_id = f.trace_id "
                         f"AND ({where}))")
        sql = f"""SELECT f.trace_id, f.project, f.day::VARCHAR AS day, f.text, f.text_hash, e.vector
                  FROM facets f JOIN facet_embeddings e ON e.text_hash = f.text_hash
                  WHERE {' AND '.join(conds)} ORDER BY f.project, f.trace_id"""
        if limit_sample:
            sql = self._sample(sql, int(limit_sample), int(seed))
        try:
            with self.conn() as c:
                res = self._fetch_columns(c, sql, params)
        except self.Error as e:
            if not where:
                raise
            raise QueryError(f"where {where!r}: {e}") from e  # the user's filter, as for query_df
        vectors = vectors_to_array(res.pop("vector"))
        return pd.DataFrame(res), vectors

    # ----- topic maps --------------------------------------------------------------
    def gate_counts(self, project: str, facet: str) -> dict[str, int]:
        with self.conn() as c:
            n_traces = self._one(c, "SELECT count(*) FROM traces WHERE project = ? AND status = 'ok'", [project])
            n_unique = self._one(c, "SELECT count(DISTINCT text_hash) FROM facets WHERE project = ? AND facet = ?",
                                 [project, facet])
        return {"traces": int(n_traces), "unique_facets": int(n_unique)}

    def _latest(self, c, project: str, facet: str) -> int | None:
        v = self._one(c, "SELECT max(generation) FROM topic_map_generations WHERE project = ? AND facet = ?",
                      [project, facet])
        return None if v is None else int(v)

    def latest_generation(self, project: str, facet: str) -> int | None:
        with self.conn() as c:
            return self._latest(c, project, facet)

    def load_topics(self, project: str, facet: str, generation: int | None = None, active_only: bool = True,
                    read_only: bool = False, with_merged: bool = False) -> pd.DataFrame:
        """A generation's topics, biggest first: the active ones (`with_merged`: and those merged into
        another, whose centroids still label for it), or every row (`active_only` False)."""
        generation = self.latest_generation(project, facet) if generation is None else generation
        if generation is None:
            return pd.DataFrame(columns=TOPIC_COLUMNS)
        status = ("AND status IN ('active', 'merged')" if with_merged else "AND status = 'active'") if active_only else ""
        return self._df(
            f"""SELECT {', '.join(TOPIC_COLUMNS)} FROM topic_maps WHERE project = ? AND facet = ? AND generation = ?
                {status} ORDER BY size DESC, topic_id""",
            [project, facet, generation], read_only=read_only,
        )

    def next_topic_number(self, project: str, facet: str) -> int:
        """Topic ids are never reused, not even those of retired topics."""
        with self.conn() as c:
            ids = self._column(c, "SELECT DISTINCT topic_id FROM topic_maps WHERE project = ? AND facet = ?",
                               [project, facet])
        numbers = [int(n) for n in (i.rsplit("-", 1)[-1] for i in ids) if n.isdigit()]
        return max(numbers, default=0) + 1

    def generation_info(self, project: str, facet: str, generation: int) -> dict[str, Any]:
        df = self._df("SELECT * FROM topic_map_generations WHERE project = ? AND facet = ? AND generation = ?",
                      [project, facet, generation])
        return df.iloc[0].to_dict() if len(df) else {}

    def write_generation(self, info: dict[str, Any], topics: list[dict], expected_previous: int | None,
                         points: pd.DataFrame | None = None, hierarchy: list[dict] | None = None) -> None:
        """Land a generation, unless another one landed since `expected_previous` was read; `points`
        (trace_id, x, y, topic_id, text per sampled facet) and `hierarchy` (topic_hierarchy rows) land
        with it, in the same transaction."""
        import json

        tdf = pd.DataFrame(topics, columns=TOPIC_COLUMNS)
        hdf = pd.DataFrame(hierarchy or [], columns=HIERARCHY_COLUMNS)
        pdf = None
        if points is not None and len(points):
            pdf = _rows(points.assign(project=info["project"], facet=info["facet"],
                                      generation=info["generation"])[POINT_COLUMNS], ["trace_id"])
        project, facet = info["project"], info["facet"]

        def body(c) -> None:
            self._lock(c, f"topic_map:{project}/{facet}")
            latest = self._latest(c, project, facet)
            if latest != expected_previous:
                raise GenerationConflict(f"{project}/{facet}: generation {latest} landed meanwhile")
            self._exec(c, "INSERT INTO topic_map_generations VALUES (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?::JSON)",
                       [project, facet, info["generation"], info["embedding_model"], info["naming_engine"],
                        info["n_facets"], info["n_sampled"], info["n_topics"], info["noise_share"],
                        info["threshold"], json.dumps(info.get("params", {}))])
            if len(tdf):
                self._stage(c, "tm", tdf, "topic_maps")
                self._exec(c, f"""INSERT INTO topic_maps ({', '.join(TOPIC_COLUMNS)})
                    SELECT project, facet, generation, topic_id, name, description, keywords::TEXT[], size,
                           centroid::REAL[], examples::TEXT[], status, threshold FROM tm""")
            if pdf is not None:
                self._stage(c, "pts", pdf, "topic_map_points")
                self._exec(c, f"""INSERT INTO topic_map_points ({', '.join(POINT_COLUMNS)})
                    SELECT project, facet, generation::INTEGER, trace_id, x::REAL, y::REAL, topic_id, text FROM pts""")
            if len(hdf):
                self._stage(c, "th", hdf, "topic_hierarchy")
                self._exec(c, f"""INSERT INTO topic_hierarchy ({', '.join(HIERARCHY_COLUMNS)})
                    SELECT project, facet, generation::INTEGER, topic_id, parent_id, parent_name, parent_description,
                           parent_keywords::TEXT[] FROM th""")

        self._write(body)

    # ----- hierarchy and curation ----------------------------------------------------
    def load_hierarchy(self, project: str, facet: str, generation: int, read_only: bool = False) -> pd.DataFrame:
        """A generation's topic_hierarchy rows (one per topic with a parent), by parent then topic."""
        return self._df(f"""SELECT {', '.join(HIERARCHY_COLUMNS)} FROM topic_hierarchy
                            WHERE project = ? AND facet = ? AND generation = ? ORDER BY parent_id, topic_id""",
                        [project, facet, generation], read_only=read_only)

    def next_parent_number(self, project: str, facet: str) -> int:
        """Parent ids, like topic ids, are never reused."""
        with self.conn() as c:
            ids = self._column(c, "SELECT DISTINCT parent_id FROM topic_hierarchy WHERE project = ? AND facet = ?",
                               [project, facet])
        numbers = [int(n[1:]) for n in (i.rsplit("-", 1)[-1] for i in ids) if n[1:].isdigit()]
        return max(numbers, default=0) + 1

    def load_curation(self, project: str, facet: str, read_only: bool = False) -> pd.DataFrame:
        """The renames and merges made on (project, facet), oldest first."""
        return self._df("""SELECT topic_id, action, value, generation, created_at::VARCHAR AS created_at
                           FROM topic_curation WHERE project = ? AND facet = ? ORDER BY created_at, topic_id""",
                        [project, facet], read_only=read_only)

    def _curate(self, c, project: str, facet: str, topic_id: str, action: str, value: str, generation: int) -> None:
        self._exec(c, """INSERT INTO topic_curation (project, facet, topic_id, action, value, generation, created_at)
                         VALUES (?, ?, ?, ?, ?, ?::INTEGER, now())
                         ON CONFLICT (project, facet, topic_id, action) DO UPDATE SET value = excluded.value,
                             generation = excluded.generation, created_at = excluded.created_at""",
                   [project, facet, topic_id, action, value, generation])

    def rename_topic(self, project: str, facet: str, generation: int, topic_id: str, name: str) -> None:
        """Pin `name` on topic_id (kept by every later generation) and give it to this generation's row now."""
        def body(c) -> None:
            self._curate(c, project, facet, topic_id, "rename", name, generation)
            self._exec(c, "UPDATE topic_maps SET name = ? WHERE project = ? AND facet = ? AND generation = ? "
                          "AND topic_id = ?", [name, project, facet, generation, topic_id])

        self._write(body)

    def merge_topics(self, project: str, facet: str, generation: int, keep: str, merged: str) -> None:
        """Record that `merged`'s members are `keep`'s from now on (and those merged into `merged` before),
        and relabel this generation at once: its topic row becomes status 'merged', its size goes to
        `keep`, and its labels, map points and place in the hierarchy become `keep`'s."""
        key = [project, facet, generation]

        def body(c) -> None:
            self._exec(c, """UPDATE topic_curation SET value = ? WHERE project = ? AND facet = ? AND action = 'merge'
                             AND value = ?""", [keep, project, facet, merged])
            self._curate(c, project, facet, merged, "merge", keep, generation)
            self._exec(c, """UPDATE topic_maps SET size = size + coalesce((SELECT size FROM topic_maps m
                                 WHERE m.project = ? AND m.facet = ? AND m.generation = ? AND m.topic_id = ?), 0)
                             WHERE project = ? AND facet = ? AND generation = ? AND topic_id = ?""",
                       [*key, merged, *key, keep])
            self._exec(c, """UPDATE topic_maps SET status = 'merged' WHERE project = ? AND facet = ? AND generation = ?
                             AND topic_id = ?""", [*key, merged])
            for table in ("classifications", "topic_map_points"):
                self._exec(c, f"""UPDATE {table} SET topic_id = ? WHERE project = ? AND facet = ? AND generation = ?
                                  AND topic_id = ?""", [keep, *key, merged])
            self._exec(c, """DELETE FROM topic_hierarchy WHERE project = ? AND facet = ? AND generation = ?
                             AND topic_id = ?""", [*key, merged])

        self._write(body)

    def no_match_counts(self, project: str, facet: str) -> dict[str, int]:
        """Labelled traces of this (project, facet), and how many of them are `no_match`."""
        with self.conn() as c:
            n, nm = self._exec(c, """SELECT count(*), count(*) FILTER (WHERE topic_id = 'no_match') FROM trace_topics
                                     WHERE project = ? AND facet = ?""", [project, facet]).fetchone()
        return {"classified": int(n), "no_match": int(nm)}

    def projects(self) -> list[str]:
        with self.conn() as c:
            return self._column(c, "SELECT DISTINCT project FROM raw_traces ORDER BY 1")

    def ingested_counts(self) -> dict[str, int]:
        """Traces ingested per project (raw_traces), preprocessed or not."""
        with self.conn() as c:
            rows = self._exec(c, "SELECT project, count(*) FROM raw_traces GROUP BY 1").fetchall()
        return {p: int(n) for p, n in rows}

    def days_with_traces(self, project: str | None = None) -> list[str]:
        sql = "SELECT DISTINCT day::VARCHAR FROM raw_traces"
        params: list[Any] = []
        if project:
            sql += " WHERE project = ?"
            params.append(project)
        with self.conn() as c:
            return self._column(c, sql + " ORDER BY 1", params)

    def pending_days(self, project: str | None = None, preprocess_hash: str | None = None) -> list[str]:
        """Days with work left: new or changed traces (or ones preprocessed with other settings than
        `preprocess_hash`), traces without facets (failures are retried), or facets not yet labelled
        by their map's newest generation."""
        only = "AND {t}.project = ?" if project else ""
        same_settings = "AND t.preprocess_hash = ?" if preprocess_hash else ""
        sql = f"""
            SELECT r.day::VARCHAR FROM raw_traces r
            WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.project = r.project AND t.trace_id = r.trace_id
                              AND t.payload_hash = r.payload_hash AND t.day = r.day {same_settings})
                  {only.format(t="r")}
            UNION
            SELECT t.day::VARCHAR FROM traces t
            WHERE t.status = 'ok' {only.format(t="t")}
              AND NOT EXISTS (SELECT 1 FROM facets f WHERE f.project = t.project AND f.trace_id = t.trace_id
                              AND f.content_hash = t.content_hash)
            UNION
            SELECT f.day::VARCHAR FROM facets f
            JOIN (SELECT project, facet, max(generation) AS generation FROM topic_map_generations
                  GROUP BY project, facet) g
              USING (project, facet)
            WHERE NOT EXISTS (SELECT 1 FROM classifications c WHERE c.project = f.project AND c.trace_id = f.trace_id
                              AND c.facet = f.facet AND c.generation = g.generation) {only.format(t="f")}
            ORDER BY 1"""
        # Placeholders in order: the settings hash (first union), then the project once per union.
        params = ([preprocess_hash] if preprocess_hash else []) + ([project] * 3 if project else [])
        with self.conn() as c:
            return self._column(c, sql, params)

    # ----- work claims -------------------------------------------------------------
    def claim_work(self, kind: str, items: list[tuple[str, str]], owner: str, ttl_s: float,
                   is_dead: Callable[[str], bool] = lambda _owner: False) -> dict[tuple[str, str], str]:
        """Claim (project, item) pairs of `kind` for `owner` until ttl_s from now, atomically: a pair
        is taken when unclaimed, lapsed, already `owner`'s, or held by an owner `is_dead` says died.
        Returns the pairs others hold, with their owner (the rest are `owner`'s now)."""
        df = _rows(pd.DataFrame(items, columns=["project", "item"]), ["project", "item"])
        if not len(df):
            return {}
        now = now_utc()
        expires = now + pd.Timedelta(seconds=ttl_s)

        # The pairs as two parallel list parameters, not a staged DataFrame: claims come from many
        # threads at once, and DuckDB's DataFrame scan is not safe to set up concurrently.
        wanted = "(SELECT unnest(?::VARCHAR[]) AS project, unnest(?::VARCHAR[]) AS item)"
        pairs = [df.project.tolist(), df["item"].tolist()]

        def body(c) -> dict[tuple[str, str], str]:
            self._lock(c, f"work_claims:{kind}")
            held = self._exec(c, f"""SELECT w.project, w.item, c.owner FROM {wanted} w JOIN work_claims c
                                     ON c.kind = ? AND c.project = w.project AND c.item = w.item
                                     WHERE c.owner <> ? AND c.expires_at >= ?""", [*pairs, kind, owner, now]).fetchall()
            dead = sorted({o for _, _, o in held if is_dead(o)})
            if dead:
                self._exec(c, f"DELETE FROM work_claims WHERE kind = ? AND {_in('owner')}", [kind, dead])
            self._exec(c, f"""INSERT INTO work_claims (kind, project, item, owner, claimed_at, expires_at)
                              SELECT ?::VARCHAR, project, item, ?::VARCHAR, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ FROM {wanted} w
                              ON CONFLICT (kind, project, item) DO UPDATE SET owner = excluded.owner,
                                  claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
                              WHERE work_claims.expires_at < ? OR work_claims.owner = excluded.owner""",
                       [kind, owner, now, expires, *pairs, now])
            return {(p, i): o for p, i, o in held if o not in dead}

        return self._write(body)

    def renew_claims(self, kind: str, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every claim of `kind` that `owner` holds (its heartbeat)."""
        self._write(lambda c: self._exec(c, "UPDATE work_claims SET expires_at = ?::TIMESTAMPTZ WHERE kind = ? AND owner = ?",
                                         [now_utc() + pd.Timedelta(seconds=ttl_s), kind, owner]))

    def release_claims(self, kind: str, owner: str) -> None:
        self._write(lambda c: self._exec(c, "DELETE FROM work_claims WHERE kind = ? AND owner = ?", [kind, owner]))

    def live_claims(self, kind: str) -> dict[tuple[str, str], str]:
        """The (project, item) pairs of `kind` held now (not lapsed), with their owner."""
        df = self._df("SELECT project, item, owner FROM work_claims WHERE kind = ? AND expires_at >= ?::TIMESTAMPTZ",
                      [kind, now_utc()])
        return {(p, i): o for p, i, o in df.itertuples(index=False)}

    # ----- classifications ---------------------------------------------------------
    def write_classifications(self, project: str, facet: str, generation: int, days: list[str], df: pd.DataFrame) -> None:
        """Replace this generation's labels for these days (re-running a partition never duplicates)."""
        rows = _rows(df[CLASSIFICATION_COLUMNS], ["trace_id"]) if len(df) else df

        def body(c) -> None:
            self._exec(c, f"""DELETE FROM classifications WHERE project = ? AND facet = ? AND generation = ?
                             AND {_in('day::VARCHAR')}""", [project, facet, generation, days])
            if len(rows):
                self._stage(c, "cl", rows, "classifications")
                cols = ["trace_id", "project", "facet", "generation", "topic_id", "distance", "day", "classified_at"]
                self._exec(c, _upsert("classifications", cols, ["project", "trace_id", "facet", "generation"],
                                      "SELECT trace_id, ?::VARCHAR, ?::VARCHAR, ?::INTEGER, topic_id, distance, day::DATE, now() FROM cl"),
                           [project, facet, generation])

        self._write(body)

    # ----- per-topic figures (insight) -----------------------------------------------
    def topic_trace_rows(self, days: list[str], categorical_facets: list[str]) -> pd.DataFrame:
        """One row per (trace, facet) of these days: its label (the newest generation's; for enum and
        score facets the value itself) beside its outcome signals (NULL where it has none)."""
        outcome = ("o.status, o.abnormal_end, o.scores::VARCHAR AS scores, o.duration_s, o.input_tokens, "
                   "o.output_tokens, o.cost_usd")
        return self._df(
            f"""SELECT tt.project, tt.facet, tt.topic_id, tt.topic_name, tt.generation, t.day::VARCHAR AS day, {outcome}
                FROM trace_topics tt
                JOIN traces t ON t.project = tt.project AND t.trace_id = tt.trace_id
                LEFT JOIN trace_outcomes o ON o.project = tt.project AND o.trace_id = tt.trace_id
                WHERE {_in('t.day::VARCHAR')}
                UNION ALL
                SELECT f.project, f.facet, f.text, f.text, NULL, f.day::VARCHAR, {outcome}
                FROM facets f
                LEFT JOIN trace_outcomes o ON o.project = f.project AND o.trace_id = f.trace_id
                WHERE {_in('f.day::VARCHAR')} AND {_in('f.facet')} AND f.text IS NOT NULL""",
            [days, days, list(categorical_facets)])

    def replace_topic_stats(self, days: list[str], df: pd.DataFrame) -> None:
        """These days' figures, all of them (re-running a day replaces it)."""
        rows = _rows(df[TOPIC_STATS_COLUMNS], ["project", "facet", "topic_id", "day"]) if len(df) else df
        select = ", ".join("day::DATE" if c == "day" else "scores::JSON" if c == "scores" else c
                           for c in TOPIC_STATS_COLUMNS)

        def body(c) -> None:
            self._exec(c, f"DELETE FROM topic_stats WHERE {_in('day::VARCHAR')}", [days])
            if len(rows):
                self._stage(c, "ts", rows, "topic_stats")
                self._exec(c, f"""INSERT INTO topic_stats ({', '.join(TOPIC_STATS_COLUMNS)}, computed_at)
                                 SELECT {select}, now() FROM ts""")

        self._write(body)

    def load_topic_stats(self, project: str | None = None, facet: str | None = None,
                         since_day: str | None = None, until_day: str | None = None) -> pd.DataFrame:
        """topic_stats rows, `day` as YYYY-MM-DD and `scores` as JSON text, by day."""
        cols = ", ".join("day::VARCHAR AS day" if c == "day" else "scores::VARCHAR AS scores" if c == "scores" else c
                         for c in TOPIC_STATS_COLUMNS)
        return self._df(f"""SELECT {cols} FROM topic_stats
                            WHERE (?::VARCHAR IS NULL OR project = ?) AND (?::VARCHAR IS NULL OR facet = ?)
                              AND (?::VARCHAR IS NULL OR day >= ?::DATE) AND (?::VARCHAR IS NULL OR day <= ?::DATE)
                            ORDER BY day, project, facet, topic_id""",
                        [project, project, facet, facet, since_day, since_day, until_day, until_day])

    def topic_figures(self, project: str, facet: str) -> pd.DataFrame:
        """Per topic over every day in topic_stats: traces, failure and error rates, cost per trace."""
        return self._df("""SELECT topic_id, sum(traces) AS traces,
                                  sum(failures)::DOUBLE PRECISION / NULLIF(sum(traces), 0) AS failure_rate,
                                  sum(errors)::DOUBLE PRECISION / NULLIF(sum(traces), 0) AS error_rate,
                                  sum(cost_usd) / NULLIF(sum(traces), 0) AS cost_per_trace
                           FROM topic_stats WHERE project = ? AND facet = ? GROUP BY topic_id""", [project, facet])

    def topic_first_generations(self) -> pd.DataFrame:
        """Per (project, facet, topic_id) in topic_maps: the first generation it appears in, and the
        (project, facet)'s latest."""
        return self._df("""SELECT m.project, m.facet, m.topic_id, min(m.generation) AS first_generation,
                                  max(g.latest) AS latest_generation
                           FROM topic_maps m
                           JOIN (SELECT project, facet, max(generation) AS latest FROM topic_map_generations
                                 GROUP BY project, facet) g ON g.project = m.project AND g.facet = m.facet
                           GROUP BY m.project, m.facet, m.topic_id""")

    def topic_examples(self, project: str, facet: str, day: str, topic_ids: list[str], n: int = 2) -> dict[str, list[str]]:
        """Up to `n` distinct facet texts of each topic's traces that day (for enum / score facets: the value)."""
        if not topic_ids:
            return {}
        df = self._df(
            f"""SELECT topic_id, text FROM (
                    SELECT topic_id, text, row_number() OVER (PARTITION BY topic_id ORDER BY text_hash) AS r FROM (
                        SELECT DISTINCT tt.topic_id, f.text, f.text_hash
                        FROM trace_topics tt
                        JOIN facets f ON f.project = tt.project AND f.trace_id = tt.trace_id AND f.facet = tt.facet
                        WHERE tt.project = ? AND tt.facet = ? AND f.day = ?::DATE AND {_in('tt.topic_id')}
                          AND f.text IS NOT NULL) d) ranked
                WHERE r <= ? ORDER BY topic_id, r""",
            [project, facet, day, list(topic_ids), n])
        out: dict[str, list[str]] = {t: [] for t in topic_ids}
        for t, text in zip(df.topic_id, df.text):
            out[t].append(text)
        return out

    # ----- alerts --------------------------------------------------------------------
    def record_alerts(self, rows: list[dict]) -> int:
        """Keep alerts not seen before (an alert is its (project, facet, topic_id, day, kind));
        returns how many were new. `detail` is a JSON text."""
        key = ["project", "facet", "topic_id", "day", "kind"]
        df = _rows(pd.DataFrame(rows, columns=ALERT_COLUMNS), key) if rows else None
        if df is None or not len(df):
            return 0
        select = ", ".join("day::DATE" if c == "day" else "detail::JSON" if c == "detail" else c for c in ALERT_COLUMNS)

        def body(c) -> int:
            self._stage(c, "al", df, "topic_alerts")
            before = int(self._one(c, "SELECT count(*) FROM topic_alerts"))
            self._exec(c, f"""INSERT INTO topic_alerts ({', '.join(ALERT_COLUMNS)}, detected_at)
                             SELECT {select}, now() FROM al ON CONFLICT ({', '.join(key)}) DO NOTHING""")
            return int(self._one(c, "SELECT count(*) FROM topic_alerts")) - before

        return self._write(body)

    def load_alerts(self, project: str | None = None, facet: str | None = None,
                    since_day: str | None = None) -> pd.DataFrame:
        """Recorded alerts, oldest first; `detail` as JSON text, `day` as YYYY-MM-DD."""
        cols = ", ".join("day::VARCHAR AS day" if c == "day" else "detail::VARCHAR AS detail" if c == "detail" else c
                         for c in ALERT_COLUMNS)
        return self._df(f"""SELECT {cols}, detected_at FROM topic_alerts
                            WHERE (?::VARCHAR IS NULL OR project = ?) AND (?::VARCHAR IS NULL OR facet = ?)
                              AND (?::VARCHAR IS NULL OR day >= ?::DATE)
                            ORDER BY day, project, facet, kind, topic_id""",
                        [project, project, facet, facet, since_day, since_day])

    # ----- alert deliveries ----------------------------------------------------------
    # One row per (alert, sink). The sender passes its clock (`now`), so a claim's expiry and a
    # retry's time are judged by one clock whichever backend holds them.
    _ALERT_JOIN = " AND ".join(f"d.{k} = a.{k}" for k in ALERT_KEY)
    _ALERT_IS = " AND ".join(f"{k} = ?::DATE" if k == "day" else f"{k} = ?" for k in ALERT_KEY)

    def _alert_select(self) -> str:
        return ", ".join("a.day::VARCHAR AS day" if c == "day" else "a.detail::VARCHAR AS detail" if c == "detail"
                         else f"a.{c}" for c in ALERT_COLUMNS)

    def claim_alert_deliveries(self, sink: str, kinds: list[str], now: datetime, claim_s: float, limit: int,
                               since_day: str | None = None) -> tuple[str, pd.DataFrame]:
        """Claim for `sink` up to `limit` alerts of these kinds that are due: never tried, pending and
        past their retry time, or held by a claim that expired (its sender died mid-send). Returns the
        claim id and the claimed alerts, oldest first, with `attempts` so far. Two senders at once
        claim disjoint alerts (under a per-sink lock; DuckDB has one writer anyway)."""
        claim_id = uuid.uuid4().hex
        key = ", ".join(ALERT_KEY)
        due = f"""SELECT a.project, a.facet, a.topic_id, a.day, a.kind FROM topic_alerts a
                  LEFT JOIN alert_deliveries d ON d.sink = ? AND {self._ALERT_JOIN}
                  WHERE {_in('a.kind')} AND (?::VARCHAR IS NULL OR a.day >= ?::DATE)
                    AND (d.status IS NULL
                         OR (d.status = 'pending' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?::TIMESTAMPTZ))
                         OR (d.status = 'sending' AND d.claimed_until <= ?::TIMESTAMPTZ))
                  ORDER BY a.day, a.project, a.facet, a.kind, a.topic_id LIMIT ?"""
        params = [sink, claim_id, now + timedelta(seconds=claim_s), now,
                  sink, list(kinds), since_day, since_day, now, now, int(limit)]

        def body(c) -> None:
            self._lock(c, f"alert_deliveries:{sink}")
            self._exec(c, f"""INSERT INTO alert_deliveries ({key}, sink, status, attempts, claim_id, claimed_until,
                                                            updated_at)
                              SELECT {key}, ?, 'sending', 0, ?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ FROM ({due}) due
                              ON CONFLICT ({key}, sink) DO UPDATE SET status = 'sending', claim_id = excluded.claim_id,
                                  claimed_until = excluded.claimed_until, updated_at = excluded.updated_at""", params)

        self._write(body)
        return claim_id, self._df(f"""SELECT {self._alert_select()}, d.attempts FROM topic_alerts a
                                      JOIN alert_deliveries d ON {self._ALERT_JOIN}
                                      WHERE d.sink = ? AND d.claim_id = ?
                                      ORDER BY a.day, a.project, a.facet, a.kind, a.topic_id""", [sink, claim_id])

    def finish_alert_delivery(self, sink: str, alert: dict, claim_id: str, now: datetime, error: str | None = None,
                              retry_at: datetime | None = None) -> None:
        """Record one send of a claimed alert: sent (no `error`; marked whoever holds the claim now, as
        the sink has it), else pending until `retry_at`, or failed for good when there is none."""
        key = [str(alert[k]) for k in ALERT_KEY]

        def body(c) -> None:
            if error is None:
                self._exec(c, f"""UPDATE alert_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?,
                                      claim_id = NULL, claimed_until = NULL, next_attempt_at = NULL, updated_at = ?
                                  WHERE sink = ? AND {self._ALERT_IS}""", [now, now, sink, *key])
            else:
                self._exec(c, f"""UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, last_error = ?,
                                      next_attempt_at = ?::TIMESTAMPTZ, claim_id = NULL, claimed_until = NULL,
                                      updated_at = ?
                                  WHERE sink = ? AND {self._ALERT_IS} AND claim_id = ? AND status = 'sending'""",
                           ["pending" if retry_at else "failed", error, retry_at, now, sink, *key, claim_id])

        self._write(body)

    def release_alert_claims(self, sink: str, claim_id: str) -> None:
        """Give back what a claim holds and was not sent (due again at once, no attempt counted)."""
        self._write(lambda c: self._exec(c, """UPDATE alert_deliveries SET status = 'pending', claim_id = NULL,
                                                   claimed_until = NULL WHERE sink = ? AND claim_id = ?
                                                   AND status = 'sending'""", [sink, claim_id]))

    def load_alert_deliveries(self, sink: str | None = None) -> pd.DataFrame:
        """Every delivery row (`day` as YYYY-MM-DD), oldest alert first."""
        return self._df(f"""SELECT {', '.join('day::VARCHAR AS day' if k == 'day' else k for k in ALERT_KEY)}, sink,
                                   status, attempts, last_error, claimed_until, next_attempt_at, sent_at, updated_at
                            FROM alert_deliveries WHERE (?::VARCHAR IS NULL OR sink = ?)
                            ORDER BY day, project, facet, kind, topic_id, sink""", [sink, sink])

    def undelivered_alerts(self, sink: str, kinds: list[str] | None = None,
                           since_day: str | None = None) -> pd.DataFrame:
        """Recorded alerts `sink` has not accepted yet (never tried, pending, in flight or failed), with
        their delivery status (`status` none: never tried), oldest first."""
        return self._df(f"""SELECT {self._alert_select()}, d.status, COALESCE(d.attempts, 0) AS attempts, d.last_error,
                                   d.next_attempt_at
                            FROM topic_alerts a LEFT JOIN alert_deliveries d ON d.sink = ? AND {self._ALERT_JOIN}
                            WHERE (d.status IS NULL OR d.status <> 'sent')
                              AND (?::VARCHAR[] IS NULL OR {_in('a.kind')})
                              AND (?::VARCHAR IS NULL OR a.day >= ?::DATE)
                            ORDER BY a.day, a.project, a.facet, a.kind, a.topic_id""",
                        [sink, kinds, kinds, since_day, since_day])
    # ----- the explorer (reads only, on short read-only connections beside the daemon) -----------
    def _read(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self._df(sql, params, read_only=True)

    def map_generations(self) -> pd.DataFrame:
        """Every map generation, newest first per (project, facet), with how many points it has."""
        return self._read("""SELECT g.project, g.facet, g.generation, g.created_at::VARCHAR AS created_at, g.n_topics,
                                    g.n_sampled, g.noise_share, g.naming_engine, g.embedding_model,
                                    (SELECT count(*) FROM topic_map_points p WHERE p.project = g.project
                                       AND p.facet = g.facet AND p.generation = g.generation) AS n_points
                             FROM topic_map_generations g ORDER BY g.project, g.facet, g.generation DESC""")

    def map_generation_numbers(self, project: str, facet: str) -> list[int]:
        """A (project, facet)'s generations, newest first (what map_generations says of it, without the counts)."""
        df = self._read("""SELECT generation FROM topic_map_generations WHERE project = ? AND facet = ?
                           ORDER BY generation DESC""", [project, facet])
        return [int(g) for g in df.generation]

    def map_points(self, project: str, facet: str, generation: int, start: str | None = None,
                   end: str | None = None, text: bool = True) -> pd.DataFrame:
        """A generation's 2-D points with what the overlays colour by: the trace's day and whether it failed
        (and each point's facet text unless text=False), in trace_id order."""
        return self._read(f"""SELECT p.trace_id, p.x, p.y, p.topic_id, {'p.text,' if text else ''} t.day::VARCHAR AS day,
                                    coalesce(o.status = 'error' OR o.abnormal_end, FALSE) AS failed
                             FROM topic_map_points p
                             LEFT JOIN facets t ON t.project = p.project AND t.trace_id = p.trace_id AND t.facet = p.facet
                             LEFT JOIN trace_outcomes o ON o.project = p.project AND o.trace_id = p.trace_id
                             WHERE p.project = ? AND p.facet = ? AND p.generation = ?
                               AND (?::VARCHAR IS NULL OR t.day >= ?::DATE) AND (?::VARCHAR IS NULL OR t.day <= ?::DATE)
                             ORDER BY p.trace_id""", [project, facet, generation, start, start, end, end])

    def topic_daily(self, project: str, facet: str, generation: int, start: str | None = None,
                    end: str | None = None) -> pd.DataFrame:
        """Traces a generation labelled, per topic (no_match too) and day, and how many of them failed."""
        return self._read("""SELECT c.topic_id, c.day::VARCHAR AS day, count(*) AS n,
                                    count(*) FILTER (WHERE o.status = 'error' OR o.abnormal_end) AS failed
                             FROM classifications c
                             LEFT JOIN trace_outcomes o ON o.project = c.project AND o.trace_id = c.trace_id
                             WHERE c.project = ? AND c.facet = ? AND c.generation = ?
                               AND (?::VARCHAR IS NULL OR c.day >= ?::DATE) AND (?::VARCHAR IS NULL OR c.day <= ?::DATE)
                             GROUP BY 1, 2 ORDER BY 1, 2""", [project, facet, generation, start, start, end, end])

    def topic_alert_kinds(self, project: str, facet: str, day: str) -> pd.DataFrame:
        """The trend alerts (topic_id, kind) recorded for one day of a (project, facet): the explorer's flags."""
        return self._read("""SELECT DISTINCT topic_id, kind FROM topic_alerts
                             WHERE project = ? AND facet = ? AND day = ?::DATE ORDER BY topic_id, kind""",
                          [project, facet, day])

    def topic_traces(self, project: str, facet: str, generation: int, topic_id: str, limit: int = 200,
                     start: str | None = None, end: str | None = None) -> pd.DataFrame:
        """The traces a generation gave this topic, closest to its centroid first, with their facet text and outcome."""
        return self._read("""SELECT c.trace_id, c.day::VARCHAR AS day, c.distance, f.text, o.status, o.abnormal_end,
                                    o.termination_reason
                             FROM classifications c
                             LEFT JOIN facets f ON f.project = c.project AND f.trace_id = c.trace_id AND f.facet = c.facet
                             LEFT JOIN trace_outcomes o ON o.project = c.project AND o.trace_id = c.trace_id
                             WHERE c.project = ? AND c.facet = ? AND c.generation = ? AND c.topic_id = ?
                               AND (?::VARCHAR IS NULL OR c.day >= ?::DATE) AND (?::VARCHAR IS NULL OR c.day <= ?::DATE)
                             ORDER BY c.distance, c.trace_id LIMIT ?""",
                          [project, facet, generation, topic_id, start, start, end, end, int(limit)])

    def trace_detail(self, project: str, trace_id: str) -> dict[str, pd.DataFrame]:
        """One trace as the explorer shows it: the preprocessed text, every facet, its outcome, its labels."""
        parts = self.trace_details(project, [trace_id])
        return {k: df.drop(columns="trace_id") if k != "trace" else df for k, df in parts.items()}

    def trace_details(self, project: str, trace_ids: list[str]) -> dict[str, pd.DataFrame]:
        """trace_detail for many traces of a project on one connection (the report's trace pages); every
        frame but `trace` has a trace_id column to split it by."""
        key = [project, list(trace_ids)]
        where = f"project = ? AND {_in('trace_id')}"
        with self.conn(read_only=True) as c:
            return {
                "trace": self._fetch_df(c, f"""SELECT trace_id, project, day::VARCHAR AS day, started_at::VARCHAR AS started_at,
                                                     format, version, content, n_spans, n_messages, tokens_before,
                                                     tokens_after, truncated, status, error
                                              FROM traces WHERE {where} ORDER BY trace_id""", key),
                "facets": self._fetch_df(c, f"""SELECT facet, text, engine, model, trace_id FROM facets
                                               WHERE {where} ORDER BY trace_id, facet""", key),
                "outcome": self._fetch_df(c, f"""SELECT status, n_errors, error_kinds, errors::VARCHAR AS errors, failed_tools,
                                                       termination_reason, abnormal_end, scores::VARCHAR AS scores,
                                                       duration_s, llm_calls, input_tokens, output_tokens, cost_usd,
                                                       cost_source, models, tools, agents, trace_id
                                                FROM trace_outcomes WHERE {where} ORDER BY trace_id""", key),
                "labels": self._fetch_df(c, f"""SELECT facet, topic_id, topic_name, distance, generation, trace_id FROM trace_topics
                                               WHERE {where} ORDER BY trace_id, facet""", key),
            }
