"""The ingest stage: files into raw_traces, with what landed, changed and was quarantined."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from topics_assets.config import Settings
from topics_assets.ingest.files import read_file
from topics_assets.ingest.otlp import SPAN_FORMATS, merge_exports
from topics_assets.preprocess.redact import redact, redact_value
from topics_assets.results import StageResult
from topics_assets.store import Store, TraceKey
from topics_assets.traces import Quarantined, Trace, sha256_text

INGEST_BATCH = 2_000
LINE_PREFIX = re.compile(r"^line \d+: ")


@dataclass(frozen=True)
class IngestResult(StageResult):
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # OTLP traces whose spans joined ones stored or seen earlier
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_lines: dict[str, dict[str, list[int | None]]] = field(default_factory=dict)  # file -> kind -> lines
    days: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)


def ingest_paths(*, store: Store, settings: Settings, paths: Iterable[str], project: str | None = None,
                 on_record: Callable[[str], None] | None = None, now: datetime | None = None) -> IngestResult:
    """Parse files into raw_traces; a later version of the same trace (project and trace id) replaces
    the earlier one. The same id in another project is another trace.

    OTLP traces are the exception: their spans may come in several exports (batches, rotated files),
    so the spans of a trace already stored in that project, or seen earlier in this call, are merged
    with the new ones (otlp.merge_exports) instead of replaced.
    """
    now = now or datetime.now(timezone.utc)
    start = date.fromisoformat(settings.partitions_start) if settings.partitions_start else None  # None: any day
    earliest, latest = settings.trace_window(now)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    lines: dict[str, dict[str, list[int | None]]] = {}
    rows: list[dict] = []
    quarantined: list[dict] = []
    days: set[str] = set()
    projects: set[str] = set()

    # OTLP traces of this batch, by (project, id) (ids are scoped by project), with their file
    span_traces: dict[TraceKey, tuple[Trace, str]] = {}

    store_raw = settings.preprocess.store_raw
    extra = settings.preprocess.extra_patterns or None

    def add_row(trace: Trace, path: str) -> None:
        payload = trace.to_json()
        if store_raw != "full":
            # Redaction is deterministic, so the same trace again is still "unchanged" (dedup), and an OTLP
            # trace merged with its stored (redacted) part hashes as the whole trace ingested at once would.
            payload = redact_payload(payload, extra)
        payload_hash = sha256_text(payload)
        rows.append({"trace_id": trace.trace_id, "project": trace.project, "day": trace.day,
                     "started_at": trace.started_at, "format": trace.format, "source": path,
                     "payload": payload, "payload_hash": payload_hash})
        days.add(trace.day)
        projects.add(trace.project)

    def merge(earlier: Trace, later: Trace) -> Trace:
        merged = merge_exports(earlier, later)
        counts["merged"] += len(merged.spans) > len(later.spans)  # the earlier part brought spans of its own
        return merged

    def flush() -> None:
        stored = store.raw_payloads(list(span_traces), SPAN_FORMATS)
        for key, (trace, path) in span_traces.items():
            add_row(merge(Trace.from_json(stored[key]), trace) if key in stored else trace, path)
        span_traces.clear()
        counts.update(store.upsert_raw_traces(rows))
        store.add_quarantined(quarantined)
        rows.clear()
        quarantined.clear()

    def quarantine(q: Quarantined) -> None:
        counts["quarantined"] += 1
        kind = LINE_PREFIX.sub("", q.reason).split(":")[0][:80]  # "line 4: not valid JSON: ..." -> "not valid JSON"
        reasons[kind] += 1
        lines.setdefault(str(q.source), {}).setdefault(kind, []).append(q.line)
        quarantined.append({"source": q.source, "line": q.line, "trace_id": q.trace_id, "reason": q.reason,
                            "snippet": _snippet(q.snippet, store_raw, extra)})

    for path in paths:
        for item in read_file(path, project=project, default_project=settings.default_project, now=now):
            if on_record:
                on_record(str(path))
            if isinstance(item, Quarantined):
                quarantine(item)
            elif not earliest <= item.started_at <= latest:
                # Dagster's day partitions (and Python's dates) end at year 9999: one such trace would
                # fail every later run.
                quarantine(Quarantined(str(path), None, (
                    f"start time outside the accepted window: trace {item.trace_id} started "
                    f"{item.started_at.isoformat()}, accepted {earliest.date()} .. {latest.isoformat(timespec='minutes')} "
                    "(ingest.earliest_start, ingest.max_future_hours)"), "", item.trace_id))
            elif start is not None and item.started_at.date() < start:
                quarantine(Quarantined(str(path), None, (
                    f"trace {item.trace_id} started {item.day}, before partitions_start {settings.partitions_start} "
                    "(set TOPICS_PARTITIONS_START or partitions_start in topics.yaml)"), "", item.trace_id))
            elif item.format in SPAN_FORMATS:
                key = (item.project, item.trace_id)
                if key in span_traces:
                    item = merge(span_traces[key][0], item)
                span_traces[key] = (item, str(path))
            else:
                add_row(item, str(path))
            if len(rows) + len(span_traces) + len(quarantined) >= INGEST_BATCH:
                flush()
    flush()
    return IngestResult(loaded=counts["loaded"], updated=counts["updated"], unchanged=counts["unchanged"],
                        merged=counts["merged"], quarantined=counts["quarantined"],
                        quarantine_reasons=dict(reasons), quarantine_lines=lines, days=sorted(days), projects=sorted(projects))


def redact_payload(payload: str, extra: dict[str, str] | None = None) -> str:
    """A stored trace (Trace.to_json) with every string value redacted; ids, types, roles and times kept."""
    value, counts = redact_value(json.loads(payload), extra)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")) if counts else payload


def _snippet(snippet: str, store_raw: str, extra: dict[str, str] | None) -> str:
    """What quarantine keeps of a bad record: redacted before it is cut to 200 characters (or nothing)."""
    if store_raw == "none" or not snippet:
        return ""
    if store_raw == "full":
        return snippet[:200]
    return redact(snippet, extra)[0][:200]
