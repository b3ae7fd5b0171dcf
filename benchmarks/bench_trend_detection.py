"""Trend detection on synthetic daily series: recall of planted spikes and false alerts on spike-free series.

Each series is one (project, facet) with `--topics` topics whose shares follow a Zipf law, observed for
`--baseline` days before `--judged` judged days, at a fixed daily volume (traces a day, all topics).
Day-to-day shares wobble beyond sampling noise (lognormal, `--wobble`), as real traffic does. A spiked
series multiplies one topic's share on one judged day by the spike size (the other topics give way
proportionally). Recall is the share of planted spikes flagged `rising` (or `new`) on their day, by spike
size and by the day's volume, and by the spiked topic's own baseline traces a day. False alerts are the
alerts of any kind on the spike-free series, per 100 judged topic-days.

    PYTHONPATH=$PWD python benchmarks/bench_trend_detection.py            # ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from topics_assets.config import InsightSettings
from topics_assets.insight.trends import detect

TOPIC_BUCKETS = [(0, 10), (10, 25), (25, 50), (50, 100), (100, 10**9)]


def series(rng: np.random.Generator, *, name: str, topics: int, days: int, volume: int, wobble: float,
           spike: tuple[int, int, float] | None) -> tuple[pd.DataFrame, float]:
    """One series' counts frame; with `spike` (day, topic, size) that topic's share is multiplied that day.
    Returns the frame and the spiked topic's expected baseline traces a day."""
    base = 1.0 / np.arange(1, topics + 1) ** 0.8
    base = rng.permutation(base / base.sum())
    rows, base_count = [], 0.0
    for d in range(days):
        p = base * np.exp(rng.normal(0.0, wobble, topics))
        p /= p.sum()
        if spike is not None and d == spike[0]:
            t, size = spike[1], spike[2]
            target = min(p[t] * size, 0.95)
            rest = np.delete(np.arange(topics), t)
            p[rest] *= (1 - target) / p[rest].sum()
            p[t] = target
        counts = rng.multinomial(volume, p)
        failures = rng.binomial(counts, 0.1)
        day = (pd.Timestamp("2026-01-01") + pd.Timedelta(days=d)).strftime("%Y-%m-%d")
        rows += [{"project": name, "facet": "task", "day": day, "topic_id": f"task-{i:03d}", "traces": int(c),
                  "failures": int(fl), "first_seen": False} for i, (c, fl) in enumerate(zip(counts, failures)) if c]
    if spike is not None:
        base_count = float(base[spike[1]] * volume)
    return pd.DataFrame(rows), base_count


def run(args) -> dict:
    params = InsightSettings(baseline_days=args.baseline, alpha=args.alpha)
    days = args.baseline + args.judged
    judged_days = [(pd.Timestamp("2026-01-01") + pd.Timedelta(days=d)).strftime("%Y-%m-%d")
                   for d in range(args.baseline, days)]
    t0 = time.monotonic()
    hits = []  # (size, volume, topic traces a day, detected)
    false_alerts, topic_days = {}, {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        for volume in args.volumes:
            frames, planted = [], {}
            for s in range(args.series):
                frame, _ = series(rng, name=f"null-{s}", topics=args.topics, days=days, volume=volume,
                                  wobble=args.wobble, spike=None)
                frames.append(frame)
            null = detect(pd.concat(frames, ignore_index=True), params, days=judged_days)
            false_alerts[volume] = false_alerts.get(volume, 0) + len(null)
            topic_days[volume] = topic_days.get(volume, 0) + args.series * args.topics * args.judged
            frames = []
            for size in args.sizes:
                for s in range(args.series):
                    day = int(rng.integers(args.baseline, days))
                    topic = int(rng.integers(args.topics))
                    name = f"spike-{size}-{s}"
                    frame, per_day = series(rng, name=name, topics=args.topics, days=days, volume=volume,
                                            wobble=args.wobble, spike=(day, topic, size))
                    frames.append(frame)
                    planted[name] = (size, volume, per_day, judged_days[day - args.baseline], f"task-{topic:03d}")
            alerts = detect(pd.concat(frames, ignore_index=True), params, days=judged_days)
            found = set(zip(alerts.project[alerts.kind.isin(["rising", "new"])],
                            alerts.day[alerts.kind.isin(["rising", "new"])],
                            alerts.topic_id[alerts.kind.isin(["rising", "new"])]))
            for name, (size, vol, per_day, day, topic) in planted.items():
                hits.append((size, vol, per_day, (name, day, topic) in found))
    hits_df = pd.DataFrame(hits, columns=["size", "volume", "topic_per_day", "detected"])

    def bucket(x: float) -> str:
        lo, hi = next((lo, hi) for lo, hi in TOPIC_BUCKETS if lo <= x < hi)
        return f"{lo}+" if hi > 10**8 else f"{lo}-{hi}"

    hits_df["topic_bucket"] = hits_df.topic_per_day.map(bucket)
    by_volume = {f"{size}x": {str(v): round(float(g.detected.mean()), 3) for v, g in sg.groupby("volume")}
                 for size, sg in hits_df.groupby("size")}
    by_topic = {f"{size}x": {b: {"recall": round(float(g.detected.mean()), 3), "spikes": len(g)}
                             for b, g in sg.groupby("topic_bucket")}
                for size, sg in hits_df.groupby("size")}
    goal = hits_df[(hits_df["size"] == 2.0) & (hits_df.topic_per_day >= 50)]
    total_fa, total_td = sum(false_alerts.values()), sum(topic_days.values())
    return {
        "params": params.model_dump(exclude={"pass_marks", "default_pass_mark"}),
        "setup": {"seeds": args.seeds, "series_per_cell": args.series, "topics": args.topics,
                  "baseline_days": args.baseline, "judged_days": args.judged, "volumes_per_day": args.volumes,
                  "spike_sizes": args.sizes, "wobble_sd": args.wobble,
                  "spikes": len(hits_df), "null_topic_days": total_td},
        "recall_by_size_and_day_volume": by_volume,
        "recall_by_size_and_topic_traces_per_day": by_topic,
        "goal_recall_2x_topic_50plus_per_day": {"recall": round(float(goal.detected.mean()), 4) if len(goal) else None,
                                               "spikes": len(goal), "target": 0.95},
        "goal_recall_2x_day_volume_50plus": round(float(hits_df[hits_df["size"] == 2.0].detected.mean()), 4),
        "false_alerts_per_100_topic_days": round(100 * total_fa / total_td, 3),
        "false_alerts_per_100_topic_days_by_volume": {str(v): round(100 * false_alerts[v] / topic_days[v], 3)
                                                      for v in args.volumes},
        "false_alert_target": 1.0,
        "seconds": round(time.monotonic() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--series", type=int, default=40, help="series per (seed, volume, spike size)")
    ap.add_argument("--topics", type=int, default=20)
    ap.add_argument("--baseline", type=int, default=14)
    ap.add_argument("--judged", type=int, default=14)
    ap.add_argument("--volumes", type=int, nargs="+", default=[50, 100, 200, 500, 1000, 2000])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.5, 2.0, 3.0])
    ap.add_argument("--alpha", type=float, default=InsightSettings().alpha)
    ap.add_argument("--wobble", type=float, default=0.1, help="day-to-day lognormal sd of each topic's share")
    print(json.dumps(run(ap.parse_args()), indent=2))


if __name__ == "__main__":
    main()
