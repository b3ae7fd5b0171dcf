"""A real `topics serve` endpoint on a free loopback port (uvicorn in a thread, or the CLI in a subprocess),
and real OpenTelemetry SDK tracers exporting to it."""

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from topics_assets.serve.app import uvicorn_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(settings, token=None):
    """The endpoint in this process; on exit it stops as on SIGTERM (requests finish, segment closed)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn_config(settings, "127.0.0.1", port, token))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def serve_settings(settings):
    """Offline settings whose traces are ready as soon as their segment closes."""
    settings.serve.idle_window_s = 0
    settings.serve.segment_max_age_s = 0.2
    return settings


def post(url, body: bytes, content_type="application/x-protobuf", headers=None, timeout=30):
    """(status, headers, body) of a POST, errors included."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def health(base) -> dict:
    with urllib.request.urlopen(f"{base}/health", timeout=10) as r:
        return json.loads(r.read())


def tracer_to(endpoint, compression=None, headers=None, exporter_wrapper=None, **batch):
    """An SDK tracer whose BatchSpanProcessor exports to `endpoint` with the OTLP/HTTP protobuf exporter."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=30,
                                compression={None: Compression.NoCompression, "gzip": Compression.Gzip,
                                             "deflate": Compression.Deflate}[compression])
    if exporter_wrapper is not None:
        exporter = exporter_wrapper(exporter)
    provider.add_span_processor(BatchSpanProcessor(exporter, **batch))
    return provider, provider.get_tracer("topics-serve-tests")
