"""Label one trace now, in-process, against a project's current topic maps: no Dagster run, no write.

The steps are the pipeline's own, in its order: an ingest reader parses the record, `preprocess` makes the
text a facet model reads, the configured facet engine writes the facets, the configured embedder embeds the
text facets, and each text facet's newest generation labels its vector (`CurrentMap.label`, the same call
`classify_days` makes). So a trace the pipeline labelled gets the label `trace_topics` shows. Everything
that costs a load (maps, engine, embedder, custom preprocessor) is loaded once, in `from_store`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from ..config import Settings
from ..embed import Embedder, embedding_model_id, make_embedder
from ..facets import FacetEngine, make_engine
from ..ingest import RecordError, parse_record
from ..ingest.records import loads
from ..preprocess import CustomPreprocessorError, load_custom, preprocess
from ..store import Store
from ..traces import Trace
from .stage import CurrentMap, load_current_map
from .topic_map import NO_MATCH

VECTOR_CACHE = 4_096  # facet texts repeat ("No issues observed."): each distinct one is embedded once


class ClassifyError(ValueError):
    """A record that cannot be labelled: the message names the record and the reason."""


class NoTopicMaps(LookupError):
    """The project has no topic map generation yet (`topics run` makes one once the gates are met)."""


@dataclass(frozen=True)
class FacetLabel:
    facet: str
    topic_id: str  # or 'no_match'
    topic_name: str | None  # None for no_match
    distance: float  # cosine distance to the nearest centroid
    generation: int
    text: str  # the facet text that was embedded

    @property
    def no_match(self) -> bool:
        return self.topic_id == NO_MATCH


@dataclass(frozen=True)
class TraceLabels:
    trace_id: str
    project: str  # the project whose maps labelled it
    labels: dict[str, FacetLabel]  # by facet, in the settings' order

    def to_dict(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "project": self.project,
                "facets": {f: {k: v for k, v in asdict(lab).items() if k != "facet"} for f, lab in self.labels.items()}}


class Classifier:
    """`Classifier.from_store(store, settings, project=...)`, then `.classify(record)` as often as you like."""

    def __init__(self, settings: Settings, project: str, maps: dict[str, CurrentMap], engine: FacetEngine,
                 embedder: Embedder, custom=None):
        self.settings = settings
        self.project = project
        self.maps = maps
        self.engine = engine
        self.embedder = embedder
        self.custom = custom
        self._vectors: OrderedDict[str, Any] = OrderedDict()

    @classmethod
    def from_store(cls, store: Store, settings: Settings, project: str | None = None,
                   engine: FacetEngine | None = None, embedder: Embedder | None = None) -> Classifier:
        """Loads every text facet's newest generation of `project` (default: the only project with maps).

        Raises NoTopicMaps when the project has none. Facets without a generation are left out; a map
        embedded with another model than the configured one is an error (its vectors would not compare)."""
        project = project or _only_project_with_maps(store, settings)
        maps = {f: m for f in settings.text_facet_names if (m := load_current_map(store, project, f)) is not None}
        if not maps:
            with_maps = projects_with_maps(store, settings)
            raise NoTopicMaps(f"project {project!r} has no topic maps yet"
                              + (f" (projects with maps: {', '.join(with_maps)})" if with_maps else "")
                              + "; `topics run` makes them once the gates are met (see `topics status`)")
        model = embedder.model_id if embedder is not None else embedding_model_id(settings.embedding)
        other = {f: m.embedding_model for f, m in maps.items() if m.embedding_model != model}
        if other:
            raise ValueError(f"project {project!r}: maps {', '.join(f'{f} ({m})' for f, m in other.items())} were "
                             f"embedded with another model than the configured {model!r}; set embedding.model to it")
        custom = load_custom(settings.preprocess.custom) if settings.preprocess.custom else None
        embedder = embedder or make_embedder(settings.embedding)
        engine = engine or make_engine(settings)
        return cls(settings, project, maps, engine, embedder, custom)

    # ------------------------------------------------------------------ input

    def traces(self, record: Any, where: str = "record") -> list[Trace]:
        """The traces in a record: a Trace, a dict, or one JSON line in any supported input format."""
        if isinstance(record, Trace):
            return [record]
        if isinstance(record, (str, bytes)):
            try:
                record = loads(record.decode("utf-8") if isinstance(record, bytes) else record)
            except (ValueError, RecursionError) as e:
                raise ClassifyError(f"{where}: not valid JSON: {getattr(e, 'msg', e)}") from e
        try:
            traces = parse_record(record, source=where, line=None, project=None,
                                  default_project=self.settings.default_project, now=datetime.now(timezone.utc))
        except (RecordError, RecursionError) as e:
            raise ClassifyError(f"{where}{_named(record)}: {e if isinstance(e, RecordError) else 'nested too deeply'}") from e
        if not traces:
            raise ClassifyError(f"{where}{_named(record)}: holds no trace")
        return traces

    # ------------------------------------------------------------------ labelling

    def classify(self, record: Any, where: str = "record") -> TraceLabels:
        """Labels of the one trace in `record`; a record holding several (tau2-bench) needs `classify_all`."""
        traces = self.traces(record, where)
        if len(traces) > 1:
            raise ClassifyError(f"{where}: holds {len(traces)} traces; use classify_all")
        return self.classify_trace(traces[0])

    def classify_all(self, record: Any, where: str = "record") -> list[TraceLabels]:
        return [self.classify_trace(t) for t in self.traces(record, where)]

    def classify_trace(self, trace: Trace) -> TraceLabels:
        try:
            text = preprocess(trace, self.settings.preprocess, custom=self.custom).text
        except CustomPreprocessorError as e:
            raise ClassifyError(f"trace {trace.trace_id}: {e}\n{e.details}") from e
        try:
            facets = self.engine.facet(text)
        except Exception as e:  # an LLM engine's failure, with the pipeline's own reason
            reason = getattr(e, "reason", None) or type(e).__name__
            raise ClassifyError(f"trace {trace.trace_id}: faceting failed ({reason}: {e})") from e
        names = list(self.maps)
        vectors = self._embed([facets[f] for f in names])
        labels = {}
        for f, v in zip(names, vectors):
            m = self.maps[f]
            ids, dist = m.label(v[None, :])
            tid = str(ids[0])
            labels[f] = FacetLabel(f, tid, m.names.get(tid), float(dist[0]), m.generation, facets[f])
        return TraceLabels(trace.trace_id, self.project, labels)

    def _embed(self, texts: list[str]):
        todo = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if todo:
            for t, v in zip(todo, self.embedder.embed(todo)):
                self._vectors[t] = v
            while len(self._vectors) > VECTOR_CACHE:
                self._vectors.popitem(last=False)
        return [self._vectors[t] for t in texts]


def projects_with_maps(store: Store, settings: Settings) -> list[str]:
    return [p for p in store.projects()
            if any(store.latest_generation(p, f) is not None for f in settings.text_facet_names)]


def _only_project_with_maps(store: Store, settings: Settings) -> str:
    with_maps = projects_with_maps(store, settings)
    if len(with_maps) == 1:
        return with_maps[0]
    if not with_maps:
        raise NoTopicMaps("no project has topic maps yet; `topics run` makes them once the gates are met "
                          "(see `topics status`)")
    raise NoTopicMaps(f"several projects have topic maps ({', '.join(with_maps)}); choose one with project=")


def _named(record: Any) -> str:
    """' (trace <id>)' when the record carries an id, so the error names it."""
    if isinstance(record, dict):
        tid = record.get("trace_id", record.get("id"))
        if isinstance(tid, (str, int)) and not isinstance(tid, bool):
            return f" (trace {tid})"
    return ""


__all__ = ["Classifier", "ClassifyError", "FacetLabel", "NoTopicMaps", "TraceLabels", "projects_with_maps"]
