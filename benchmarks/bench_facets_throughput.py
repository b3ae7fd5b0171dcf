"""Facet throughput against a slow LLM: traces/s through `facet_days` with 32 calls in flight.

Why: with a real provider every call waits on the network and the model, so throughput comes from
concurrency, not from the client. At 250 ms a call and 32 in flight the ceiling is 128 traces/s;
what the client spends per call (litellm request building, parsing, pricing, our validation,
DuckDB writes) comes off that ceiling, and under the GIL it adds up.

How: synthetic traces are ingested and preprocessed (not timed); an OpenAI-compatible server
(`python -m topics_assets.testing.llm_server --latency 0.25`) runs in its own process so it does not
share this process's GIL; then `facet_days` is timed end to end (reads, every LLM call
through litellm, validation, writes to the DuckDB file). litellm is imported before the clock
starts. The machine's load average is printed: on a shared box other processes take CPU too.

    .venv/bin/python benchmarks/bench_facets_throughput.py [--traces 2000] [--latency 0.25] [--in-flight 32]
        [--model openai/gpt-4o-mini]   # priced in litellm's map, so cost is tracked as in production
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from topics_assets.ingest.stage import ingest_paths  # noqa: E402
from topics_assets.preprocess.stage import preprocess_days  # noqa: E402
from topics_assets.facets.stage import facet_days  # noqa: E402
from topics_assets.config import load_settings  # noqa: E402
from topics_assets.llm.client import litellm_module  # noqa: E402
from topics_assets.store import DuckDBStore  # noqa: E402
from topics_assets.demo import generate_traces, write_jsonl  # noqa: E402

TARGET_TRACES_PER_S = 100.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--model", default="openai/gpt-4o-mini",
                        help="litellm model name sent to the loopback server; gpt-4o-mini is priced, so cost is tracked")
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "topics_assets.testing.llm_server", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as home:
            settings = load_settings(env={})
            settings.home = home
            settings.llm.model = args.model
            settings.llm.api_base = url
            settings.llm.max_in_flight = args.in_flight
            os.environ["TOPICS_BENCH_KEY"] = "bench"
            settings.llm.api_key_env = "TOPICS_BENCH_KEY"
            store = DuckDBStore(settings.database_path)
            path = Path(home) / "traces.jsonl"
            write_jsonl(generate_traces(n_traces=args.traces, days=7, seed=21), path)
            days = ingest_paths(store=store, settings=settings, paths=[str(path)]).days
            preprocess_days(store=store, settings=settings, days=days)
            litellm_module()

            load_before = os.getloadavg()[0]
            cpu0, t0 = time.process_time(), time.monotonic()
            meta = facet_days(store=store, settings=settings, days=days).to_metadata()
            wall = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            rows = store.query_df("SELECT count(*) n FROM facets WHERE engine = 'llm'").n[0]
            t1 = time.monotonic()
            rerun = facet_days(store=store, settings=settings, days=days).to_metadata()
            rerun_wall = time.monotonic() - t1
    finally:
        server.kill()
        server.wait()

    rate = meta["faceted"] / wall
    ceiling = args.in_flight / args.latency
    print(json.dumps({
        "benchmark": "facet_days throughput against a loopback LLM server (own process)",
        "traces": meta["traces"], "faceted": meta["faceted"], "failed": meta["failed"],
        "facets_per_trace": len(settings.facets), "facet_rows_written": int(rows),
        "latency_s": args.latency, "max_in_flight": args.in_flight,
        "model": args.model, "llm_calls": meta["llm_calls"], "llm_requests": meta["llm_requests"],
        "llm_input_tokens": meta["llm_input_tokens"], "llm_cost_usd": round(meta["llm_cost"], 6),
        "seconds": round(wall, 2), "traces_per_s": round(rate, 1),
        "ceiling_traces_per_s": round(ceiling, 1), "share_of_ceiling": round(rate / ceiling, 3),
        "client_cpu_ms_per_trace": round(1000 * cpu / max(1, meta["faceted"]), 2),
        "rerun_llm_calls": rerun["llm_calls"], "rerun_seconds": round(rerun_wall, 2),
        "load_average_1m_before": round(load_before, 2), "cpus": os.cpu_count(),
        "target": {"traces_per_s_at_least": TARGET_TRACES_PER_S, "latency_s": 0.25, "max_in_flight": 32},
        "target_met": rate >= TARGET_TRACES_PER_S,
    }, indent=2))


if __name__ == "__main__":
    main()
