"""Redaction benchmark: planted secrets through ingest + preprocess, and false positives on clean text.

    python benchmarks/bench_redaction.py            # all kinds x placements, 2,000 + 2,000 clean texts
    python benchmarks/bench_redaction.py --quick    # 500 + 500 clean texts

1. The planted corpus (topics_assets.testing.planted: 50+ kinds x 6 placements: message text, tool
   arguments, tool results, system prompt at its shortening point, OTLP attributes, JSON escaped
   twice) is ingested into a fresh DuckDB store and preprocessed with the default settings. A
   secret leaks when it (or either half of it, for secrets of 16+ characters) is found in the
   preprocessed text (what a facet model reads) or in raw_traces.payload (store_raw=redacted), after
   NFKC normalisation and zero-width removal. Prints the kind x placement table ("ok" / "LEAK").
2. False positives: the share of clean texts (banking77 requests, tau-bench user and assistant
   messages, from ../shared/data) that redaction changes at all, and by which kinds. Goal <= 1%.
   tau-bench's simulated users carry real-looking e-mails and ids; changes by EMAIL are counted
   apart (true positives), the rate is given with and without them.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from topics_assets.config import load_settings  # noqa: E402
from topics_assets.ingest.stage import ingest_paths  # noqa: E402
from topics_assets.preprocess.redact import normalise, redact  # noqa: E402
from topics_assets.preprocess.stage import preprocess_days  # noqa: E402
from topics_assets.store import DuckDBStore  # noqa: E402
from topics_assets.testing.planted import KINDS, PLACEMENTS, trace_id, write_corpus  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def leaked(secret: str, text: str) -> bool:
    seen = normalise(text)
    s = normalise(secret)
    if s in seen:
        return True
    return len(s) >= 16 and (s[: len(s) // 2] in seen or s[len(s) // 2:] in seen)


def planted_table(tmp: Path) -> dict:
    corpus = write_corpus(tmp / "corpus")
    settings = load_settings(env={})
    settings.home = str(tmp / "home")
    settings.partitions_start = "2020-01-01"
    store = DuckDBStore(settings.database_path)
    t0 = time.perf_counter()
    ing = ingest_paths(store=store, settings=settings, paths=sorted(str(p) for p in (tmp / "corpus").iterdir()))
    pre = preprocess_days(store=store, settings=settings, days=ing.days)
    seconds = time.perf_counter() - t0
    traces = store.query_df("SELECT trace_id, t.content, r.payload FROM traces t JOIN raw_traces r "
                            "USING (project, trace_id)").set_index("trace_id")
    quarantine = store.query_df("SELECT reason FROM quarantine")
    table: dict[str, dict[str, str]] = {}
    leaks: list[str] = []
    for (kind, placement), p in corpus.items():
        row = traces.loc[trace_id(kind, placement)]  # the trace that holds this secret
        in_text, in_raw = leaked(p.secret, row.content), leaked(p.secret, row.payload)
        cell = "ok" if not (in_text or in_raw) else "LEAK" + ("(text)" if in_text else "") + ("(raw)" if in_raw else "")
        table.setdefault(kind, {})[placement] = cell
        if cell != "ok":
            leaks.append(f"{kind}/{placement}")
    return {"kinds": len(KINDS), "placements": len(PLACEMENTS), "traces": len(corpus),
            "ingested": ing.loaded, "quarantined": len(quarantine), "preprocessed": pre.preprocessed,
            "leaks": len(leaks), "leaked": leaks, "redactions": pre.redactions,
            "ingest_preprocess_s": round(seconds, 2), "table": table}


def clean_texts(n: int) -> dict[str, list[str]]:
    rng = random.Random(0)
    out: dict[str, list[str]] = {}
    b77 = DATA / "banking77" / "train.csv"
    if b77.exists():
        with b77.open(newline="", encoding="utf-8") as f:
            rows = [r["text"] for r in csv.DictReader(f)]
        out["banking77"] = rng.sample(rows, min(n, len(rows)))
    tau = DATA / "tau-bench" / "gpt-4o-airline.json"
    if tau.exists():
        msgs = [m["content"] for rec in json.loads(tau.read_text()) for m in rec["traj"]
                if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str) and m["content"].strip()]
        out["tau-bench"] = rng.sample(msgs, min(n, len(msgs)))
    return out


def false_positives(n: int) -> dict:
    result = {}
    for name, texts in clean_texts(n).items():
        changed = 0
        changed_not_email = 0
        kinds: Counter[str] = Counter()
        examples = []
        for t in texts:
            out, counts = redact(t)
            if out != t:
                changed += 1
                kinds.update(counts)
                if set(counts) - {"EMAIL"}:
                    changed_not_email += 1
                    if len(examples) < 5:
                        examples.append({"kinds": counts, "text": t[:160]})
        result[name] = {"texts": len(texts), "changed": changed, "rate": round(changed / max(1, len(texts)), 4),
                        "changed_by_other_than_email": changed_not_email,
                        "rate_other_than_email": round(changed_not_email / max(1, len(texts)), 4),
                        "kinds": dict(kinds), "examples": examples}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        planted = planted_table(Path(tmp))
    fp = false_positives(500 if args.quick else 2000)
    print(json.dumps({"planted": planted, "false_positives": fp}, indent=1))
    width = max(len(k) for k in planted["table"])
    print("\n" + "kind".ljust(width) + " " + " ".join(p[:14].ljust(14) for p in PLACEMENTS), file=sys.stderr)
    for kind, row in planted["table"].items():
        print(kind.ljust(width) + " " + " ".join(row[p][:14].ljust(14) for p in PLACEMENTS), file=sys.stderr)
    print(f"leaks: {planted['leaks']} of {planted['traces']}; false positives: "
          + ", ".join(f"{k} {v['rate']:.2%} ({v['rate_other_than_email']:.2%} other than e-mail)" for k, v in fp.items()),
          file=sys.stderr)


if __name__ == "__main__":
    main()
