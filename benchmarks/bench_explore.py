"""The explorer's first paint and the report's size at 50,000 map points.

Builds a store whose map generation has 50,000 points (synthetic rows written through the store API:
traces, facets, outcomes, a generation with its topics and 2-D layout, classifications), serves the
explorer on loopback, and times in headless chromium (Playwright) from navigation to the map drawn
(the `topics:map-drawn` performance mark the page sets once its canvas holds every point). Then writes
`topics report` for the same store and times its own first paint from file://. Prints one JSON object.

    python benchmarks/bench_explore.py                  # 50,000 points, 60 topics, 14 days
    python benchmarks/bench_explore.py --points 5000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROJECT, FACET = "bench", "task"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
VERBS = ["reset", "cancel", "refund", "upgrade", "track", "change", "return", "renew", "transfer", "verify",
         "close", "open", "update", "dispute", "book"]
NOUNS = ["password", "order", "subscription", "flight", "card", "account", "parcel", "invoice", "plan",
         "address", "payment", "booking", "device", "warranty", "loan"]
WHY = ["after a failed payment", "because the app shows an error", "before the billing date", "after moving house",
       "since the last update", "for a family member", "after a delayed delivery", "because of a duplicate charge",
       "while travelling abroad", "after the promo ended"]


def build_store(home: Path, n_points: int, n_topics: int, n_days: int, seed: int = 0):
    from topics_assets.store import open_store

    rng = np.random.default_rng(seed)
    store = open_store(str(home / "topics.duckdb"))
    days = [str(d.date()) for d in pd.date_range("2026-11-01", periods=n_days)]
    ids = [f"t{i:06d}" for i in range(n_points)]
    topic_of = rng.integers(0, n_topics, n_points)
    day_of = rng.integers(0, n_days, n_points)
    failed = rng.random(n_points) < 0.1
    verb = [VERBS[t % len(VERBS)] for t in range(n_topics)]
    noun = [NOUNS[(t * 7) % len(NOUNS)] for t in range(n_topics)]
    texts = [f"The user asks the agent to {verb[t]} their {noun[t]} {WHY[rng.integers(len(WHY))]}, and wants "
             f"it done today (case {i}, ref {rng.integers(10**6)})." for i, t in enumerate(topic_of)]
    now = pd.Timestamp.now(tz="UTC")
    traces, facets, outcomes = [], [], []
    for i, tid in enumerate(ids):
        day = days[day_of[i]]
        turns = [f"[user] {texts[i]}"]
        for _ in range(7):  # a trace's text that compresses about as well as real ones (no repeated turns)
            v, n, w = rng.integers(len(VERBS)), rng.integers(len(NOUNS)), rng.integers(len(WHY))
            turns.append(f"[assistant] I can {VERBS[v]} the {NOUNS[n]} {WHY[w]}; reference {rng.integers(10**9)}, "
                         f"amount {rng.integers(10**5) / 100:.2f}, ticket #{rng.integers(10**6)}.")
        content = "\n".join(turns)
        traces.append({"trace_id": tid, "project": PROJECT, "day": day, "started_at": pd.Timestamp(day, tz="UTC"),
                       "format": "chat", "version": 1, "payload_hash": tid, "content": content, "content_hash": tid,
                       "n_spans": 0, "n_messages": 16, "tokens_before": 400, "tokens_after": 400, "truncated": False,
                       "redactions": 0, "status": "ok", "error": None, "preprocessed_at": now,
                       "preprocess_hash": "bench"})
        facets.append({"trace_id": tid, "facet": FACET, "project": PROJECT, "day": day, "text": texts[i],
                       "text_hash": tid, "engine": "bench", "model": "bench", "content_hash": tid,
                       "facets_hash": "bench", "created_at": now})
        outcomes.append({"project": PROJECT, "trace_id": tid, "day": day, "status": "error" if failed[i] else "ok",
                         "n_errors": int(failed[i]), "error_kinds": [], "errors": "[]", "failed_tools": [],
                         "termination_reason": None, "abnormal_end": False, "scores": "{}", "duration_s": 1.0,
                         "llm_calls": 1, "input_tokens": 100, "output_tokens": 50, "cost_usd": 0.0,
                         "cost_source": None, "models": [], "tools": [], "agents": []})
    keys = [(PROJECT, t) for t in ids]
    store.replace_traces(days, traces, keys)
    store.write_facets(days, facets, [], keys)
    store.replace_outcomes(days, outcomes, keys)
    # The 2-D layout: one blob per topic.
    centres = rng.normal(0, 10, (n_topics, 2))
    xy = centres[topic_of] + rng.normal(0, 1.0, (n_points, 2))
    topic_ids = [f"{FACET}-{t + 1:03d}" for t in range(n_topics)]
    noise = rng.random(n_points) < 0.05
    point_topic = np.where(noise, "no_match", np.array(topic_ids, dtype=object)[topic_of])
    sizes = pd.Series(point_topic).value_counts()
    topics = [{"project": PROJECT, "facet": FACET, "generation": 1, "topic_id": tid, "name": f"{verb[t]} {noun[t]}",
               "description": f"Requests to {verb[t]} a {noun[t]}.", "keywords": [verb[t], noun[t]],
               "size": int(sizes.get(tid, 0)), "centroid": rng.normal(size=16).astype(np.float32).tolist(),
               "examples": [texts[int(np.flatnonzero(topic_of == t)[0])]], "status": "active", "threshold": 0.5}
              for t, tid in enumerate(topic_ids)]
    info = {"project": PROJECT, "facet": FACET, "generation": 1, "embedding_model": "bench", "naming_engine": "bench",
            "n_facets": n_points, "n_sampled": n_points, "n_topics": n_topics, "noise_share": float(noise.mean()),
            "threshold": 0.5, "params": {}}
    points = pd.DataFrame({"trace_id": ids, "x": xy[:, 0], "y": xy[:, 1], "topic_id": point_topic, "text": texts})
    store.write_generation(info, topics, expected_previous=None, points=points)
    labels = pd.DataFrame({"trace_id": ids, "topic_id": point_topic, "distance": rng.random(n_points).round(4),
                           "day": np.array(days)[day_of]})
    store.write_classifications(PROJECT, FACET, 1, days, labels)
    return store


def serve(store):
    import uvicorn

    from topics_assets.explore.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}/"


def first_paints(url: str, n: int, expect: int) -> list[float]:
    """ms from navigation start to the `topics:map-drawn` mark, each in a fresh browser context (no cache)."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            for _ in range(n):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(url, wait_until="commit")
                page.wait_for_selector("canvas#map[data-drawn]", timeout=120_000)
                drawn = int(page.get_attribute("canvas#map", "data-drawn"))
                assert drawn == expect, f"{drawn} points drawn, expected {expect}"
                out.append(round(page.evaluate("performance.getEntriesByName('topics:map-drawn')[0].startTime"), 1))
                context.close()
        finally:
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50_000)
    ap.add_argument("--topics", type=int, default=60)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--loads", type=int, default=3, help="page loads timed (the median is reported)")
    args = ap.parse_args()
    from topics_assets.explore.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        store = build_store(Path(tmp), args.points, args.topics, args.days)
        build_s = time.monotonic() - t0
        server, url = serve(store)
        try:
            import urllib.request

            t0 = time.monotonic()
            body = urllib.request.urlopen(f"{url}api/points?facet={FACET}&project={PROJECT}").read()
            points_api_s = time.monotonic() - t0
            paints = first_paints(f"{url}#/?project={PROJECT}&facet={FACET}", args.loads, args.points)
        finally:
            server.should_exit = True
        t0 = time.monotonic()
        info = write_report(store, Path(tmp) / "report.html")
        report_s = time.monotonic() - t0
        from topics_assets.explore.report import read_payload

        json_bytes = len(json.dumps(read_payload(Path(info["path"]).read_text()), separators=(",", ":"),
                                    ensure_ascii=False).encode())
        report_paints = first_paints(Path(info["path"]).as_uri() + f"#/?project={PROJECT}&facet={FACET}",
                                     args.loads, args.points)
    result = {
        "points": args.points, "topics": args.topics, "days": args.days, "store_build_s": round(build_s, 1),
        "explorer": {"first_paint_ms_median": statistics.median(paints), "first_paint_ms": paints,
                     "points_api_bytes": len(body), "points_api_s": round(points_api_s, 2)},
        "report": {"bytes": info["bytes"], "mb": round(info["bytes"] / 1e6, 2), "build_s": round(report_s, 1),
                   "data_json_mb_uncompressed": round(json_bytes / 1e6, 2),
                   "trace_pages": info["n_traces"], "traces_per_topic": info["traces_per_topic"],
                   "point_text_chars": info["point_text_chars"],
                   "first_paint_ms_median": statistics.median(report_paints), "first_paint_ms": report_paints},
        "targets": {"first_paint_ms": 2000, "report_bytes": 10_000_000},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    result["ok"] = (result["explorer"]["first_paint_ms_median"] < 2000 and info["bytes"] < 10_000_000
                    and result["report"]["first_paint_ms_median"] < 2000)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
