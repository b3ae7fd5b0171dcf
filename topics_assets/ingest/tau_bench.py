"""tau-bench run records: {"task_id", "traj": [...], "info": {...}}, one per line or in a list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from topics_assets.ingest.records import (
    Context,
    RecordError,
    action_names,
    id_of,
    optional_dict,
    to_messages,
    type_name,
    write_actions,
)
from topics_assets.traces import Span, Trace


TAU_BENCH_DOMAINS = ("airline", "retail")


def detect(obj: dict) -> bool:
    return "traj" in obj


def parse(obj: dict, ctx: Context) -> Iterator[Trace]:
    yield parse_tau_bench(obj, ctx)


def parse_tau_bench(obj: dict, ctx: Context) -> Trace:
    task_id = id_of(obj.get("task_id"), "'task_id'")
    trial = obj.get("trial", 0)
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise RecordError(f"'trial' must be an integer, got {type_name(trial)}")
    messages = to_messages(obj.get("traj"), "traj")
    stem = Path(ctx.source).stem
    domain = next((d for d in TAU_BENCH_DOMAINS if d in stem.lower()), stem.rsplit("-", 1)[-1])
    info = optional_dict(obj, "info")
    task = info.get("task") if isinstance(info.get("task"), dict) else {}
    actions = task.get("actions") if isinstance(task.get("actions"), list) else None
    labels: dict[str, Any] = {"task_id": obj.get("task_id"), "reward": obj.get("reward")}
    if actions is not None:
        labels["write_actions"] = write_actions(action_names(actions))
    root = Span(id="task", type="task", name=f"tau-bench task {task_id}")
    # One span stands for the whole agent loop: one LLM call per assistant turn.
    calls = sum(1 for m in messages if m.role == "assistant")
    llm = Span(id="llm", type="llm", parent_id="task", name="agent", input=messages, metadata={"llm_calls": calls})
    spans = [root, llm]
    if _is_number(obj.get("reward")):  # the benchmark's verdict: an outcome score, never facet text
        spans.append(Span(id="reward", type="score", parent_id="task", name="reward",
                          output={"score": float(obj["reward"])}))
    return Trace(
        trace_id=f"tau-bench/{stem}/{task_id}/{trial}",
        project=ctx.project_for(obj.get("project"), f"tau-bench-{domain}"),
        started_at=ctx.now,  # the run files carry no timestamps
        spans=spans,
        format="tau-bench",
        labels=labels,
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
