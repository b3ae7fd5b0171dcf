"""Settings: defaults < topics.yaml < environment variables.

Everything has an offline default, so a fresh install runs with no file and no key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass
class FacetSpec:
    """One dimension a trace is summarised along."""

    name: str
    prompt: str
    kind: str = "text"  # text | enum | score
    categories: list[str] = field(default_factory=list)  # for kind == "enum"

    def validate(self) -> None:
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


@dataclass
class LLMSettings:
    model: str | None = None  # any litellm model name; None = offline extractive facets
    api_base: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key (never the key itself)
    max_in_flight: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    temperature: float = 0.0
    max_output_tokens: int = 800
    backoff_base_s: float = 0.5  # first retry waits up to this (full jitter, doubling); Retry-After wins
    circuit_breaker: int = 10  # calls in a row failing for endpoint reasons that stop a run's other calls; 0 = never


@dataclass
class EmbeddingSettings:
    # "local" (offline all-MiniLM-L6-v2), "voyage/<model>" or any litellm embedding model name.
    model: str = "local"
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = 64  # texts per API request for remote models; the local model uses its own tuned batches


@dataclass
class PreprocessSettings:
    max_tokens: int = 128_000
    redact: bool = True
    extra_patterns: dict[str, str] = field(default_factory=dict)  # name -> regex
    custom: str | None = None  # "package.module:function"


@dataclass
class ClusterSettings:
    sample_cap: int = 50_000
    min_cluster_size: int | None = None  # None = derived from the sample size
    n_neighbors: int = 15
    n_components: int = 5
    n_epochs: int | None = None  # UMAP epochs; None = umap-learn's default for the size
    pca_components: int | None = 64  # PCA before UMAP's kNN search; None = none
    umap_init: str = "spectral"
    min_samples: int | None = None  # HDBSCAN min_samples; None = min(min_cluster_size, 10)
    # UMAP + HDBSCAN run on at most this many sampled facets; the rest join their nearest sampled
    # neighbour's cluster. Bounds the super-linear part of map generation. None/0 = all.
    core_sample: int | None = 15_000
    n_keywords: int = 8
    random_state: int = 42
    # Cosine distance beyond which a trace is no_match; None = from the map's own distances.
    threshold: float | None = None
    threshold_quantile: float = 0.95
    match_min_similarity: float = 0.75  # id matching across generations


@dataclass
class GateSettings:
    min_traces: int = 400
    min_unique_facets: int = 100


@dataclass
class AutomationSettings:
    regenerate_cron: str = "0 3 * * *"  # daily, 03:00 UTC
    backfill_days: int = 7  # recent window re-labelled after a new generation
    sensor_interval_s: int = 60


@dataclass
class Settings:
    home: str = ".topics"
    database: str | None = None  # default: <home>/topics.duckdb
    partitions_start: str = "2025-01-01"
    default_project: str = "default"
    facets: list[FacetSpec] = field(default_factory=lambda: [FacetSpec(**asdict(f)) for f in BUILTIN_FACETS])
    llm: LLMSettings = field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    gates: GateSettings = field(default_factory=GateSettings)
    automation: AutomationSettings = field(default_factory=AutomationSettings)

    @property
    def database_path(self) -> str:
        return self.database or str(Path(self.home) / "topics.duckdb")

    @property
    def facet_names(self) -> list[str]:
        return [f.name for f in self.facets]

    @property
    def text_facet_names(self) -> list[str]:
        """Facets that get topic maps (free text); enum and score facets are already categorical."""
        return [f.name for f in self.facets if f.kind == "text"]

    def facet(self, name: str) -> FacetSpec:
        for f in self.facets:
            if f.name == name:
                return f
        raise ConfigError(f"unknown facet {name!r}; configured: {', '.join(self.facet_names)}")

    def preprocess_hash(self) -> str:
        """Changes whenever a preprocessing setting changes, so traces are preprocessed again."""
        blob = json.dumps(asdict(self.preprocess), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def facets_hash(self) -> str:
        """Changes whenever a facet definition changes, so those traces are faceted again."""
        blob = json.dumps([asdict(f) for f in self.facets], sort_keys=True)
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
    "TOPICS_EMBEDDING_MODEL": "embedding.model",
    "TOPICS_EMBEDDING_API_BASE": "embedding.api_base",
    "TOPICS_MAX_TOKENS": "preprocess.max_tokens",
    "TOPICS_REDACT": "preprocess.redact",
    "TOPICS_PREPROCESSOR": "preprocess.custom",
    "TOPICS_SAMPLE_CAP": "cluster.sample_cap",
    "TOPICS_MIN_CLUSTER_SIZE": "cluster.min_cluster_size",
    "TOPICS_THRESHOLD": "cluster.threshold",
    "TOPICS_MIN_TRACES": "gates.min_traces",
    "TOPICS_MIN_UNIQUE_FACETS": "gates.min_unique_facets",
    "TOPICS_REGENERATE_CRON": "automation.regenerate_cron",
    "TOPICS_BACKFILL_DAYS": "automation.backfill_days",
}


def _coerce(value: str, current: Any, target_type: Any) -> Any:
    t = str(target_type)
    if value.strip().lower() in ("", "none", "null") and "None" in t:
        return None
    if "bool" in t:
        return value.strip().lower() in ("1", "true", "yes", "on")
    if "int" in t:
        return int(value)
    if "float" in t:
        return float(value)
    return value


def _apply(obj: Any, data: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
        current = getattr(obj, key)
        if key == "facets":
            if not isinstance(value, list):
                raise ConfigError(f"{where}: facets must be a list")
            specs = []
            for item in value:
                if isinstance(item, str):  # a built-in by name
                    builtin = {f.name: f for f in BUILTIN_FACETS}
                    if item not in builtin:
                        raise ConfigError(f"{where}: {item!r} is not a built-in facet ({', '.join(builtin)})")
                    specs.append(FacetSpec(**asdict(builtin[item])))
                elif isinstance(item, dict):
                    try:
                        specs.append(FacetSpec(**item))
                    except TypeError as e:
                        raise ConfigError(f"{where}: facet {item.get('name')!r}: {e}") from e
                else:
                    raise ConfigError(f"{where}: each facet is a built-in name or a mapping")
            setattr(obj, key, specs)
        elif is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must be a mapping")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(obj, key, value)


def load_settings(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then topics.yaml (path, $TOPICS_CONFIG or ./topics.yaml), then env vars."""
    env = dict(os.environ if env is None else env)
    settings = Settings()
    path = path or env.get("TOPICS_CONFIG") or ("topics.yaml" if Path("topics.yaml").exists() else None)
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
        _apply(settings, data, str(p))
    for var, dotted in ENV_VARS.items():
        if var not in env:
            continue
        obj = settings
        *parents, leaf = dotted.split(".")
        for part in parents:
            obj = getattr(obj, part)
        ftype = {f.name: f.type for f in fields(obj)}[leaf]
        try:
            setattr(obj, leaf, _coerce(env[var], getattr(obj, leaf), ftype))
        except ValueError as e:
            raise ConfigError(f"{var}={env[var]!r}: {e}") from e
    for f in settings.facets:
        f.validate()
    if len(set(settings.facet_names)) != len(settings.facets):
        raise ConfigError("facet names must be unique")
    return settings
