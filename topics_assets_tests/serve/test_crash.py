"""SIGKILL `topics serve` while clients export; restart it: every span a client saw acknowledged is in the store
after the spool is ingested, and none is there twice."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from topics_assets.demo import generate_traces
from topics_assets.serve.emit import emit_trace
from topics_assets.serve.spool import open_segments
from topics_assets.serve.stage import ingest_spool
from topics_assets.store import open_store

from .conftest import free_port, health, tracer_to
from .test_app import stored

REPO = Path(__file__).resolve().parents[2]


class Recording(SpanExporter):
    """Remembers the spans whose export the server acknowledged (200), as the application would see it."""

    def __init__(self, inner, acked: set, in_flight: list):
        self.inner, self.acked, self.in_flight = inner, acked, in_flight

    def export(self, spans):
        self.in_flight[0] += 1
        try:
            result = self.inner.export(spans)
        finally:
            self.in_flight[0] -= 1
        if result is SpanExportResult.SUCCESS:
            self.acked.update((format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in spans)
        return result

    def shutdown(self):
        self.inner.shutdown()


def start_server(home: Path, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "TOPICS_HOME": str(home), "PYTHONPATH": str(REPO), "TOPICS_SERVE_SEGMENT_MAX_AGE_S": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "topics_assets.cli", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=home.parent)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"topics serve exited with {proc.returncode}"
        assert time.monotonic() < deadline, "topics serve did not come up"
        try:
            health(f"http://127.0.0.1:{port}")
            return proc
        except OSError:
            time.sleep(0.1)


def test_sigkill_while_clients_export_loses_no_acknowledged_span(serve_settings, tmp_path):
    home = Path(serve_settings.home)
    home.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")
    server = start_server(home, port, log)

    acked: set = set()
    in_flight = [0]

    def client(seed: int) -> None:
        provider, tracer = tracer_to(base, "gzip" if seed % 2 else None,
                                     exporter_wrapper=lambda e: Recording(e, acked, in_flight),
                                     max_export_batch_size=24, schedule_delay_millis=20, max_queue_size=100_000)
        for record in generate_traces(n_traces=60, days=2, seed=seed, project="shop"):
            emit_trace(tracer, record)
            time.sleep(0.02)
        provider.shutdown()  # exports what is queued, retrying through the restart

    clients = [threading.Thread(target=client, args=(seed,)) for seed in (31, 32, 33)]
    for c in clients:
        c.start()
    try:
        deadline = time.monotonic() + 60
        while not (len(acked) > 100 and in_flight[0] > 0):  # kill it in the middle of an export
            assert time.monotonic() < deadline, "the clients never got going"
            time.sleep(0.001)
        server.send_signal(signal.SIGKILL)
        server.wait()
        spool = home / "spool"
        assert open_segments(spool), "the killed server left no open segment"
        acked_before_kill = len(acked)
        time.sleep(0.5)  # exports fail meanwhile and are retried by the SDK
        server = start_server(home, port, log)
        for c in clients:
            c.join(120)
        assert not any(c.is_alive() for c in clients)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    assert len(acked) > acked_before_kill, "nothing was exported after the restart"

    store = open_store(serve_settings.database_path)
    while ingest_spool(store=store, settings=serve_settings).state == "ingested":
        pass
    traces = stored(serve_settings)
    stored_spans = [(tid, s.id) for tid, t in traces.items() for s in t.spans]
    assert len(stored_spans) == len(set(stored_spans)), "a span is stored twice"
    missing = acked - set(stored_spans)
    assert not missing, f"{len(missing)} acknowledged spans are not in the store, e.g. {sorted(missing)[:3]}"
    assert store.query_df("SELECT count(*) AS n FROM quarantine").n[0] == 0
