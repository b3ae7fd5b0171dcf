"""The facet stage: facet every trace of some days whose content, facet definitions or model changed.

Every trace ends faceted, or failed with its reason (recorded in facet_failures and retried on
the next run); LLM answers are journaled as they arrive, so a killed run never pays twice. A run
claims the traces it facets (claims.Claim), so two runs at once never pay for one trace twice:
the traces another live run holds are skipped here and counted (`busy`); they stay pending, so a
later run takes them if that run dies before faceting them.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from ..claims import Claim
from ..config import Settings
from ..results import StageResult
from ..store import Store, TraceKey, now_utc
from ..traces import sha256_text
from .engine import FacetEngine, make_engine
from .journal import FacetJournal
from .journal import Key as JournalKey

FACET_FLUSH_EVERY = 256  # traces per facets write: bounds what a crash can lose


def text_hash(text: str) -> str:
    return sha256_text(text)[:32]


@dataclasses.dataclass(frozen=True)
class FacetResult(StageResult):
    DONE_FIELD = "faceted"

    traces: int
    faceted: int
    cache_hits: int
    journal_hits: int
    failed: int
    failures_by_reason: dict[str, int]
    engine: str
    model: str
    seconds: float
    llm: dict[str, Any] | None = None  # the LLM client's counters for this run (calls, tokens, cost, ...)
    busy: int = 0  # traces skipped because another live run holds them (it facets them)
    busy_note: str | None = None  # who holds them, when busy

    def to_metadata(self) -> dict[str, Any]:
        meta = super().to_metadata()
        meta.pop("llm", None)
        meta.update({f"llm_{k}": v for k, v in (self.llm or {}).items()})
        return meta


def facet_days(*, store: Store, settings: Settings, days: list[str], engine: FacetEngine | None = None,
               flush_every: int = FACET_FLUSH_EVERY) -> FacetResult:
    """LLM calls run at most llm.max_in_flight at a time; answers are written every `flush_every`
    traces, so a crash or a cancelled run keeps what was already paid for."""
    t0 = time.monotonic()
    engine = engine or make_engine(settings)
    traces = store.ok_traces_for_days(days)
    fhash = settings.facets_hash()
    wanted = set(settings.facet_names)

    def to_do() -> list:
        current: dict[TraceKey, set[str]] = {}  # what each (project, trace_id) was faceted from
        for r in store.facets_for_days(days).itertuples(index=False):
            done = current.setdefault((r.project, r.trace_id), set())
            if r.facets_hash == fhash and r.model == engine.model:
                done.add(f"{r.facet}\0{r.content_hash}")
        return [t for t in traces.itertuples(index=False)
                if {f"{f}\0{t.content_hash}" for f in wanted} - current.get((t.project, t.trace_id), set())]

    todo = to_do()
    # Claim what is to do, then look again: a run that held some of it may have written them and let
    # go between the first look and the claim (without the second look they would be paid twice).
    with Claim(store, "facet", [(t.project, t.trace_id) for t in todo]) as claim:
        if todo:
            todo = [t for t in to_do() if (t.project, t.trace_id) in claim.held]
        return _facet(store, settings, days, engine, traces, todo, fhash, flush_every, claim, t0)


def _facet(store: Store, settings: Settings, days: list[str], engine: FacetEngine, traces, todo: list, fhash: str,
           flush_every: int, claim: Claim, t0: float) -> FacetResult:
    """Facet `todo` (these days' traces `claim` holds) and write the answers; the rest of `traces` is kept,
    and what another run holds (`claim.busy`) is counted as busy, not as a cache hit."""
    live = list(zip(traces.project, traces.trace_id))
    rows: list[dict] = []
    failures: list[dict] = []
    reasons: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    pending = 0

    def flush() -> None:
        nonlocal pending
        store.write_facets(days, rows, failures, live=live)
        rows.clear()
        failures.clear()
        pending = 0

    client = getattr(engine, "client", None)
    journal = FacetJournal.for_store(store.database, settings.home) if client is not None else None
    journaled = journal.load() if journal is not None else {}

    def key(t) -> JournalKey:
        return (t.project, t.trace_id, t.content_hash, fhash, engine.model)

    def on_done(i: int, res: Any) -> None:
        nonlocal pending
        t = todo[i]
        if journal is not None and not isinstance(res, BaseException) and key(t) not in journaled:
            journal.append(key(t), res)
        if isinstance(res, BaseException):
            reason = getattr(res, "reason", None) or type(res).__name__
            reasons[reason] += 1
            counts["failed"] += 1
            failures.append({"trace_id": t.trace_id, "project": t.project, "day": t.day, "reason": reason,
                             "detail": f"{type(res).__name__}: {res}"[:2000]})
        else:
            counts["faceted"] += 1
            created = now_utc()
            for name, text in res.items():
                rows.append({"trace_id": t.trace_id, "facet": name, "project": t.project, "day": t.day,
                             "text": text, "text_hash": text_hash(text), "engine": engine.engine,
                             "model": engine.model, "content_hash": t.content_hash, "facets_hash": fhash,
                             "created_at": created})
        pending += 1
        if pending >= flush_every:
            flush()

    before = client.stats if client is not None else None
    if client is not None:
        fresh = []
        for i, t in enumerate(todo):
            if key(t) in journaled:
                counts["journal_hits"] += 1
                on_done(i, journaled[key(t)])
            else:
                fresh.append(i)
        client.map(lambda i: engine.facet(todo[i].content), fresh, on_done=lambda j, res: on_done(fresh[j], res))
    else:
        for i, t in enumerate(todo):
            try:
                res = engine.facet(t.content)
            except Exception as e:  # noqa: BLE001 - recorded per trace
                res = e
            on_done(i, res)
    flush()  # also drops facets of traces that left these days, when nothing was to do
    if journal is not None:
        journal.finish(stored={key(t) for t in todo})
    return FacetResult(
        traces=len(traces), faceted=counts["faceted"], cache_hits=len(traces) - len(todo) - len(claim.busy),
        journal_hits=counts["journal_hits"], failed=counts["failed"], failures_by_reason=dict(reasons),
        engine=engine.engine, model=engine.model, seconds=round(time.monotonic() - t0, 3),
        llm=client.stats_since(before) if client is not None else None, busy=len(claim.busy),
        busy_note=claim.busy_note("traces"))
