"""Facet throughput by store: DuckDB with its single writer against PostgreSQL with 4 day-runs at once.

Why: DuckDB allows one writing process, so day partitions queue behind one pool slot and a
backfill's LLM calls are only ever `llm.max_in_flight` at a time. On PostgreSQL several runs
write at once, so the in-flight calls (and the client CPU under each process's own GIL) add up.

How: 2,000 synthetic traces over 8 days are ingested and preprocessed into each store (not
timed). An OpenAI-compatible server answering in 250 ms runs in its own process. Each "run" is a
separate OS process, as Dagster's run launcher makes them; workers import everything and wait
for one start signal, so start-up is not timed. DuckDB: one run per day, one after another (the
pool's limit of 1). PostgreSQL: 4 runs at once, 2 days each. Each run uses the same settings
(`llm.max_in_flight`, default 8). A throwaway PostgreSQL server is started and removed.

    .venv/bin/python benchmarks/bench_backends.py [--traces 2000] [--days 8] [--runs 4] [--in-flight 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from topics_assets.config import load_settings  # noqa: E402
from topics_assets.demo import generate_traces, write_jsonl  # noqa: E402
from topics_assets.ingest.stage import ingest_paths  # noqa: E402
from topics_assets.preprocess.stage import preprocess_days  # noqa: E402
from topics_assets.store import open_store  # noqa: E402
from topics_assets.testing.postgres import LocalPostgres  # noqa: E402

KEY_ENV = "TOPICS_BENCH_KEY"


def _settings(home: str, database: str, url: str, in_flight: int):
    os.environ[KEY_ENV] = "bench"
    settings = load_settings(env={})
    settings.home = home
    settings.database = database
    settings.llm.model = "openai/gpt-4o-mini"
    settings.llm.api_base = url
    settings.llm.api_key_env = KEY_ENV
    settings.llm.max_in_flight = in_flight
    return settings


def _worker(database: str, home: str, url: str, in_flight: int, day_groups: list[list[str]], ready, go, out) -> None:
    """One run per group of days, in order; reports (faceted, wall, cpu) per run."""
    from topics_assets.facets.stage import facet_days
    from topics_assets.llm.client import litellm_module

    litellm_module()
    settings = _settings(home, database, url, in_flight)
    store = open_store(database)
    ready.put(os.getpid())
    go.wait()
    for days in day_groups:
        t0, c0 = time.monotonic(), time.process_time()
        res = facet_days(store=store, settings=settings, days=days)
        out.put({"days": days, "faceted": res.faceted, "failed": res.failed,
                 "wall_s": time.monotonic() - t0, "cpu_s": time.process_time() - c0})


def _prepare(database: str, home: str, url: str, in_flight: int, path: Path) -> list[str]:
    settings = _settings(home, database, url, in_flight)
    store = open_store(database)
    days = ingest_paths(store=store, settings=settings, paths=[str(path)]).days
    preprocess_days(store=store, settings=settings, days=days)
    return days


def _measure(database: str, home: str, url: str, in_flight: int, plan: list[list[list[str]]]) -> dict:
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(database, home, url, in_flight, groups, ready, go, out))
             for groups in plan]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has imported litellm and opened the store
        ready.get(timeout=300)
    n_runs = sum(len(g) for g in plan)
    t0 = time.monotonic()
    go.set()
    runs = [out.get(timeout=1800) for _ in range(n_runs)]
    wall = time.monotonic() - t0
    for p in procs:
        p.join()
    faceted = sum(r["faceted"] for r in runs)
    return {"runs": len(runs), "processes_at_once": len(plan), "faceted": faceted,
            "failed": sum(r["failed"] for r in runs), "seconds": round(wall, 2),
            "traces_per_s": round(faceted / wall, 1),
            "client_cpu_ms_per_trace": round(1000 * sum(r["cpu_s"] for r in runs) / max(1, faceted), 2),
            "run_wall_s": [round(r["wall_s"], 2) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--runs", type=int, default=4, help="PostgreSQL runs at once")
    parser.add_argument("--in-flight", type=int, default=8, help="llm.max_in_flight of every run")
    parser.add_argument("--latency", type=float, default=0.25)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "topics_assets.testing.llm_server", "--latency",
                               str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as pg:
            path = Path(tmp) / "traces.jsonl"
            write_jsonl(generate_traces(n_traces=args.traces, days=args.days, seed=21), path)
            results = {}
            for name, database in (("duckdb", str(Path(tmp) / "duck" / "topics.duckdb")),
                                   ("postgres", pg.create_database("bench"))):
                home = str(Path(tmp) / name)
                days = _prepare(database, home, url, args.in_flight, path)
                if name == "duckdb":
                    plan = [[[d] for d in days]]  # one process, one day-run after another
                else:
                    plan = [[[d] for d in days[i::args.runs]] for i in range(args.runs)]  # runs at once
                results[name] = _measure(database, home, url, args.in_flight, plan)
                results[name]["days"] = len(days)
    finally:
        server.kill()
        server.wait()

    speedup = results["postgres"]["traces_per_s"] / max(1e-9, results["duckdb"]["traces_per_s"])
    ceiling_one = args.in_flight / args.latency
    print(json.dumps({
        "benchmark": "facet_days by store: DuckDB single writer vs PostgreSQL runs at once",
        "traces": args.traces, "days": args.days, "latency_s": args.latency, "max_in_flight_per_run": args.in_flight,
        "duckdb": results["duckdb"], "postgres": results["postgres"],
        "speedup": round(speedup, 2),
        "llm_ceiling_traces_per_s": {"one_run": ceiling_one, f"{args.runs}_runs": ceiling_one * args.runs},
        "cpus": os.cpu_count(), "load_average_1m_after": round(os.getloadavg()[0], 2),
        "peak_rss_mb_this_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target": {"speedup_at_least": 2.0}, "target_met": speedup >= 2.0,
    }, indent=2))


if __name__ == "__main__":
    main()
