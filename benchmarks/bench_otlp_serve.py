"""`topics serve` under load: client processes with the OpenTelemetry SDK's BatchSpanProcessor and OTLP/HTTP
(protobuf) exporter send realistic agent traces (the demo generator's, as GenAI spans) at an offered rate.

Prints JSON: acknowledged spans/s, p50/p99 latency of each export request as the client sees it (wrapped
around the SDK exporter), the server's peak RSS and CPU, and where the server's time went (decode vs flush).
A second phase runs the same load against a small spool with no consumer: the server must answer 503 and
keep its memory flat (bounded by the spool limit and request limits, not the load).

    python benchmarks/bench_otlp_serve.py [--clients 4] [--rate 6000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, key: str) -> int:
    """A /proc/PID/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/health", timeout=10) as r:
        return json.loads(r.read())


def start_server(home: str, port: int, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, "TOPICS_HOME": home, **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "topics_assets.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"topics serve exited with {proc.returncode}")
        try:
            health(f"http://127.0.0.1:{port}")
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("topics serve did not start") from None
            time.sleep(0.1)


def client(idx: int, endpoint: str, rate: float, seconds: float, compression: str, batch: int,
           out: mp.Queue, nice: int = 0) -> None:
    """One application process: emit traces at `rate` spans/s for `seconds`, then flush."""
    if nice:
        os.nice(nice)  # the applications yield the CPU to the server, as on a host where it has its own core
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from topics_assets.demo import generate_traces
    from topics_assets.serve.emit import emit_trace

    import requests

    latencies: list[float] = []  # per export request: the HTTP round trip, body sent to 200 received
    server_ms: dict[str, list[float]] = {"read": [], "decode": [], "flush": []}  # from Server-Timing
    encode_s = [0.0]
    acked = [0]
    failed = [0]

    class TimedSession(requests.Session):
        def request(self, *a, **kw):
            t = time.perf_counter()
            resp = super().request(*a, **kw)
            latencies.append(time.perf_counter() - t)
            for part in resp.headers.get("Server-Timing", "").split(","):
                name, _, dur = part.strip().partition(";dur=")
                if name in server_ms:
                    server_ms[name].append(float(dur))
            return resp

    class Timed(SpanExporter):
        def __init__(self, inner):
            self.inner = inner

        def export(self, spans):
            t = time.perf_counter()
            result = self.inner.export(spans)
            encode_s[0] += time.perf_counter() - t  # all of export(); the round trips are subtracted below
            if result is SpanExportResult.SUCCESS:
                acked[0] += len(spans)
            else:
                failed[0] += len(spans)
            return result

        def shutdown(self):
            self.inner.shutdown()

    records = generate_traces(n_traces=400, days=3, seed=100 + idx, project="bench")
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=30, session=TimedSession(),
                                compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
    provider = TracerProvider(resource=Resource.create({"service.name": f"bench-{idx}"}))
    provider.add_span_processor(BatchSpanProcessor(Timed(exporter), max_queue_size=50_000,
                                                   max_export_batch_size=batch))
    tracer = provider.get_tracer("bench")
    emitted, start, i = 0, time.perf_counter(), 0
    while (now := time.perf_counter()) - start < seconds:
        ahead = emitted / rate - (now - start)
        if ahead > 0:
            time.sleep(ahead)
        record = records[i % len(records)]
        emit_trace(tracer, record)
        emitted += len(record["spans"])
        i += 1
    emit_end = time.perf_counter() - start
    provider.shutdown()
    out.put({"emitted": emitted, "acked": acked[0], "failed": failed[0], "latencies": latencies,
             "server_ms": server_ms, "export_outside_http_s": encode_s[0] - sum(latencies),
             "emit_s": emit_end, "wall_s": time.perf_counter() - start,
             "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])})


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_phase(args, env_extra: dict, seconds: float) -> dict:
    home = tempfile.mkdtemp(prefix="bench-otlp-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(home, port, env_extra)
    rss = [proc_status(server.pid, "VmRSS")]
    rss_idle = rss[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss.append(proc_status(server.pid, "VmRSS"))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = proc_cpu_s(server.pid)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=client, args=(i, f"{base}/v1/traces", args.rate / args.clients, seconds,
                                              args.compression, args.batch, out, args.client_nice))
             for i in range(args.clients)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    h = health(base)
    server_cpu = proc_cpu_s(server.pid) - cpu0
    hwm = proc_status(server.pid, "VmHWM")
    stop.set()
    sampler.join()
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    lat = [x for r in results for x in r["latencies"]]
    acked = sum(r["acked"] for r in results)
    emit_s = max(r["emit_s"] for r in results)
    return {
        "offered_spans_per_s": args.rate, "seconds": seconds,
        "emitted_spans": sum(r["emitted"] for r in results), "acked_spans": acked,
        "failed_spans": sum(r["failed"] for r in results),
        "acked_spans_per_s": round(acked / max(r["wall_s"] for r in results), 1),
        "emitted_spans_per_s": round(sum(r["emitted"] for r in results) / emit_s, 1),
        "export_requests": len(lat),
        "server_timing_ms": {k: {"p50": round(pct(v, 0.5) or 0, 2), "p99": round(pct(v, 0.99) or 0, 2)}
                             for k in ("read", "decode", "flush")
                             for v in [[x for r in results for x in r["server_ms"][k]]]},
        "client_export_encode_s": round(sum(r["export_outside_http_s"] for r in results), 2),
        "ack_latency_ms": {"p50": round(1e3 * (pct(lat, 0.5) or 0), 2), "p99": round(1e3 * (pct(lat, 0.99) or 0), 2),
                           "max": round(1e3 * max(lat, default=0), 2)},
        "server_rss_mb": {"idle": round(rss_idle / 2**20, 1), "peak_sampled": round(max(rss) / 2**20, 1),
                          "peak_hwm": round(hwm / 2**20, 1)},
        "server_cpu_s": round(server_cpu, 2), "clients_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "wall_s": round(wall, 1),
        "server": {k: h[k] for k in ("accepted_requests", "accepted_spans", "refused_requests", "read_s", "decode_s",
                                     "flush_s", "spool_bytes", "spool_limit_bytes")},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rate", type=float, default=6000, help="offered spans/s, all clients together")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--compression", choices=["none", "gzip"], default="none")
    ap.add_argument("--full-spool-mb", type=int, default=16, help="spool limit of the backpressure phase")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--client-nice", type=int, default=0,
                    help="run the client processes at this nice level (10: the server is never queued behind "
                         "them, which shows the server's own latency on a machine the clients saturate)")
    ap.add_argument("--batch", type=int, default=512, help="BatchSpanProcessor max_export_batch_size (SDK default)")
    args = ap.parse_args()
    out = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
           "clients": args.clients, "client_nice": args.client_nice, "compression": args.compression,
           "batch": args.batch,
           "sustained": run_phase(args, {}, args.seconds)}
    if not args.skip_full:
        limit = args.full_spool_mb << 20
        out["spool_full"] = run_phase(args, {"TOPICS_SERVE_SPOOL_LIMIT_BYTES": str(limit)}, args.seconds / 2)
    s = out["sustained"]
    out["goal"] = {"spans_per_s>=5000": s["acked_spans_per_s"] >= 5000,
                   "p99_ms<50": s["ack_latency_ms"]["p99"] < 50}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
