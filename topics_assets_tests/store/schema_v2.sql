-- The schema of version 2 (copied verbatim from topics_assets/store/schema.py before trace ids were scoped by
-- project), and its version row.
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
    PRIMARY KEY (project, facet, generation, topic_id)
);
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
INSERT INTO schema_version VALUES (2, now());
