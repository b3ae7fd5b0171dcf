"""The preprocess stage: raw_traces of some days into traces, the text each facet model reads."""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from topics_assets.config import Settings
from topics_assets.preprocess.core import preprocess
from topics_assets.preprocess.custom import CustomPreprocessorError, load_custom
from topics_assets.preprocess.signals import extract
from topics_assets.results import StageResult
from topics_assets.store import Store, now_utc
from topics_assets.traces import Trace


@dataclass(frozen=True)
class PreprocessResult(StageResult):
    raw_traces: int = 0
    preprocessed: int = 0
    unchanged: int = 0  # same payload and settings as last time: not redone
    failed: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    redactions: dict[str, int] = field(default_factory=dict)
    with_errors: int = 0  # preprocessed traces with an error signal or an abnormal end (trace_outcomes)
    seconds: float = 0.0


def preprocess_days(*, store: Store, settings: Settings, days: list[str]) -> PreprocessResult:
    t0 = time.monotonic()
    # A custom preprocessor that cannot be imported is a bad setting: fail the run once, up front.
    custom = load_custom(settings.preprocess.custom) if settings.preprocess.custom else None
    raw = store.raw_traces_for_days(days)
    settings_hash = settings.preprocess_hash()
    rows: list[dict] = []
    counts: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    outcomes: list[dict] = []
    statuses: Counter[str] = Counter()
    tokens_before = tokens_after = 0
    for r in raw.itertuples(index=False):
        if r.done_hash == r.payload_hash and r.done_status == "ok" and r.done_preprocess_hash == settings_hash:
            counts["unchanged"] += 1
            continue
        base = {"trace_id": r.trace_id, "project": r.project, "day": r.day, "started_at": r.started_at,
                "format": r.format, "version": r.version, "payload_hash": r.payload_hash,
                "preprocessed_at": now_utc(), "preprocess_hash": settings_hash}
        trace = None
        try:
            trace = Trace.from_json(r.payload)
            p = preprocess(trace, settings.preprocess, custom=custom)
            outcome = p.outcome.row()  # inside the try: a value the signals cannot store fails this trace alone
        except CustomPreprocessorError as e:  # the user's callable: its own error and full traceback
            counts["failed"] += 1
            rows.append({**base, "status": "failed", "error": f"{e}\n{e.details}"})
            _add_outcome(outcomes, r, trace)
            continue
        except Exception as e:  # one bad trace fails alone, with its reason
            counts["failed"] += 1
            rows.append({**base, "status": "failed",
                         "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"})
            _add_outcome(outcomes, r, trace)
            continue
        outcomes.append({"project": r.project, "trace_id": r.trace_id, "day": r.day, **outcome})
        statuses[p.outcome.status] += 1
        counts["preprocessed"] += 1
        tokens_before += p.tokens_before
        tokens_after += p.tokens_after
        redactions.update(p.redactions)
        rows.append({**base, "content": p.text, "content_hash": p.content_hash, "n_spans": p.n_spans,
                     "n_messages": p.n_messages, "tokens_before": p.tokens_before, "tokens_after": p.tokens_after,
                     "truncated": p.truncated, "redactions": json.dumps(p.redactions), "status": "ok", "error": None})
    store.replace_traces(days, rows, keep=list(zip(raw.project, raw.trace_id)))
    store.replace_outcomes(days, outcomes, keep=list(zip(raw.project, raw.trace_id)))
    return PreprocessResult(raw_traces=len(raw), preprocessed=counts["preprocessed"], unchanged=counts["unchanged"],
                            failed=counts["failed"], tokens_before=tokens_before, tokens_after=tokens_after,
                            redactions=dict(redactions), with_errors=statuses["error"],
                            seconds=round(time.monotonic() - t0, 3))


def _add_outcome(outcomes: list[dict], r, trace: Trace | None) -> None:
    """Signals of a trace whose text failed still land, when the trace itself could be read."""
    if trace is None:
        return
    try:
        row = extract(trace).row()
    except Exception:  # noqa: BLE001 - the trace's failure is already recorded with its reason
        return
    outcomes.append({"project": r.project, "trace_id": r.trace_id, "day": r.day, **row})
