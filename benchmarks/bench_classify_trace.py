"""Latency of labelling ONE trace now (`Classifier.classify`), offline: extractive facets, local embedding.

Each trace is a raw JSON line, classified alone (no batching): parse -> preprocess -> facet -> embed ->
nearest centroid of every text facet's current map. The maps come from a store the pipeline built: a
`topics demo` home given with --home, else a store built here from the demo generator with the stage
functions (`topics demo`'s steps without Dagster). The traces are new ones (another seed), so their facet
texts are not those the maps were fitted on. After --warmup traces, p50 / p90 / p99 per trace (wall time), and
the same of the process's CPU time per trace (what the trace costs, less what other work on a shared machine
adds to the wall time); `load_avg_1m` says how busy the machine was.

    python benchmarks/bench_classify_trace.py [--home DIR] [--traces 300] [--warmup 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def build_store(home: str, n: int, project: str):
    """The demo's steps on n generated traces, with the default map components (UMAP + HDBSCAN)."""
    from topics_assets.config import load_settings
    from topics_assets.demo import generate_traces, write_jsonl
    from topics_assets.embed.stage import embed_days
    from topics_assets.facets.stage import facet_days
    from topics_assets.ingest.stage import ingest_paths
    from topics_assets.preprocess.stage import preprocess_days
    from topics_assets.store import open_store
    from topics_assets.topics.stage import classify_days, generate_topic_map

    settings = load_settings(env={})
    settings.home = home
    store = open_store(settings.database_path)
    path = os.path.join(home, "traces.jsonl")
    write_jsonl(generate_traces(n_traces=n, days=7, seed=7, project=project), path)
    days = ingest_paths(store=store, settings=settings, paths=[path]).days
    for stage in (preprocess_days, facet_days, embed_days):
        stage(store=store, settings=settings, days=days)
    for facet in settings.text_facet_names:
        generate_topic_map(store=store, settings=settings, project=project, facet=facet, force=True)
    classify_days(store=store, settings=settings, days=days)
    return store, settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="a TOPICS_HOME a `topics demo` filled (default: build a store here)")
    ap.add_argument("--project", default="acme-support")
    ap.add_argument("--build-traces", type=int, default=600, help="traces in the store built here")
    ap.add_argument("--traces", type=int, default=300, help="traces timed, after the warm-up")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--seed", type=int, default=99, help="seed of the classified traces")
    args = ap.parse_args()

    from topics_assets.config import load_settings
    from topics_assets.demo import generate_traces
    from topics_assets.store import open_store
    from topics_assets.topics.classifier import Classifier

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.home:
            settings = load_settings(env={})
            settings.home = args.home
            store = open_store(settings.database_path)
        else:
            store, settings = build_store(tmp, args.build_traces, args.project)
        build_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        clf = Classifier.from_store(store, settings, project=args.project)
        load_s = time.perf_counter() - t1
        lines = [json.dumps(r) for r in generate_traces(n_traces=args.warmup + args.traces, days=7, seed=args.seed,
                                                        project=args.project)]
        for line in lines[:args.warmup]:
            clf.classify(line)
        times, cpu, no_match = [], [], 0
        for line in lines[args.warmup:]:
            t, c = time.perf_counter(), time.process_time()
            labels = clf.classify(line)
            times.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
            no_match += sum(lab.no_match for lab in labels.labels.values())
    ms, cpu_ms = np.asarray(times), np.asarray(cpu)
    print(json.dumps({
        "benchmark": "classify one trace (offline: extractive facets, local embedding)",
        "store": args.home or f"built here: {args.build_traces} demo traces, default map components",
        "facets": list(clf.maps), "topics": {f: len(m.topic_ids) for f, m in clf.maps.items()},
        "traces": len(ms), "warmup": args.warmup,
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2),
        "max_ms": round(float(ms.max()), 2),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 2), "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 2),
        "no_match_share": round(no_match / (len(ms) * len(clf.maps)), 4),
        "goal": {"p50_ms": 20, "p99_ms": 50}, "load_s": round(load_s, 3), "build_s": round(build_s, 1),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
