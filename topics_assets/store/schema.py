"""The SQL contract: one DDL text for both backends, its version, and the steps that migrate a store forward.

The types are the ones DuckDB and PostgreSQL both know (REAL[] is DuckDB's FLOAT[], TEXT[] its
VARCHAR[]), so a store's tables read the same on either. Every statement is idempotent: opening a
store made by an older release runs the DDL, then the steps after its version, and keeps its rows.
"""

from __future__ import annotations

SCHEMA_VERSION = 3

DDL = """
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
    PRIMARY KEY (trace_id, facet, generation)
);
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,    -- one row per migration applied; the store's version is the max
    migrated_at TIMESTAMPTZ
);
-- Each trace's label from the newest generation that has classified it.
CREATE OR REPLACE VIEW trace_topics AS
SELECT trace_id, project, facet, topic_id, topic_name, distance, generation FROM (
    SELECT c.trace_id, c.project, c.facet, c.topic_id,
           CASE WHEN c.topic_id = 'no_match' THEN 'no_match' ELSE t.name END AS topic_name,
           c.distance, c.generation,
           row_number() OVER (PARTITION BY c.trace_id, c.facet ORDER BY c.generation DESC) AS newest
    FROM classifications c
    LEFT JOIN topic_maps t
      ON t.project = c.project AND t.facet = c.facet AND t.generation = c.generation AND t.topic_id = c.topic_id
) ranked
WHERE newest = 1;
"""

# Statements that take a store from version v-1 to v, run after the (idempotent) DDL above.
# Version 1 is the schema released before versions were recorded (no schema_version table);
# version 2 adds that table and a trace_topics view without DuckDB's QUALIFY, both made by the DDL.
# Version 3 adds topic_maps.threshold (per-topic no_match distance), made by the DDL's ALTER.
MIGRATIONS: dict[int, list[str]] = {2: [], 3: []}

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
