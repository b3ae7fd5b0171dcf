"""Live ingest: `topics serve`, an OTLP/HTTP endpoint for OpenTelemetry exporters and Collectors."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..config import Settings
from .common import pass_settings, say


@click.command()
@click.option("--host", default=None, help="Interface to bind (default: serve.host, 127.0.0.1). Anything but "
              "loopback should have a token ($TOPICS_SERVE_TOKEN).")
@click.option("--port", type=int, default=None, help="Port (default: serve.port, 4318, the OTLP/HTTP port).")
@pass_settings
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Receive traces over OTLP/HTTP: POST /v1/traces (protobuf or JSON, gzip or not), GET /health.

    Each accepted request is written to the spool under $TOPICS_HOME and flushed to disk before it is
    acknowledged; the otlp_spool sensor (`dagster dev`) ingests the spool into the store once a trace has
    had no new span for serve.idle_window_s, and the other sensors facet and label it as usual. With
    $TOPICS_SERVE_TOKEN set, requests need `Authorization: Bearer <token>`. Stop with Ctrl-C: requests in
    progress finish first.
    """
    from ..serve.app import is_loopback, serve_forever
    from ..serve.spool import SERVER_LOCK, FileLock, SpoolBusy

    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    token = os.environ.get(settings.serve.token_env) or None
    spool = Path(settings.spool_path)
    spool.mkdir(parents=True, exist_ok=True)
    try:  # a clear message rather than a failed startup inside uvicorn
        FileLock(spool / SERVER_LOCK).acquire(wait_s=2.0).release()
    except SpoolBusy:
        raise click.ClickException(f"another `topics serve` is using the spool {spool}") from None
    if not is_loopback(host) and not token:
        click.echo(click.style(f"warning: listening on {host} with no token; set ${settings.serve.token_env}",
                               fg="yellow"), err=True)
    say(f"OTLP/HTTP on http://{host}:{port}/v1/traces (auth: {'bearer token' if token else 'none'}); "
        f"spool {spool} (limit {settings.serve.spool_limit_bytes:,} bytes)")
    say(f"point an exporter at it: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://{host}:{port}/v1/traces")
    serve_forever(settings, host, port, token)
