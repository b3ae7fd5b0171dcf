"""The OTLP/HTTP endpoint: POST /v1/traces and GET /health, as a Starlette app run by uvicorn.

A request is answered 200 only after its spans are in the spool and flushed to disk; every
refusal says why, in the request's encoding: 400 (cannot be parsed), 401 (bearer token), 413 (too
large, also after decompression), 415 (not protobuf or JSON), 429 (too many requests at once) and
503 (spool over its limit), the last two with Retry-After, which OpenTelemetry exporters honour.
Memory is bounded by max_concurrent_requests x max_request_bytes, whatever the load or the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from topics_assets.config import Settings
from topics_assets.serve import protocol
from topics_assets.serve.protocol import JSON, PROTOBUF, BadRequest, TooLarge
from topics_assets.serve.spool import SpoolWriter

TRACES_PATH = "/v1/traces"


@dataclass
class Counters:
    requests: int = 0
    spans: int = 0
    rejected_spans: int = 0
    refused: int = 0  # requests answered with an error status
    read_s: float = 0.0  # time spent receiving accepted requests' bodies
    decode_s: float = 0.0  # ... decompressing and parsing them
    flush_s: float = 0.0  # ... waiting for their frame to be on disk


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def create_app(settings: Settings, *, token: str | None = None) -> Starlette:
    """The endpoint over settings.spool_path; with a token, requests need `Authorization: Bearer <token>`."""
    cfg = settings.serve
    writer = SpoolWriter(settings.spool_path, cfg.segment_bytes, cfg.segment_max_age_s)
    counters = Counters()
    in_flight = [0]
    expected = f"Bearer {token}".encode() if token else None

    def refuse(status: int, message: str, content_type: str, close: bool = False, retry: bool = False) -> Response:
        counters.refused += 1
        headers = {}
        if retry:
            headers["Retry-After"] = str(cfg.retry_after_s)
        if close:  # the body was not read: do not reuse the connection
            headers["Connection"] = "close"
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        ctype = content_type if content_type in (PROTOBUF, JSON) else JSON
        return Response(protocol.status_body(status, message, ctype), status, headers, media_type=ctype)

    async def read_body(request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_request_bytes:
                raise TooLarge(f"the body is over {cfg.max_request_bytes:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def decode(body: bytes, encoding: str, ctype: str) -> protocol.Accepted:
        raw = protocol.decompress(body, encoding, cfg.max_request_bytes)
        return protocol.accept(raw, ctype, cfg.max_spans_per_request)

    async def traces(request: Request) -> Response:
        ctype = _media_type(request)
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return refuse(401, "missing or wrong bearer token", ctype, close=True)
        if ctype not in (PROTOBUF, JSON):
            return refuse(415, f"Content-Type must be {PROTOBUF} or {JSON}, not {ctype or 'none'!r}", JSON,
                          close=True)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in protocol.ENCODINGS:
            return refuse(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate or none)", ctype,
                          close=True)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_request_bytes:
            return refuse(413, f"the body ({int(length):,} bytes) is over {cfg.max_request_bytes:,} bytes", ctype,
                          close=True)
        if writer.usage() >= cfg.spool_limit_bytes:
            return refuse(503, f"the spool is full ({writer.usage():,} of {cfg.spool_limit_bytes:,} bytes) until "
                          "the otlp_spool sensor ingests it; retry later", ctype, close=True, retry=True)
        if in_flight[0] >= cfg.max_concurrent_requests:
            return refuse(429, f"{in_flight[0]} requests in progress; retry later", ctype, close=True, retry=True)
        in_flight[0] += 1
        started = time.perf_counter()
        try:
            try:
                body = await read_body(request)
                read = time.perf_counter()
                accepted = await run_in_threadpool(decode, body, encoding, ctype)
            except TooLarge as e:
                return refuse(413, str(e), ctype, close=True)
            except BadRequest as e:
                return refuse(400, str(e), ctype)
            decoded = time.perf_counter()
            if accepted.spans:
                try:
                    await asyncio.wrap_future(writer.submit(accepted.payload))
                except OSError as e:
                    return refuse(503, f"the spool could not be written: {e}", ctype, retry=True)
            flushed = time.perf_counter()
            counters.read_s += read - started
            counters.decode_s += decoded - read
            counters.flush_s += flushed - decoded
            counters.requests += 1
            counters.spans += accepted.spans
            counters.rejected_spans += accepted.rejected
            timing = (f"read;dur={1e3 * (read - started):.2f}, decode;dur={1e3 * (decoded - read):.2f}, "
                      f"flush;dur={1e3 * (flushed - decoded):.2f}")
            return Response(protocol.response_body(accepted, ctype), 200, {"Server-Timing": timing},
                            media_type=ctype)
        finally:
            in_flight[0] -= 1

    async def health(request: Request) -> Response:
        usage = writer.usage()
        return JSONResponse({
            "status": "ok" if usage < cfg.spool_limit_bytes else "spool_full",
            "spool": settings.spool_path, "spool_bytes": usage, "spool_limit_bytes": cfg.spool_limit_bytes,
            "in_flight": in_flight[0], "accepted_requests": counters.requests, "accepted_spans": counters.spans,
            "rejected_spans": counters.rejected_spans, "refused_requests": counters.refused,
            "read_s": round(counters.read_s, 3), "decode_s": round(counters.decode_s, 3),
            "flush_s": round(counters.flush_s, 3),
        })

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(writer.start)
        try:
            yield
        finally:
            await run_in_threadpool(writer.close)

    app = Starlette(routes=[Route(TRACES_PATH, traces, methods=["POST"]), Route("/health", health, methods=["GET"])],
                    lifespan=lifespan)
    app.state.writer, app.state.counters = writer, counters
    return app


def uvicorn_config(settings: Settings, host: str, port: int, token: str | None = None):
    import uvicorn

    return uvicorn.Config(create_app(settings, token=token), host=host, port=port, log_level="warning",
                          access_log=False, lifespan="on", timeout_graceful_shutdown=10,
                          limit_concurrency=settings.serve.max_concurrent_requests * 4)


def serve_forever(settings: Settings, host: str, port: int, token: str | None = None) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests finish and the open segment is closed."""
    import uvicorn

    uvicorn.Server(uvicorn_config(settings, host, port, token)).run()
