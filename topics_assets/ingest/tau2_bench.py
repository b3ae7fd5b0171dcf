"""tau2-bench results files: {"info", "tasks", "simulations": [...]}, one trace per simulation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from topics_assets.ingest.records import (
    Context,
    RecordError,
    action_names,
    check_depth,
    dump,
    first,
    id_of,
    snippet_of,
    time_of,
    to_message,
    type_name,
    write_actions,
)
from topics_assets.traces import Message, Quarantined, Span, Trace


def detect(obj: dict) -> bool:
    return "simulations" in obj


def parse(obj: dict, ctx: Context) -> Iterator[Trace]:
    """Every simulation's trace, or RecordError for the first that is not one."""
    for i, _, result in results(obj, ctx):
        if isinstance(result, RecordError):
            raise RecordError(f"simulation {i}: {result}")
        yield result


def quarantining(doc: dict, ctx: Context, name: str, text: str) -> Iterator[Trace | Quarantined]:
    """A whole results file: one quarantine per bad simulation, not one for the file."""
    try:
        for i, sim, result in results(doc, ctx):
            if isinstance(result, Trace):
                yield result
            else:
                sim_id = first(sim, "id") if isinstance(sim, dict) else None
                yield Quarantined(
                    ctx.source,
                    None,
                    f"simulation {i}: {result}",
                    snippet_of(dump(sim)),
                    str(sim_id) if sim_id else None,
                )
    except RecordError as e:  # the results file itself is malformed
        yield Quarantined(ctx.source, None, f"{name}: {e}", snippet_of(text))


def _tau2_header(doc: dict, ctx: Context) -> tuple[str, dict[str, dict], list]:
    sims = doc.get("simulations")
    if not isinstance(sims, list):
        raise RecordError(f"'simulations' must be a list, got {type_name(sims)}")
    env = (doc.get("info") or {}).get("environment_info") if isinstance(doc.get("info"), dict) else None
    domain = env.get("domain_name") if isinstance(env, dict) else None
    if not isinstance(domain, str) or not domain:
        domain = Path(ctx.source).stem.rsplit("_", 1)[-1]  # gpt-4.1_airline.json
    tasks = doc.get("tasks") or []
    if not isinstance(tasks, list):
        raise RecordError(f"'tasks' must be a list, got {type_name(tasks)}")
    return domain, {str(t.get("id")): t for t in tasks if isinstance(t, dict)}, sims


def results(doc: dict, ctx: Context) -> Iterator[tuple[int, Any, Trace | RecordError]]:
    """Each simulation's trace, or the error that kept it from being one."""
    domain, tasks, sims = _tau2_header(doc, ctx)
    for i, sim in enumerate(sims):
        try:
            yield i, sim, check_depth(_tau2_trace(sim, domain, tasks, doc, ctx))
        except RecordError as e:
            yield i, sim, e
        except RecursionError:
            yield i, sim, RecordError("nested too deeply")


def _tau2_message(m: Any, where: str) -> Message:
    if isinstance(m, dict) and m.get("role") == "tool" and "tool_call_id" not in m:
        m = {**m, "tool_call_id": m.get("id")}  # tau2 names the call a result answers "id"
    return to_message(m, where)


def _tau2_trace(sim: Any, domain: str, tasks: dict[str, dict], doc: dict, ctx: Context) -> Trace:
    if not isinstance(sim, dict):
        raise RecordError(f"a simulation must be an object, got {type_name(sim)}")
    sim_id = id_of(sim.get("id"), "simulation 'id'")
    raw = sim.get("messages")
    if not isinstance(raw, list):
        raise RecordError(f"'messages' must be a list, got {type_name(raw)}")
    messages = [_tau2_message(m, f"messages[{i}]") for i, m in enumerate(raw)]
    task_id = sim.get("task_id")
    task_key = str(task_id)
    if domain == "telecom":
        m = re.match(r"\[([^\]]+)\]", task_key)
        intent = m.group(1) if m else task_key
    else:
        criteria = (tasks.get(task_key) or {}).get("evaluation_criteria") or {}
        actions = (criteria.get("actions") or []) if isinstance(criteria, dict) else []
        intent = write_actions(action_names(actions))
    reward_info = sim.get("reward_info") if isinstance(sim.get("reward_info"), dict) else {}
    start = time_of(sim.get("start_time"), "'start_time'")
    end = time_of(sim.get("end_time"), "'end_time'")
    started_at = (
        start or time_of(sim.get("timestamp"), "'timestamp'") or time_of(doc.get("timestamp"), "'timestamp'") or ctx.now
    )
    termination = sim.get("termination_reason")
    root = Span(
        id="task",
        type="task",
        name=f"tau2 {domain} task {task_key}",
        start_time=start.timestamp() if start else None,
        end_time=end.timestamp() if end else None,
        metadata={"termination_reason": termination} if isinstance(termination, str) and termination else {},
    )
    llm = Span(id="llm", type="llm", parent_id="task", name="agent", input=messages, start_time=root.start_time,
               metadata=_agent_usage(raw, doc, sim))
    spans = [root, llm]
    reward = reward_info.get("reward")
    if isinstance(reward, (int, float)) and not isinstance(reward, bool):  # an outcome score, never facet text
        spans.append(Span(id="reward", type="score", parent_id="task", name="reward", output={"score": float(reward)}))
    return Trace(
        trace_id=f"tau2/{domain}/{sim_id}",
        project=ctx.project_for(sim.get("project", doc.get("project")), f"tau2-{domain}"),
        started_at=started_at,
        spans=spans,
        format="tau2-bench",
        labels={
            "domain": domain,
            "intent": intent,
            "reward": reward_info.get("reward"),
            "termination_reason": sim.get("termination_reason"),
            "task_id": task_id,
        },
    )


def _agent_usage(raw: list, doc: dict, sim: dict) -> dict[str, Any]:
    """The agent's model, calls, tokens and cost (the user simulator's are not the agent's)."""
    calls = input_tokens = output_tokens = 0
    for m in raw:
        if isinstance(m, dict) and m.get("role") == "assistant":
            calls += 1
            usage = m.get("usage") if isinstance(m.get("usage"), dict) else {}
            input_tokens += _int(usage.get("prompt_tokens"))
            output_tokens += _int(usage.get("completion_tokens"))
    meta: dict[str, Any] = {"llm_calls": calls}
    if input_tokens or output_tokens:
        meta["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    agent = (doc.get("info") or {}).get("agent_info") if isinstance(doc.get("info"), dict) else None
    if isinstance(agent, dict) and isinstance(agent.get("llm"), str):
        meta["model"] = agent["llm"]
    cost = sim.get("agent_cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        meta["cost_usd"] = float(cost)
    return meta


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0
