"""Input tokens of one facet call per trace: 5 facets vs 1 facet on the same traces.

Why: a trace's tokens should be paid once however many facets are configured; each extra facet
costs only its own prompt line and schema entry. Naive per-facet calls would pay ~5x.

How: traces are ingested and preprocessed for real, then `facet_days` runs against a
loopback OpenAI-compatible server (FakeLLMServer) with 1 facet (task) and then 5 facets (task,
sentiment, issues, an enum and a 1-5 score) on the same store. Input tokens are counted with
topics_assets.preprocess.tokens.count_tokens (o200k_base, the GPT-4o tokenizer) on the messages each request
actually carried, plus the response_format schema it carried (providers bill structured-output
schemas as input too, so counting it is the conservative choice). The server's own usage
figures (len/4) are printed beside them.

Datasets: real agent runs from ../shared/data (tau-bench airline, tau2-bench airline/retail/
telecom), and the project's synthetic traces, which are short (~300 tokens) and so show where
the fixed per-facet cost starts to matter.

    .venv/bin/python benchmarks/bench_facets_cost.py            # prints one JSON object
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parents[1]

from topics_assets.ingest.stage import ingest_paths  # noqa: E402
from topics_assets.preprocess.stage import preprocess_days  # noqa: E402
from topics_assets.facets.stage import facet_days  # noqa: E402
from topics_assets.config import FacetSpec, load_settings  # noqa: E402
from topics_assets.facets import facet_messages, facet_schema  # noqa: E402
from topics_assets.store import DuckDBStore  # noqa: E402
from topics_assets.demo import generate_traces, write_jsonl  # noqa: E402
from topics_assets.preprocess.tokens import count_tokens  # noqa: E402
from topics_assets.testing.llm_server import FakeLLMServer, schema_answer  # noqa: E402

TARGET_RATIO = 1.15
SHARED = REPO.parent / "shared" / "data"
REAL = [SHARED / "tau-bench" / "gpt-4o-airline.json", SHARED / "tau2-bench" / "gpt-4.1_airline.json",
        SHARED / "tau2-bench" / "gpt-4.1_retail.json", SHARED / "tau2-bench" / "gpt-4.1_telecom.json"]
CUSTOM = [
    FacetSpec("resolution", "How did the conversation end?", kind="enum",
              categories=["resolved", "escalated", "abandoned"]),
    FacetSpec("satisfaction", "How satisfied is the user at the end, from 1 (very unhappy) to 5 (delighted)?",
              kind="score"),
]


def request_tokens(body: dict) -> tuple[int, int]:
    """(message tokens, response_format schema tokens) of one chat request as sent."""
    msgs = sum(count_tokens(m["content"]) for m in body["messages"])
    fmt = body.get("response_format")
    return msgs, (count_tokens(json.dumps(fmt, separators=(",", ":"))) if fmt else 0)


def run(settings, store, days, server) -> dict:
    server.reset()
    t0 = time.monotonic()
    meta = facet_days(store=store, settings=settings, days=days).to_metadata()
    bodies = [b for _, b, _ in server.requests_to("/chat/completions")]
    msg = sch = 0
    for b in bodies:
        m, s = request_tokens(b)
        msg, sch = msg + m, sch + s
    return {"facets": settings.facet_names, "calls": meta["llm_calls"], "requests": len(bodies),
            "faceted": meta["faceted"], "failed": meta["failed"], "message_tokens": msg, "schema_tokens": sch,
            "input_tokens": msg + sch, "server_reported_input_tokens": meta["llm_input_tokens"],
            "seconds": round(time.monotonic() - t0, 2)}


def measure(name: str, paths: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as home, FakeLLMServer(chat_handler=schema_answer) as server:
        settings = load_settings(env={})
        settings.home = home
        settings.llm.model = "openai/test-model"
        settings.llm.api_base = server.url
        settings.llm.max_in_flight = 16
        os.environ["TOPICS_BENCH_KEY"] = "bench"
        settings.llm.api_key_env = "TOPICS_BENCH_KEY"
        store = DuckDBStore(settings.database_path)
        ingest = ingest_paths(store=store, settings=settings, paths=paths)
        days = ingest.days
        preprocess_days(store=store, settings=settings, days=days)
        traces = store.query_df("SELECT content, tokens_after FROM traces WHERE status = 'ok'")
        n = len(traces)
        trace_tokens = int(traces.tokens_after.sum())

        builtin = settings.facets
        settings.facets = [builtin[0]]
        one = run(settings, store, days, server)
        rerun = run(settings, store, days, server)  # the cache: no call at all
        settings.facets = builtin + CUSTOM
        five = run(settings, store, days, server)

        # What five separate single-facet calls per trace would have sent (the naive design).
        naive = 0
        for text in traces.content:
            for spec in settings.facets:
                msgs = facet_messages([spec], text)
                naive += sum(count_tokens(m["content"]) for m in msgs)
                naive += count_tokens(json.dumps({"type": "json_schema", "json_schema": {
                    "name": "facets", "schema": facet_schema([spec]), "strict": True}}, separators=(",", ":")))
        ratio = five["input_tokens"] / one["input_tokens"]
        fixed = (one["input_tokens"] - trace_tokens) / n  # prompt + framing + one facet, per call
        marginal = (five["input_tokens"] - one["input_tokens"]) / (4 * n)  # each extra facet, per call
        return {
            "dataset": name, "traces": n, "quarantined": ingest.quarantined,
            "mean_trace_tokens": round(trace_tokens / n, 1),
            "one_facet": one, "five_facets": five,
            "rerun_one_facet_calls": rerun["calls"], "rerun_one_facet_cache_hits": n - rerun["calls"],
            "ratio_5_vs_1": round(ratio, 4),
            "ratio_5_vs_1_messages_only": round(five["message_tokens"] / one["message_tokens"], 4),
            "ratio_5_vs_1_server_reported": round(five["server_reported_input_tokens"]
                                                  / one["server_reported_input_tokens"], 4),
            "naive_5_calls_input_tokens": naive, "naive_ratio_vs_1": round(naive / one["input_tokens"], 3),
            "per_call_overhead_tokens_1_facet": round(fixed, 1),
            "marginal_tokens_per_extra_facet": round(marginal, 1),
            # Mean trace length at which 5 facets cost exactly TARGET_RATIO x 1 facet.
            "break_even_trace_tokens": round(4 * marginal / (TARGET_RATIO - 1) - fixed, 0),
            "target_met": ratio <= TARGET_RATIO,
        }


def main() -> None:
    results = []
    real = [str(p) for p in REAL if p.exists()]
    if real:
        results.append(measure("real agent runs: tau-bench + tau2-bench", real))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.jsonl"
        write_jsonl(generate_traces(n_traces=300, days=3, seed=3), path)
        results.append(measure("synthetic (generate_traces, 300)", [str(path)]))
    primary = results[0]
    print(json.dumps({
        "benchmark": "facet input tokens, 5 facets vs 1 facet, one call per trace",
        "token_counter": "topics_assets.preprocess.tokens.count_tokens (o200k_base) over each request's message contents "
                         "plus its response_format JSON; server_reported is FakeLLMServer's len/4 estimate",
        "target": {"ratio_5_vs_1_at_most": TARGET_RATIO, "on": primary["dataset"]},
        "ratio_5_vs_1": primary["ratio_5_vs_1"],
        "target_met": primary["target_met"],
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
