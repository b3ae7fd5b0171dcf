"""The spool's consumer: closed segments into the store, through the file ingest stage.

A trace is ready once no span of it has arrived for serve.idle_window_s (its spans are still
coming otherwise, and each partial version would be faceted). Per tick, the spans of ready traces
are written as OTLP JSON lines to a staging file and ingested with ingest_paths, so they are read,
merged by trace id with what the store holds, and quarantined exactly as file ingest does. The
spans of traces not ready yet are written to a new segment first; only then are the consumed
segments removed. A crash anywhere in between leaves segments that are ingested again, which
changes nothing: a span sent twice is one span after the merge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from topics_assets.config import Settings
from topics_assets.ingest.stage import IngestResult, ingest_paths
from topics_assets.results import StageResult
from topics_assets.serve import protocol, spool
from topics_assets.store import Store

CARRY = "carry-"  # segments holding the spans of traces that were still arriving


@dataclass(frozen=True)
class SpoolIngestResult(StageResult):
    spool: str = ""
    state: str = "ingested"  # ingested | waiting (every trace still receiving spans) | empty | no_spool | busy
    segments: int = 0  # consumed this tick
    requests: int = 0
    spans: int = 0  # of ready traces, handed to ingest
    traces_ready: int = 0
    traces_waiting: int = 0  # still receiving spans: kept in the spool for a later tick
    spans_waiting: int = 0
    segments_left: int = 0  # closed segments beyond this tick's batch
    recovered_segments: int = 0  # open segments a killed server left, closed here
    ingest: IngestResult | None = None

    def summary(self) -> str:
        if self.state != "ingested":
            return {"no_spool": f"no spool at {self.spool} yet (`topics serve` creates it)",
                    "busy": f"another consumer is ingesting {self.spool}",
                    "empty": f"nothing to ingest in {self.spool}",
                    "waiting": f"{self.spans_waiting} spans in {self.segments} segment(s), none of a trace "
                               "idle long enough"}[self.state] + (
                f"; {self.traces_waiting} trace(s) still receiving spans" if self.traces_waiting else "")
        i = self.ingest
        landed = (f"{i.loaded} new, {i.updated} updated, {i.unchanged} unchanged, {i.quarantined} quarantined"
                  if i else "nothing ready")
        return (f"{self.spans} spans of {self.traces_ready} trace(s) from {self.segments} segment(s): {landed}; "
                f"{self.traces_waiting} trace(s) still receiving spans"
                + (f"; {self.segments_left} segment(s) left for the next tick" if self.segments_left else ""))


def ingest_spool(*, store: Store, settings: Settings, now: float | None = None) -> SpoolIngestResult:
    """Ingest the ready traces of the spool's closed segments (at most serve.ingest_batch_bytes of them)."""
    directory = Path(settings.spool_path)
    if not directory.is_dir():
        return SpoolIngestResult(spool=str(directory), state="no_spool")
    try:
        consumer = spool.FileLock(directory / spool.CONSUMER_LOCK).acquire()
    except spool.SpoolBusy:
        return SpoolIngestResult(spool=str(directory), state="busy")
    try:
        return _ingest(store, settings, directory, time.time() if now is None else now)
    finally:
        consumer.release()


def _ingest(store: Store, settings: Settings, directory: Path, now: float) -> SpoolIngestResult:
    recovered = 0
    try:  # no server running: close what a killed one left open
        with spool.FileLock(directory / spool.SERVER_LOCK).acquire():
            recovered = spool.recover_open_segments(directory)
    except spool.SpoolBusy:
        pass
    closed = spool.closed_segments(directory)
    # Carried spans always come along (so they cannot starve newer segments); new segments up to the budget.
    batch = [p for p in closed if p.name.startswith(CARRY)]
    size = 0
    for path in (p for p in closed if not p.name.startswith(CARRY)):
        if size and size + path.stat().st_size > settings.serve.ingest_batch_bytes:
            break
        batch.append(path)
        size += path.stat().st_size
    records = {p: spool.read_segment(p) for p in batch}

    # First and last arrival of each trace, over everything that may still hold a recent span of it.
    horizon = now - settings.serve.idle_window_s
    first_seen: dict[bytes, float] = {}
    last_seen: dict[bytes, float] = {}

    def see(recs: list[spool.Record]) -> None:
        for t, tid in spool.iter_trace_ids(recs):
            if t > last_seen.get(tid, 0.0):
                last_seen[tid] = t
            if t < first_seen.get(tid, now):
                first_seen[tid] = t

    for recs in records.values():
        see(recs)
    for path in [*(p for p in closed if p not in records), *spool.open_segments(directory)]:
        try:
            if path.stat().st_mtime >= horizon:
                see(spool.parse_frames(path.read_bytes(), str(path))[0])
        except FileNotFoundError:  # closed or removed meanwhile
            pass
    # Waiting for more spans, unless the trace has been arriving for longer than max_trace_wait_s.
    cutoff = now - settings.serve.max_trace_wait_s
    waiting = {tid for tid, t in last_seen.items() if t > horizon and first_seen[tid] > cutoff}

    ready_lines: list[str] = []
    held: list[spool.Record] = []
    ready_ids: set[bytes] = set()
    n_requests = n_spans = held_spans = 0
    all_records = sorted((r for recs in records.values() for r in recs), key=lambda r: r.received_at)
    for r in all_records:
        n_requests += 1
        msg = protocol.ExportTraceServiceRequest.FromString(r.payload)
        ready = protocol.filter_spans(msg, lambda s: s.trace_id not in waiting) if waiting else msg
        n_ready = protocol.count_spans(ready)
        n_total = protocol.count_spans(msg)
        if n_ready:
            ready_lines.append(protocol.to_otlp_json(ready.SerializeToString()))
            ready_ids.update(s.trace_id for rs in ready.resource_spans for ss in rs.scope_spans for s in ss.spans)
        if n_ready < n_total:
            rest = protocol.filter_spans(msg, lambda s: s.trace_id in waiting)
            held.append(spool.Record(r.received_at, rest.SerializeToString()))
            held_spans += n_total - n_ready
        n_spans += n_ready

    if not batch:
        return SpoolIngestResult(spool=str(directory), state="empty", recovered_segments=recovered,
                                 traces_waiting=len(waiting))
    if not ready_lines and all(p.name.startswith(CARRY) for p in batch):  # nothing would change: leave them
        return SpoolIngestResult(spool=str(directory), state="waiting", segments=len(batch), requests=n_requests,
                                 traces_waiting=len(waiting), spans_waiting=held_spans,
                                 segments_left=len(closed) - len(batch), recovered_segments=recovered)
    result = None
    if ready_lines:
        staging = directory / f"ingest-{time.time_ns():020d}.jsonl"
        staging.write_text("\n".join(ready_lines) + "\n", encoding="utf-8")
        try:
            result = ingest_paths(store=store, settings=settings, paths=[str(staging)])
        finally:
            staging.unlink()
    if held:  # the spans still arriving go back to the spool before what held them is removed
        spool.write_segment(directory, f"{CARRY}{time.time_ns():020d}", held)
    for path in batch:
        path.unlink()
    spool.fsync_dir(directory)
    return SpoolIngestResult(
        spool=str(directory), segments=len(batch), requests=n_requests, spans=n_spans,
        traces_ready=len(ready_ids), traces_waiting=len(waiting), spans_waiting=held_spans,
        segments_left=len(closed) - len(batch), recovered_segments=recovered, ingest=result)
