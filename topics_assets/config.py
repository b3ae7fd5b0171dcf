"""Settings: defaults < topics.yaml < environment variables.

Everything has an offline default, so a fresh install runs with no file and no key. The models
are pydantic so that a bad value is caught on load with the key and the file it came from, and
so that the Dagster layer can show the same fields in the launchpad (defs/resources.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


# Bumped when the preprocessor's output changes (2: the outcome-signals header; 3: redaction rules as data,
# decoded JSON strings, redaction before any cut), so every trace is
# preprocessed again, and faceted again only where its text changed.
PREPROCESS_VERSION = 3


class ConfigError(ValueError):
    pass


class _Settings(BaseModel):
    # Mutable, as tests and callers assign fields; every assignment is validated too.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


FACET_FIELDS = ("name", "prompt", "kind", "categories")


class FacetSpec(_Settings):
    """One dimension a trace is summarised along."""

    name: str
    prompt: str = Field(description="The question the model answers about each trace.")
    kind: str = Field(default="text", description="text | enum | score")
    categories: list[str] = Field(default_factory=list, description="The allowed answers of a kind: enum facet.")

    def __init__(self, *args: Any, **data: Any) -> None:
        """Also positional (name, prompt, kind, categories), as the dataclass allowed."""
        if len(args) > len(FACET_FIELDS):
            raise TypeError(f"FacetSpec takes at most {len(FACET_FIELDS)} positional arguments")
        data.update(zip(FACET_FIELDS, args))
        super().__init__(**data)

    def validate(self) -> None:  # noqa: D102 - the rules beyond types, each naming the facet
        if not self.name.isidentifier():
            raise ConfigError(f"facet name {self.name!r} must be an identifier (letters, digits, _)")
        if self.kind not in ("text", "enum", "score"):
            raise ConfigError(f"facet {self.name!r}: kind must be text, enum or score, not {self.kind!r}")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ConfigError(f"facet {self.name!r}: needs a prompt (the question the model answers)")
        if not isinstance(self.categories, list) or not all(isinstance(c, str) and c.strip() for c in self.categories):
            raise ConfigError(f"facet {self.name!r}: categories must be a list of non-empty strings")
        if self.kind == "enum" and len(self.categories) < 2:
            raise ConfigError(f"facet {self.name!r}: an enum facet needs at least two categories")
        if self.kind == "enum" and len({c.lower() for c in self.categories}) != len(self.categories):
            raise ConfigError(f"facet {self.name!r}: categories must be unique")
        if self.kind != "enum" and self.categories:
            raise ConfigError(f"facet {self.name!r}: categories only apply to kind: enum (this one is {self.kind})")


BUILTIN_FACETS = [
    FacetSpec(
        "task",
        "What is the user asking the agent to do? One or two sentences naming the kind of request "
        "and its subject, without names, identifiers or other private details.",
    ),
    FacetSpec(
        "sentiment",
        "How does the user feel over the conversation, and why? One sentence naming the sentiment "
        "(for example satisfied, neutral, confused, frustrated, angry) and its cause.",
    ),
    FacetSpec(
        "issues",
        "What went wrong in this trace, if anything: failed tool calls, errors, refusals, loops, "
        "unresolved requests, policy problems? One or two sentences; 'No issues.' if none.",
    ),
]


class LLMSettings(_Settings):
    model: str | None = Field(default=None, description="Any litellm model name; none = offline extractive facets.")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="Name of the env var holding the key (never the key).")
    max_in_flight: int = 8
    timeout_s: float = Field(default=60.0, description="Seconds the SDK waits for each read of an answer.")
    deadline_s: float | None = Field(default=None, gt=0, description="Seconds one request may take in all, however "
                                     "slowly its answer trickles in; None = timeout_s.")
    max_retries: int = 5
    temperature: float = 0.0
    max_output_tokens: int = 800
    backoff_base_s: float = Field(default=0.5, description="First retry waits up to this (full jitter, doubling); "
                                                           "Retry-After wins.")
    circuit_breaker: int = Field(default=10, description="Calls in a row failing for endpoint reasons that stop a "
                                                         "run's other calls; 0 = never.")
    max_retry_after_s: float = Field(default=60.0, ge=0, description="A Retry-After up to this is waited out; a "
                                     "longer one fails the call at once as rate_limited (a quota, not a blip).")


class EmbeddingSettings(_Settings):
    model: str = Field(default="local", description="'local' (offline all-MiniLM-L6-v2), 'voyage/<model>' or any "
                                                    "litellm embedding model name.")
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = Field(default=64, description="Texts per API request for remote models; the local model "
                                                    "uses its own tuned batches.")
    timeout_s: float = Field(default=60.0, description="Remote models: seconds the SDK waits for each read.")
    deadline_s: float | None = Field(default=None, gt=0, description="Remote models: seconds one batch request "
                                     "may take in all; None = timeout_s.")


class IngestSettings(_Settings):
    """The start times a trace may have: outside them it is quarantined at ingest, naming the trace."""

    earliest_start: str = Field(default="1990-01-01", description="Traces that started before this day are "
                                "quarantined (a year-1 or epoch-0 time is a bug in the exporter).")
    max_future_hours: float = Field(default=24.0, ge=0, description="Traces that start more than this far past "
                                    "now are quarantined (allows for clock skew).")

    @field_validator("earliest_start", mode="before")
    @classmethod
    def _a_day(cls, value: Any) -> Any:
        if isinstance(value, dt.date):  # YAML reads an unquoted 1990-01-01 as a date
            return value.isoformat()
        dt.date.fromisoformat(str(value))  # ValueError names the setting
        return value


class PreprocessSettings(_Settings):
    max_tokens: int = 128_000
    redact: bool = True
    extra_patterns: dict[str, str] = Field(default_factory=dict, description="Redaction patterns: name -> regex.")
    custom: str | None = Field(default=None, description="A custom preprocessor, 'package.module:function'.")
    store_raw: Literal["full", "redacted", "none"] = Field(
        default="redacted", description="What raw_traces.payload and quarantine.snippet keep: 'redacted' (every "
        "string redacted by the same rules), 'full' (as ingested) or 'none' "
        "(no quarantine snippet; the payload, which preprocessing reads, redacted).")


class ClusterSettings(_Settings):
    sample_cap: int = 50_000
    min_cluster_size: int | None = Field(default=None, description="None = derived from the sample size.")
    n_neighbors: int = Field(default=20, description="UMAP neighbours: 20 joins a request's rephrasings "
                             "(synthetic scenarios, banking77 in full) and still keeps ~30-text intents apart.")
    n_components: int = 5
    n_epochs: int | None = Field(default=None, description="UMAP epochs; None = umap-learn's default for the size.")
    pca_components: int | None = Field(default=64, description="PCA before UMAP's kNN search; None = none.")
    umap_init: str = "spectral"
    min_samples: int | None = Field(default=None, description="HDBSCAN min_samples; None = min(min_cluster_size, 10).")
    # Bounds the super-linear part of map generation.
    core_sample: int | None = Field(default=15_000, description="UMAP + HDBSCAN run on at most this many sampled "
                                    "facets; the rest join their nearest sampled neighbour's cluster. None/0 = all.")
    n_keywords: int = 8
    random_state: int = 42
    threshold: float | None = Field(default=None, description="Cosine distance beyond which a trace is no_match; "
                                                              "None = from the map's own distances.")
    threshold_quantile: float = Field(default=0.99, description="Per topic: the share of its own members' "
                                      "distances inside its threshold.")
    keep_size_within: float = Field(default=0.15, ge=0, le=1, description="At a regeneration the previous "
                                    "generation's min topic size (scaled to the new sample) is kept while its "
                                    "validity is within this share of the best candidate's: the granularity changes "
                                    "only when clearly better, so topic ids survive resampling.")
    merge_similarity: float = Field(default=0.97, description="Clusters whose centroids are at least this alike "
                                    "(cosine) are merged into one topic.")
    match_min_similarity: float = Field(default=0.75, description="Id matching across generations.")


class GateSettings(_Settings):
    min_traces: int = 400
    min_unique_facets: int = 100


class AutomationSettings(_Settings):
    regenerate_cron: str = Field(default="0 3 * * *", description="Daily, 03:00 UTC.")
    backfill_days: int = Field(default=7, description="Recent window re-labelled after a new generation.")
    sensor_interval_s: int = 60


class ServeSettings(_Settings):
    """`topics serve` (OTLP/HTTP) and the otlp_spool sensor that ingests what it accepted."""

    host: str = Field(default="127.0.0.1", description="Interface to bind; loopback unless told otherwise.")
    port: int = Field(default=4318, ge=0, le=65535, description="The OTLP/HTTP port.")
    token_env: str = Field(default="TOPICS_SERVE_TOKEN", description="Name of the env var holding the bearer "
                                                                     "token (never the token); unset = no auth.")
    spool_dir: str | None = Field(default=None, description="Where accepted requests are spooled; default "
                                                            "<home>/spool.")
    spool_limit_bytes: int = Field(default=1 << 30, gt=0, description="Over this the endpoint answers 503 with "
                                   "Retry-After until the sensor has ingested some.")
    max_request_bytes: int = Field(default=20 << 20, gt=0, description="Largest request body, before and after "
                                   "decompression; larger gets 413.")
    max_spans_per_request: int = Field(default=100_000, gt=0, description="Spans past this in one request are "
                                       "rejected (partial_success).")
    max_concurrent_requests: int = Field(default=16, gt=0, description="Requests read at once; more get 429 "
                                         "with Retry-After (bounds the server's memory).")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 429 and 503.")
    segment_bytes: int = Field(default=16 << 20, gt=0, description="A spool segment is closed (and can be "
                               "ingested) at this size ...")
    segment_max_age_s: float = Field(default=2.0, gt=0, description="... or this long after its first write.")
    idle_window_s: float = Field(default=30.0, ge=0, description="A trace is ingested once no span of it has "
                                 "arrived for this long.")
    max_trace_wait_s: float = Field(default=600.0, gt=0, description="A trace still receiving spans is ingested "
                                    "anyway this long after its first span; later spans merge into it.")
    ingest_batch_bytes: int = Field(default=16 << 20, gt=0, description="Spool bytes one sensor tick ingests "
                                    "(keeps a tick well inside Dagster's sensor timeout).")
    ingest_interval_s: int = Field(default=15, gt=0, description="How often the otlp_spool sensor looks.")


ALERT_KINDS = ("rising", "falling", "new", "gone", "failing")


class WebhookSettings(_Settings):
    """A generic JSON webhook: each alert is POSTed as one JSON object."""

    url: str | None = Field(default=None, description="Where alerts are POSTed (http or https); none = no webhook.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers that are not "
                                    "secret: name -> value.")
    headers_env: dict[str, str] = Field(default_factory=dict, description="Secret request headers: header name "
                                        "-> name of the env var holding its value (never the value).")
    bearer_token_env: str | None = Field(default=None, description="Name of the env var holding a bearer token "
                                         "sent as Authorization (never the token).")
    timeout_s: float = Field(default=10.0, gt=0, description="Per request.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value or None


class SlackSettings(_Settings):
    """Slack, through dagster-slack's SlackResource (chat.postMessage)."""

    channel: str | None = Field(default=None, description="Channel to post in, e.g. #topics-alerts or an id; "
                                "none = no Slack.")
    token_env: str = Field(default="TOPICS_SLACK_TOKEN", description="Name of the env var holding the bot token "
                           "(never the token).")
    base_url: str = Field(default="https://slack.com/api/", description="Slack's Web API root (another for "
                          "GovSlack or a proxy).")


class AlertSettings(_Settings):
    """Delivery of the alerts the trend detector records: the topic_alerts sensor sends each once per sink."""

    kinds: list[str] = Field(default_factory=lambda: ["rising", "new", "failing"],
                             description=f"Alert kinds sent ({', '.join(ALERT_KINDS)}).")
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    max_attempts: int = Field(default=8, ge=1, description="Sends tried per alert and sink before it is marked "
                              "failed (with the last error).")
    backoff_base_s: float = Field(default=30.0, ge=0, description="A failed send is tried again after this, "
                                  "doubling each time ...")
    backoff_max_s: float = Field(default=3600.0, ge=0, description="... up to this.")
    claim_s: float = Field(default=300.0, gt=0, description="A send in flight holds its alert this long; another "
                           "tick or process takes it over only after (a crash mid-send).")
    max_age_days: int | None = Field(default=7, ge=0, description="Alerts of days older than this are not sent "
                                     "(none = all), so a sink added later does not replay history.")
    batch_size: int = Field(default=50, gt=0, description="Alerts sent per sink per tick (bounds a tick).")
    interval_s: int = Field(default=60, gt=0, description="How often the topic_alerts sensor looks.")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in ALERT_KINDS]
        if unknown:
            raise ValueError(f"unknown alert kind(s) {', '.join(map(repr, unknown))}; known: {', '.join(ALERT_KINDS)}")
        return value

    @property
    def sinks(self) -> list[str]:
        """The sinks configured, by name."""
        return [name for name, on in (("slack", self.slack.channel), ("webhook", self.webhook.url)) if on]
class InsightSettings(_Settings):
    """Per-topic figures (topic_stats) and trends (topics trends, the topic_stats check, topic_alerts)."""

    pass_marks: dict[str, float] = Field(default_factory=dict, description="Score name -> the lowest passing "
                                         "value; a trace with a score below its mark counts as failed.")
    default_pass_mark: float = Field(default=0.5, description="Pass mark of a score with none of its own, when its "
                                     "value is in [0, 1] (tau rewards 0/1, evaluator scores); other scores only "
                                     "count with a pass_marks entry.")
    baseline_days: int = Field(default=14, ge=2, description="Trailing days each day is judged against.")
    min_baseline_days: int = Field(default=3, ge=2, description="Days with traces in that window before a day "
                                   "is judged at all.")
    alpha: float = Field(default=0.02, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate per "
                         "(project, facet, day) and direction.")
    min_count: int = Field(default=5, ge=1, description="A rising topic has at least this many traces that day "
                           "(a falling one was expected to).")
    min_ratio: float = Field(default=1.25, ge=1, description="Share (or failure rate) at least this times the "
                             "baseline's to rise, at most 1/this to fall: keeps tiny but certain changes out.")
    new_max_baseline_ratio: float = Field(default=0.1, ge=0, description="new: a topic first seen in this "
                                          "generation whose baseline share is at most this fraction of the day's.")
    min_failures: int = Field(default=3, ge=1, description="failing: at least this many failing traces that day.")
    dispersion_prior_days: int = Field(default=10, ge=0, description="How many baseline days' weight the "
                                       "facet's day-to-day dispersion has in each topic's own estimate.")
    min_topic_baseline: int = Field(default=20, ge=1, description="A topic with fewer baseline traces has its "
                                    "failure rate judged against the whole facet's.")


class ExploreSettings(_Settings):
    """`topics explore`, and the links to it that each topic_map materialization carries in Dagster."""

    url: str = Field(default="http://127.0.0.1:8765", description="Where the explorer is reached (as `topics "
                     "explore` serves it by default); each topic_map materialization links to its map there.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value


class Settings(_Settings):
    home: str = ".topics"
    database: str | None = Field(default=None, description="Default: <home>/topics.duckdb.")
    partitions_start: str | None = Field(default=None, description="First day partition (older traces are "
                                         "quarantined). Default: the store's first day, today while it is empty.")
    default_project: str = "default"
    facets: list[FacetSpec] = Field(default_factory=lambda: [f.model_copy(deep=True) for f in BUILTIN_FACETS])
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    insight: InsightSettings = Field(default_factory=InsightSettings)
    explore: ExploreSettings = Field(default_factory=ExploreSettings)

    @field_validator("partitions_start", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-01-01 as a date.
        return value.isoformat() if isinstance(value, dt.date) else value

    @field_validator("facets", mode="before")
    @classmethod
    def _builtin_by_name(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        builtin = {f.name: f for f in BUILTIN_FACETS}
        out = []
        for item in value:
            if isinstance(item, str):
                if item not in builtin:
                    raise ValueError(f"{item!r} is not a built-in facet ({', '.join(builtin)})")
                item = builtin[item].model_copy(deep=True)
            out.append(item)
        return out

    @property
    def database_path(self) -> str:
        return self.database or str(Path(self.home) / "topics.duckdb")

    @property
    def spool_path(self) -> str:
        return self.serve.spool_dir or str(Path(self.home) / "spool")

    @property
    def facet_names(self) -> list[str]:
        return [f.name for f in self.facets]

    @property
    def text_facet_names(self) -> list[str]:
        """Facets that get topic maps (free text); enum and score facets are already categorical."""
        return [f.name for f in self.facets if f.kind == "text"]

    def trace_window(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The earliest and latest start time a trace may have (ingest.*), as aware UTC datetimes."""
        now = now or dt.datetime.now(dt.timezone.utc)
        earliest = dt.datetime.combine(dt.date.fromisoformat(self.ingest.earliest_start), dt.time(), dt.timezone.utc)
        return earliest, now + dt.timedelta(hours=self.ingest.max_future_hours)

    def facet(self, name: str) -> FacetSpec:
        for f in self.facets:
            if f.name == name:
                return f
        raise ConfigError(f"unknown facet {name!r}; configured: {', '.join(self.facet_names)}")

    # Includes PREPROCESS_VERSION: a release whose preprocessor writes other text redoes every trace.
    def preprocess_hash(self) -> str:
        """Changes whenever a preprocessing setting changes, so traces are preprocessed again."""
        # store_raw changes what ingest keeps, not the text: it leaves the hash alone.
        blob = json.dumps({**self.preprocess.model_dump(exclude={"store_raw"}), "_version": PREPROCESS_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def facets_hash(self) -> str:
        """Changes whenever a facet definition changes, so those traces are faceted again."""
        blob = json.dumps([f.model_dump() for f in self.facets], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def llm_api_key(self) -> str | None:
        return os.environ.get(self.llm.api_key_env) if self.llm.api_key_env else None


# Environment variable -> dotted settings path. Documented in the README.
ENV_VARS = {
    "TOPICS_HOME": "home",
    "TOPICS_DATABASE": "database",
    "TOPICS_PARTITIONS_START": "partitions_start",
    "TOPICS_DEFAULT_PROJECT": "default_project",
    "TOPICS_LLM_MODEL": "llm.model",
    "TOPICS_LLM_API_BASE": "llm.api_base",
    "TOPICS_LLM_API_KEY_ENV": "llm.api_key_env",
    "TOPICS_LLM_MAX_IN_FLIGHT": "llm.max_in_flight",
    "TOPICS_LLM_MAX_RETRIES": "llm.max_retries",
    "TOPICS_LLM_BACKOFF_BASE_S": "llm.backoff_base_s",
    "TOPICS_LLM_CIRCUIT_BREAKER": "llm.circuit_breaker",
    "TOPICS_LLM_TIMEOUT_S": "llm.timeout_s",
    "TOPICS_LLM_DEADLINE_S": "llm.deadline_s",
    "TOPICS_LLM_MAX_RETRY_AFTER_S": "llm.max_retry_after_s",
    "TOPICS_INGEST_EARLIEST_START": "ingest.earliest_start",
    "TOPICS_INGEST_MAX_FUTURE_HOURS": "ingest.max_future_hours",
    "TOPICS_EMBEDDING_MODEL": "embedding.model",
    "TOPICS_EMBEDDING_API_BASE": "embedding.api_base",
    "TOPICS_EMBEDDING_DEADLINE_S": "embedding.deadline_s",
    "TOPICS_MAX_TOKENS": "preprocess.max_tokens",
    "TOPICS_REDACT": "preprocess.redact",
    "TOPICS_STORE_RAW": "preprocess.store_raw",
    "TOPICS_PREPROCESSOR": "preprocess.custom",
    "TOPICS_SAMPLE_CAP": "cluster.sample_cap",
    "TOPICS_MIN_CLUSTER_SIZE": "cluster.min_cluster_size",
    "TOPICS_THRESHOLD": "cluster.threshold",
    "TOPICS_MIN_TRACES": "gates.min_traces",
    "TOPICS_MIN_UNIQUE_FACETS": "gates.min_unique_facets",
    "TOPICS_REGENERATE_CRON": "automation.regenerate_cron",
    "TOPICS_BACKFILL_DAYS": "automation.backfill_days",
    "TOPICS_SERVE_HOST": "serve.host",
    "TOPICS_SERVE_PORT": "serve.port",
    "TOPICS_SERVE_SPOOL_DIR": "serve.spool_dir",
    "TOPICS_SERVE_SPOOL_LIMIT_BYTES": "serve.spool_limit_bytes",
    "TOPICS_SERVE_MAX_REQUEST_BYTES": "serve.max_request_bytes",
    "TOPICS_SERVE_MAX_SPANS_PER_REQUEST": "serve.max_spans_per_request",
    "TOPICS_SERVE_IDLE_WINDOW_S": "serve.idle_window_s",
    "TOPICS_SERVE_SEGMENT_MAX_AGE_S": "serve.segment_max_age_s",
    "TOPICS_SERVE_INGEST_INTERVAL_S": "serve.ingest_interval_s",
    "TOPICS_ALERTS_WEBHOOK_URL": "alerts.webhook.url",
    "TOPICS_ALERTS_SLACK_CHANNEL": "alerts.slack.channel",
    "TOPICS_ALERTS_MAX_ATTEMPTS": "alerts.max_attempts",
    "TOPICS_ALERTS_MAX_AGE_DAYS": "alerts.max_age_days",
    "TOPICS_TREND_ALPHA": "insight.alpha",
    "TOPICS_TREND_BASELINE_DAYS": "insight.baseline_days",
    "TOPICS_EXPLORE_URL": "explore.url",
}


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The settings model that the key at `loc` belongs to (for listing the known keys)."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        model = inner[0] if typing.get_origin(annotation) in (list, typing.Union, types.UnionType) and inner \
            else annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _key(loc: tuple, data: Any) -> str:
    """Dotted key of a pydantic error location; a facet also by its name."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _messages(error: ValidationError, data: Any) -> list[str]:
    messages = []
    for e in error.errors():
        loc, key = tuple(e["loc"]), _key(tuple(e["loc"]), data)
        if e["type"] == "extra_forbidden":
            model = _model_at(loc)
            known = ", ".join(sorted(model.model_fields)) if model else "?"
            if model is FacetSpec:
                messages.append(f"{key.rsplit('.', 1)[0]}: unexpected keyword {loc[-1]!r}; a facet has: {known}")
            else:
                messages.append(f"{key}: unknown setting; known: {known}")
        elif e["type"] == "value_error":
            messages.append(f"{key}: {e['ctx']['error']}")
        elif e["type"] in ("model_type", "dict_type"):
            messages.append(f"{key}: must be a mapping (got {e['input']!r})")
        elif e["type"] == "missing":
            messages.append(f"{key}: required")
        else:
            messages.append(f"{key}: {e['msg']} (got {e['input']!r})")
    return messages


def _coerce_env(model: BaseModel, leaf: str, value: str) -> Any:
    """'', 'none' and 'null' mean None where a setting allows None; pydantic parses the rest."""
    allows_none = type(None) in typing.get_args(type(model).model_fields[leaf].annotation)
    return None if allows_none and value.strip().lower() in ("", "none", "null") else value


def config_file(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> str | None:
    """The topics.yaml that load_settings reads: `path`, else $TOPICS_CONFIG, else ./topics.yaml if present."""
    env = os.environ if env is None else env
    return str(path or env.get("TOPICS_CONFIG") or ("topics.yaml" if Path("topics.yaml").exists() else "")) or None


def load_settings(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then topics.yaml (path, $TOPICS_CONFIG or ./topics.yaml), then env vars."""
    env = dict(os.environ if env is None else env)
    path = config_file(path, env)
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(f"{path}: {m}" for m in _messages(e, data))) from None
    for var, dotted in ENV_VARS.items():
        if var not in env:
            continue
        obj = settings
        *parents, leaf = dotted.split(".")
        for part in parents:
            obj = getattr(obj, part)
        try:
            setattr(obj, leaf, _coerce_env(obj, leaf, env[var]))
        except ValidationError as e:
            raise ConfigError(f"{var}={env[var]!r}: {dotted}: {e.errors()[0]['msg']}") from None
    try:
        for f in settings.facets:
            f.validate()
        if len(set(settings.facet_names)) != len(settings.facets):
            raise ConfigError("facet names must be unique")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return settings
