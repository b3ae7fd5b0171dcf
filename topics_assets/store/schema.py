"""The SQL contract: one DDL text for both backends, its version, and the steps that migrate a store forward.

The types are the ones DuckDB and PostgreSQL both know (REAL[] is DuckDB's FLOAT[], TEXT[] its
VARCHAR[]), so a store's tables read the same on either. The DDL is idempotent: opening a store made
by an older release runs it, then the migration steps after its version, and keeps its rows.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 8

TABLES_DDL = """
CREATE TABLE IF NOT EXISTS raw_traces (
    trace_id VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    day DATE NOT NULL,
    started_at TIMESTAMPTZ,
    format VARCHAR,
    source VARCHAR,
    payload VARCHAR,
    payload_hash VARCHAR,
    version INTEGER,
    ingested_at TIMESTAMPTZ,
    PRIMARY KEY (project, trace_id)
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
    trace_id VARCHAR NOT NULL,
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
    preprocess_hash VARCHAR, -- the preprocessing settings it was made with
    PRIMARY KEY (project, trace_id)
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
    PRIMARY KEY (project, trace_id, facet)
);
CREATE TABLE IF NOT EXISTS facet_failures (
    trace_id VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    day DATE,
    reason VARCHAR,
    detail VARCHAR,
    failed_at TIMESTAMPTZ,
    PRIMARY KEY (project, trace_id)
);
CREATE TABLE IF NOT EXISTS facet_embeddings (
    model VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    text VARCHAR,
    vector REAL[],
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
    noise_share DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
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
    keywords TEXT[],
    size INTEGER,
    centroid REAL[],
    examples TEXT[],
    status VARCHAR,          -- active | retired (a predecessor's topic with no match)
    threshold DOUBLE PRECISION,  -- this topic's no_match distance (NULL: the generation's threshold)
    PRIMARY KEY (project, facet, generation, topic_id)
);
ALTER TABLE topic_maps ADD COLUMN IF NOT EXISTS threshold DOUBLE PRECISION;
CREATE TABLE IF NOT EXISTS classifications (
    trace_id VARCHAR NOT NULL,
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    topic_id VARCHAR NOT NULL,   -- 'no_match' beyond the map's distance threshold
    distance DOUBLE PRECISION,
    day DATE,
    classified_at TIMESTAMPTZ,
    PRIMARY KEY (project, trace_id, facet, generation)
);
-- Outcome signals per trace, read from its structure at preprocess (never by an LLM); join it with
-- trace_topics on (project, trace_id).
CREATE TABLE IF NOT EXISTS trace_outcomes (
    project VARCHAR NOT NULL,
    trace_id VARCHAR NOT NULL,
    day DATE NOT NULL,
    status VARCHAR,              -- ok | error (an error signal or an abnormal end)
    n_errors INTEGER,
    error_kinds TEXT[],          -- timeout | http_error | exit_code | exception | error
    errors JSON,                 -- [{source, name, kind, message, agent, count}]
    failed_tools TEXT[],
    termination_reason VARCHAR,
    abnormal_end BOOLEAN,
    scores JSON,                 -- {scorer or feedback name: value}; never shown to a facet model
    duration_s DOUBLE PRECISION,
    llm_calls INTEGER,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    cost_source VARCHAR,         -- trace (its usage fields) | price_map (litellm's, offline)
    models TEXT[],
    tools TEXT[],
    agents TEXT[],
    extracted_at TIMESTAMPTZ,
    PRIMARY KEY (project, trace_id)
);
-- What the trend detector found: one row per (project, facet, topic, day, kind), written once (a
-- rerun that finds the same alert keeps the first row), read by the alert sensor to send each once.
CREATE TABLE IF NOT EXISTS topic_alerts (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    topic_id VARCHAR NOT NULL,
    day DATE NOT NULL,
    kind VARCHAR NOT NULL,       -- rising | falling | new | gone | failing
    generation INTEGER,
    topic_name VARCHAR,
    count INTEGER,               -- the topic's traces that day
    expected DOUBLE PRECISION,   -- what the trailing baseline predicted
    share DOUBLE PRECISION,
    baseline_share DOUBLE PRECISION,
    p_value DOUBLE PRECISION,
    q_value DOUBLE PRECISION,    -- Benjamini-Hochberg across the topics tested that day
    detail JSON,                 -- examples and anything else a sink shows
    detected_at TIMESTAMPTZ,
    PRIMARY KEY (project, facet, topic_id, day, kind)
);
-- A 2-D layout of each generation's sample, computed once when the generation is written, so the
-- explorer draws its map without fitting anything: one row per sampled (trace, facet).
CREATE TABLE IF NOT EXISTS topic_map_points (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    trace_id VARCHAR NOT NULL,
    x REAL,
    y REAL,
    topic_id VARCHAR,            -- the topic its generation gives it, or 'no_match'
    text VARCHAR,                -- the facet text that was embedded
    PRIMARY KEY (project, facet, generation, trace_id)
);
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,    -- one row per migration applied; the store's version is the max
    migrated_at TIMESTAMPTZ
);
"""

VIEW_DDL = """
-- Each trace's label from the newest generation that has classified it.
CREATE OR REPLACE VIEW trace_topics AS
SELECT trace_id, project, facet, topic_id, topic_name, distance, generation FROM (
    SELECT c.trace_id, c.project, c.facet, c.topic_id,
           CASE WHEN c.topic_id = 'no_match' THEN 'no_match' ELSE t.name END AS topic_name,
           c.distance, c.generation,
           row_number() OVER (PARTITION BY c.project, c.trace_id, c.facet ORDER BY c.generation DESC) AS newest
    FROM classifications c
    LEFT JOIN topic_maps t
      ON t.project = c.project AND t.facet = c.facet AND t.generation = c.generation AND t.topic_id = c.topic_id
) ranked
WHERE newest = 1;
"""

DDL = TABLES_DDL + VIEW_DDL


def _table_ddl(table: str) -> str:
    """The CREATE TABLE statement of `table` in TABLES_DDL, without IF NOT EXISTS and its semicolon."""
    m = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", TABLES_DDL, re.S)
    assert m, table
    return f"CREATE TABLE {table} ({m.group(1)}\n)"


def _columns(table: str) -> list[str]:
    body = _table_ddl(table).split("(", 1)[1]
    lines = (line.split("--")[0].strip() for line in body.splitlines())
    return [line.split()[0] for line in lines if line and not line.startswith(("PRIMARY", ")"))]


def rebuild(*tables: str) -> list[str]:
    """Statements that remake `tables` as TABLES_DDL defines them now, keeping every row.

    Neither backend can change a primary key in place (DuckDB cannot ALTER one at all), so each
    table's rows are set aside, the table is made again and refilled; the view over them is dropped
    first and made again. (Set aside rather than renamed: PostgreSQL keeps an index's name across a
    table rename, and the new key's index would collide with it.) Columns an older release lacked
    are added by the DDL's ALTERs, which run before any migration."""
    out = ["DROP VIEW IF EXISTS trace_topics"]
    for t in tables:
        cols = ", ".join(_columns(t))
        out += [f"CREATE TABLE {t}__old AS SELECT * FROM {t}",
                f"DROP TABLE {t}",
                _table_ddl(t),
                f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {t}__old",
                f"DROP TABLE {t}__old"]
    return out + [VIEW_DDL]


# Statements that take a store from version v-1 to v, run after the (idempotent) DDL above, in the
# same transaction. Version 1 is the schema released before versions were recorded (no
# schema_version table); version 2 adds that table and a trace_topics view without DuckDB's QUALIFY,
# both made by the DDL; version 3 scopes trace ids by project: every per-trace table is keyed by
# (project, trace_id, ...), so the same id in two projects is two traces; version 4 adds
# trace_outcomes (made by the DDL; traces are preprocessed again, which fills it); version 5 adds
# topic_maps.threshold, one no_match threshold per topic (the DDL's ALTER; NULL falls back to the generation's);
# version 6 adds topic_alerts (made by the DDL); version 8 adds topic_map_points (made by the DDL;
# generations written before it have no points until they are regenerated).
MIGRATIONS: dict[int, list[str]] = {
    2: [],
    3: rebuild("raw_traces", "traces", "facets", "facet_failures", "classifications"),
    4: [],
    5: [],
    6: [],
    8: [],
}

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
    "examples", "status", "threshold",
]
RAW_COLUMNS = ["trace_id", "project", "day", "started_at", "format", "source", "payload", "payload_hash"]
FAILURE_COLUMNS = ["trace_id", "project", "day", "reason", "detail"]
QUARANTINE_COLUMNS = ["source", "line", "trace_id", "reason", "snippet"]
CLASSIFICATION_COLUMNS = ["trace_id", "topic_id", "distance", "day"]
POINT_COLUMNS = ["project", "facet", "generation", "trace_id", "x", "y", "topic_id", "text"]
ALERT_COLUMNS = [
    "project", "facet", "topic_id", "day", "kind", "generation", "topic_name", "count", "expected", "share",
    "baseline_share", "p_value", "q_value", "detail",
]
OUTCOME_COLUMNS = [
    "project", "trace_id", "day", "status", "n_errors", "error_kinds", "errors", "failed_tools", "termination_reason",
    "abnormal_end", "scores", "duration_s", "llm_calls", "input_tokens", "output_tokens", "cost_usd", "cost_source",
    "models", "tools", "agents",
]
