"""The SQL contract: one DDL text for both backends, its version, and the steps that migrate a store forward.

The types are the ones DuckDB and PostgreSQL both know (REAL[] is DuckDB's FLOAT[], TEXT[] its
VARCHAR[]), so a store's tables read the same on either. The DDL is idempotent: opening a store made
by an older release runs it, then the migration steps after its version, and keeps its rows.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 12

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
-- Where each alert went: one row per (alert, sink), so a restart never sends one twice. A sender
-- claims a row (status sending, until claimed_until) before it sends, marks it sent right after the
-- sink accepted, or pending again (next_attempt_at, backing off) or failed (attempts spent).
CREATE TABLE IF NOT EXISTS alert_deliveries (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    topic_id VARCHAR NOT NULL,
    day DATE NOT NULL,
    kind VARCHAR NOT NULL,
    sink VARCHAR NOT NULL,       -- slack | webhook
    status VARCHAR NOT NULL,     -- sending | sent | pending (to be tried again) | failed (attempts spent)
    attempts INTEGER NOT NULL,   -- sends tried
    last_error VARCHAR,
    claim_id VARCHAR,            -- the sender holding it while sending
    claimed_until TIMESTAMPTZ,   -- a claim past this is taken over (its sender died mid-send)
    next_attempt_at TIMESTAMPTZ,
    sent_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    PRIMARY KEY (project, facet, topic_id, day, kind, sink)
);
-- Per (project, facet, topic, day): traces and their outcomes (the topic_stats asset). Enum and score
-- facets have one row per value (topic_id = the value). share: of the (project, facet)'s traces that day.
CREATE TABLE IF NOT EXISTS topic_stats (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    topic_id VARCHAR NOT NULL,   -- a topic, 'no_match', or an enum / score facet's value
    day DATE NOT NULL,
    generation INTEGER,          -- the map generation of the labels (NULL for enum / score facets)
    topic_name VARCHAR,
    traces INTEGER,
    day_traces INTEGER,          -- all traces of the (project, facet) that day
    share DOUBLE PRECISION,
    errors INTEGER,              -- trace_outcomes.status = 'error'
    error_rate DOUBLE PRECISION,
    failures INTEGER,            -- an abnormal end, or a score below its pass mark
    failure_rate DOUBLE PRECISION,
    scored INTEGER,              -- traces with at least one score
    scores JSON,                 -- {score name: mean}
    duration_p50 DOUBLE PRECISION,
    duration_p95 DOUBLE PRECISION,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    computed_at TIMESTAMPTZ,
    PRIMARY KEY (project, facet, topic_id, day)
);
-- Work a process is doing now (facets of a trace, a map generation), so a concurrent run skips it
-- instead of paying for it twice; a claim lapses at expires_at unless its owner renews it.
CREATE TABLE IF NOT EXISTS work_claims (
    kind VARCHAR NOT NULL,       -- facet (item: a trace id) | topic_map (item: a facet)
    project VARCHAR NOT NULL,
    item VARCHAR NOT NULL,
    owner VARCHAR NOT NULL,      -- host:pid:nonce of the claiming run
    claimed_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, project, item)
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
-- Parents over each generation's topics: one row per (generation, topic) naming its parent. Parent ids
-- are kept across generations like topic ids (a parent continues the one that shared most children).
CREATE TABLE IF NOT EXISTS topic_hierarchy (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    generation INTEGER NOT NULL,
    topic_id VARCHAR NOT NULL,   -- an active topic of the generation
    parent_id VARCHAR NOT NULL,  -- e.g. task-p001
    parent_name VARCHAR,
    parent_description VARCHAR,
    parent_keywords TEXT[],
    PRIMARY KEY (project, facet, generation, topic_id)
);
-- What a person decided about topics, re-applied to every later generation through the id matching:
-- rename pins a topic's name (naming leaves it alone), merge labels topic_id's members as `value`.
CREATE TABLE IF NOT EXISTS topic_curation (
    project VARCHAR NOT NULL,
    facet VARCHAR NOT NULL,
    topic_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,     -- rename | merge
    value VARCHAR NOT NULL,      -- the pinned name, or the topic id it is merged into
    generation INTEGER,          -- the generation it was made on
    created_at TIMESTAMPTZ,
    PRIMARY KEY (project, facet, topic_id, action)
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

# Version 7: per-topic figures (table topic_stats, made by the DDL) and two views over it.
INSIGHT_VIEW_DDL = """
-- topic_stats with the per-trace figures a chart wants.
CREATE OR REPLACE VIEW topic_daily AS
SELECT project, facet, day, topic_id, topic_name, generation, traces, day_traces, share, errors, error_rate,
       failures, failure_rate, scores, duration_p50, duration_p95, input_tokens, output_tokens,
       cost_usd, cost_usd / NULLIF(traces, 0) AS cost_per_trace,
       (coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) / NULLIF(traces, 0) AS tokens_per_trace
FROM topic_stats;

-- Per topic: the last 7 days (ending at the newest day of its (project, facet)) against the 28 before.
CREATE OR REPLACE VIEW topic_summary AS
WITH last AS (
    SELECT project, facet, max(day) AS last_day FROM topic_stats GROUP BY project, facet
), windowed AS (
    SELECT s.*, CASE WHEN s.day > l.last_day - 7 THEN 'recent' ELSE 'prior' END AS period, l.last_day
    FROM topic_stats s JOIN last l ON l.project = s.project AND l.facet = s.facet
    WHERE s.day > l.last_day - 35
), totals AS (
    SELECT project, facet, sum(traces) FILTER (WHERE period = 'recent') AS recent_total,
           sum(traces) FILTER (WHERE period = 'prior') AS prior_total
    FROM windowed GROUP BY project, facet
), topics AS (
    SELECT project, facet, topic_id, max(topic_name) AS topic_name, max(last_day) AS last_day,
           coalesce(sum(traces) FILTER (WHERE period = 'recent'), 0) AS traces_7d,
           coalesce(sum(traces) FILTER (WHERE period = 'prior'), 0) AS traces_prior_28d,
           coalesce(sum(failures) FILTER (WHERE period = 'recent'), 0) AS failures_7d,
           coalesce(sum(errors) FILTER (WHERE period = 'recent'), 0) AS errors_7d,
           sum(cost_usd) FILTER (WHERE period = 'recent') AS cost_7d
    FROM windowed GROUP BY project, facet, topic_id
), rates AS (
    SELECT t.*, t.traces_7d::DOUBLE PRECISION / NULLIF(tot.recent_total, 0) AS share_7d,
           t.traces_prior_28d::DOUBLE PRECISION / NULLIF(tot.prior_total, 0) AS share_prior_28d,
           t.failures_7d::DOUBLE PRECISION / NULLIF(t.traces_7d, 0) AS failure_rate_7d,
           t.errors_7d::DOUBLE PRECISION / NULLIF(t.traces_7d, 0) AS error_rate_7d,
           t.cost_7d / NULLIF(t.traces_7d, 0) AS cost_per_trace_7d,
           NULLIF(t.traces_7d, 0)::DOUBLE PRECISION AS n
    FROM topics t JOIN totals tot ON tot.project = t.project AND tot.facet = t.facet
)
-- Wilson score interval (95%) of the failure rate: sound for small counts and rates near 0 or 1.
SELECT project, facet, topic_id, topic_name, last_day, traces_7d, traces_prior_28d, share_7d, share_prior_28d,
       share_7d - share_prior_28d AS share_change, failures_7d, failure_rate_7d,
       (failure_rate_7d + 1.9208 / n - 1.96 * sqrt(failure_rate_7d * (1 - failure_rate_7d) / n + 0.9604 / (n * n)))
        / (1 + 3.8416 / n) AS failure_rate_low,
       (failure_rate_7d + 1.9208 / n + 1.96 * sqrt(failure_rate_7d * (1 - failure_rate_7d) / n + 0.9604 / (n * n)))
        / (1 + 3.8416 / n) AS failure_rate_high,
       error_rate_7d, cost_7d, cost_per_trace_7d
FROM rates;
"""

VIEW_DDL += INSIGHT_VIEW_DDL
DDL = TABLES_DDL + VIEW_DDL

TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", TABLES_DDL))
VIEWS = ("trace_topics",)
# The tables of the first release, and those each later version added. A store at version v must hold
# every one of them up to v; at SCHEMA_VERSION, every table above (so a table added by a new migration
# needs no entry here to be required once a store has it).
V1_TABLES = ("raw_traces", "quarantine", "traces", "facets", "facet_failures", "facet_embeddings",
             "topic_map_generations", "topic_maps", "classifications")
TABLES_ADDED = {2: ("schema_version",), 4: ("trace_outcomes",), 6: ("topic_alerts",), 7: ("alert_deliveries",),
                8: ("topic_stats",), 9: ("work_claims",), 10: ("topic_map_points",),
                11: ("topic_hierarchy",), 12: ("topic_curation",)}


def tables_required(version: int) -> tuple[str, ...]:
    """The tables a store at schema `version` cannot lack (a missing one was dropped or lost)."""
    if version >= SCHEMA_VERSION:
        return TABLES
    return V1_TABLES + tuple(t for v, added in sorted(TABLES_ADDED.items()) if v <= version for t in added)


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
# version 6 adds topic_alerts (made by the DDL); version 7 adds alert_deliveries;
# version 8 adds topic_stats and the views topic_daily and topic_summary (all made by the DDL).
# version 9 adds work_claims, the leases that keep concurrent runs from doing the same work (made by the DDL).
# version 10 adds topic_map_points (made by the DDL; generations written before it have no points until
# they are regenerated).
# version 11 adds topic_hierarchy (made by the DDL; older generations have no parents until regenerated).
# version 12 adds topic_curation, the renames and merges a person made (made by the DDL).
MIGRATIONS: dict[int, list[str]] = {
    2: [],
    3: rebuild("raw_traces", "traces", "facets", "facet_failures", "classifications"),
    4: [],
    5: [],
    6: [],
    7: [],
    8: [],  # topic_stats and the views topic_daily, topic_summary (all made by the DDL)
    9: [],
    10: [],
    11: [],
    12: [],
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
HIERARCHY_COLUMNS = ["project", "facet", "generation", "topic_id", "parent_id", "parent_name", "parent_description",
                     "parent_keywords"]
POINT_COLUMNS = ["project", "facet", "generation", "trace_id", "x", "y", "topic_id", "text"]
ALERT_COLUMNS = [
    "project", "facet", "topic_id", "day", "kind", "generation", "topic_name", "count", "expected", "share",
    "baseline_share", "p_value", "q_value", "detail",
]
ALERT_KEY = ["project", "facet", "topic_id", "day", "kind"]
TOPIC_STATS_COLUMNS = [
    "project", "facet", "topic_id", "day", "generation", "topic_name", "traces", "day_traces", "share", "errors",
    "error_rate", "failures", "failure_rate", "scored", "scores", "duration_p50", "duration_p95", "input_tokens",
    "output_tokens", "cost_usd",
]
OUTCOME_COLUMNS = [
    "project", "trace_id", "day", "status", "n_errors", "error_kinds", "errors", "failed_tools", "termination_reason",
    "abnormal_end", "scores", "duration_s", "llm_calls", "input_tokens", "output_tokens", "cost_usd", "cost_source",
    "models", "tools", "agents",
]
