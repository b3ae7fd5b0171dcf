"""A cold `topics demo` on 1,000 traces: a fresh process and a fresh store, wall time including every
import (Dagster, DuckDB, onnxruntime, umap/numba with its on-disk JIT cache).

Peer in the same run: the same demo with the plain PyTorch embedder (sentence-transformers), i.e.
what the runtime choice buys. `--first-run` adds a run with an empty numba cache (what the very
first demo on a machine pays for compiling UMAP's kernels).

    python benchmarks/bench_demo.py [--first-run]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOPICS = Path(sys.executable).parent / "topics"


def demo(n: int, extra_env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TOPICS_HOME": home, "DAGSTER_HOME": str(Path(home) / "dagster"), **extra_env}
        env.pop("TOPICS_CONFIG", None)
        Path(env["DAGSTER_HOME"]).mkdir()
        t0 = time.perf_counter()
        out = subprocess.run([str(TOPICS), "demo", "--traces", str(n)], cwd=home, env=env,
                             capture_output=True, text=True)
        secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"demo failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return {"wall_s": round(secs, 1), "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=1000)
    ap.add_argument("--first-run", action="store_true", help="also time a run with an empty numba cache")
    args = ap.parse_args()
    demo(50, {})  # fills the numba cache if this machine never ran UMAP (not timed)
    result = {"benchmark": "cold_demo", "traces": args.traces,
              "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "ours": demo(args.traces, {}),
              "pytorch_embedder": demo(args.traces, {"TOPICS_EMBEDDING_MODEL": "local:all-MiniLM-L6-v2"})}
    if args.first_run:
        with tempfile.TemporaryDirectory() as cache:
            result["ours_empty_numba_cache"] = demo(args.traces, {"NUMBA_CACHE_DIR": cache})
    result["target"] = "cold demo on 1,000 traces < 60 s wall, imports included"
    result["met"] = result["ours"]["wall_s"] < 60
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
