"""Topic identity under resampling on banking77: regenerate on a different 80% sample and report the
share of texts whose topic kept its id (target >= 0.90). Prints one JSON object.

    python benchmarks/bench_identity.py [--quick]
"""

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from topics_assets.config import ClusterSettings
from topics_assets.embed import LocalEmbedder
from topics_assets.topics.stability import resample_kept_share

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 texts per intent instead of the whole train split")
    parser.add_argument("--pairs", type=int, default=3, help="sample pairs to measure")
    args = parser.parse_args()
    train = pd.read_csv(DATA / "train.csv")
    if args.quick:
        train = train.groupby("category").head(60).reset_index(drop=True)
    t0 = time.monotonic()
    vectors = LocalEmbedder().embed(train.text.tolist())
    embed_s = time.monotonic() - t0
    runs = []
    for i in range(args.pairs):
        t = time.monotonic()
        r = resample_kept_share(vectors, train.text.tolist(), ClusterSettings(), 2 * i + 1, 2 * i + 2)
        runs.append({**r, "seconds": round(time.monotonic() - t, 1)})
    shares = [r["kept_share"] for r in runs]
    print(json.dumps({"benchmark": "identity under 80% resampling", "texts": len(train),
                      "embed_seconds": round(embed_s, 1), "runs": runs, "kept_share_min": round(min(shares), 4),
                      "kept_share_mean": round(sum(shares) / len(shares), 4), "target": 0.9,
                      "target_met": min(shares) >= 0.9}, indent=2))


if __name__ == "__main__":
    main()
