"""`topics explore`: a Starlette app serving the page (static/, shipped in the package) and the JSON
it calls under /api/. Every request reads the store on its own short read-only connection, so the
explorer runs beside the daemon; the page loads nothing from anywhere else (its Content-Security-Policy
says so to the browser).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..store import Store
from . import data

STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"


class BadRequest(ValueError):
    pass


def _arg(request: Request, name: str, required: bool = True) -> str | None:
    value = request.query_params.get(name) or None
    if required and value is None:
        raise BadRequest(f"missing query parameter {name!r}")
    return value


def _generation(request: Request) -> int | None:
    g = _arg(request, "generation", required=False)
    if g is None:
        return None
    try:
        return int(g)
    except ValueError:
        raise BadRequest(f"generation must be an integer (got {g!r})") from None


def create_app(store: Store) -> Starlette:
    def api(build):
        def endpoint(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
            try:
                with store.reading():  # one read-only connection for the answer's several reads
                    answer = build(request)
                return JSONResponse(answer)
            except BadRequest as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            except data.NotFound as e:
                return JSONResponse({"error": str(e)}, status_code=404)
        return endpoint

    def scope(request: Request) -> dict:
        return {"project": _arg(request, "project"), "facet": _arg(request, "facet"),
                "generation": _generation(request), "start": _arg(request, "start", False),
                "end": _arg(request, "end", False)}

    def index(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(), headers={"Content-Security-Policy": CSP})

    routes = [
        Route("/", index),
        Route("/api/maps", api(lambda r: {"maps": data.maps(store)})),
        Route("/api/overview", api(lambda r: data.overview(store, **scope(r)))),
        Route("/api/points", api(lambda r: data.points(store, **scope(r), text=_arg(r, "text", False) != "0"))),
        Route("/api/point_texts", api(lambda r: data.point_texts(store, **scope(r)))),
        Route("/api/topic", api(lambda r: data.topic(store, topic_id=_arg(r, "topic_id"), **scope(r)))),
        Route("/api/trace", api(lambda r: data.trace(store, _arg(r, "project"), _arg(r, "trace_id")))),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def serve_forever(store: Store, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")
