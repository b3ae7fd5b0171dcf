"""`topics report`: the explorer's views as one self-contained HTML file to share.

The file holds the explorer's own page, CSS and JavaScript inline, and the answers the page would have
asked the app for, as one JSON document keyed like the requests (`overview?facet=task&...`). So it opens
from file:// with the network off and shows what `topics explore` shows for the same scope, built from
the same dicts (data.py). What it cannot hold in full is bounded, and the file says so on every page:
the traces listed per topic (closest first), the length of each point's facet text on the map, and the
length of a trace's preprocessed text. Trace pages exist for the traces the topic pages list.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..store import Store
from ..topics.topic_map import NO_MATCH
from . import data

STATIC = Path(__file__).parent / "static"
# The report loads nothing: only its own inline script and style, and data: images.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class ReportLimits:
    traces_per_topic: int = 20
    point_text_chars: int = 120
    trace_text_chars: int = 6000


def _clip(text: Any, n: int) -> Any:
    if isinstance(text, str) and len(text) > n:
        return text[: max(0, n - 1)] + "…"
    return text


def _key(path: str, params: dict[str, Any]) -> str:
    """The key app.js looks a request up by (reportKey): the path and its non-empty params, sorted, as JSON."""
    items = [[k, str(v)] for k, v in sorted(params.items()) if v is not None and v != ""]
    return json.dumps([path, items], separators=(",", ":"), ensure_ascii=False)


def collect(store: Store, projects: list[str] | None = None, facets: list[str] | None = None,
            generation: int | None = None, all_generations: bool = False, start: str | None = None,
            end: str | None = None, limits: ReportLimits = ReportLimits()) -> dict:
    """Every answer the report's pages need, keyed like the app's requests, and what was bounded."""
    maps = []
    for m in data.maps(store):
        if projects and m["project"] not in projects or facets and m["facet"] not in facets:
            continue
        gens = m["generations"]
        if generation is not None:
            gens = [g for g in gens if g["generation"] == generation]
        elif not all_generations:
            gens = gens[:1]
        if gens:
            maps.append({**m, "generations": gens})
    if not maps:
        what = ", ".join(f"{k} {v}" for k, v in (("project", projects), ("facet", facets),
                                                   ("generation", generation)) if v)
        raise data.NotFound(f"no topic map to report{' for ' + what if what else ''} "
                            f"(the store has: {', '.join(sorted({m['project'] + '/' + m['facet'] for m in data.maps(store)})) or 'none'})")
    answers: dict[str, Any] = {_key("maps", {}): {"maps": maps}}
    traces: set[tuple[str, str]] = set()
    n_points = 0
    for m in maps:
        for g in m["generations"]:
            scope = {"project": m["project"], "facet": m["facet"], "generation": g["generation"],
                     "start": start, "end": end}
            ov = data.overview(store, **scope)
            answers[_key("overview", scope)] = ov
            pts = data.points(store, **scope, text=False)
            n_points += pts["n"]
            answers[_key("points", {**scope, "text": 0})] = pts
            texts = data.point_texts(store, **scope)
            texts["text"] = [_clip(t, limits.point_text_chars) for t in texts["text"]]
            answers[_key("point_texts", scope)] = texts
            known = (ov["generation"], store.load_topics(m["project"], m["facet"], ov["generation"],
                                                         active_only=True, read_only=True), ov)
            for topic_id in [t["topic_id"] for t in ov["topics"]] + [NO_MATCH]:
                t = data.topic(store, topic_id=topic_id, limit=limits.traces_per_topic, _known=known, **scope)
                answers[_key("topic", {**scope, "topic_id": topic_id})] = t
                traces.update((m["project"], r["trace_id"]) for r in t["traces"])
    for project in sorted({p for p, _ in traces}):
        ids = sorted(t for p, t in traces if p == project)
        for i in range(0, len(ids), 1000):
            for trace_id, tr in data.traces(store, project, ids[i:i + 1000]).items():
                if tr["trace"]:
                    tr["trace"]["content"] = _clip(tr["trace"]["content"], limits.trace_text_chars)
                answers[_key("trace", {"project": project, "trace_id": trace_id})] = tr
    info = {"written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "start": start, "end": end, "traces_per_topic": limits.traces_per_topic,
            "point_text_chars": limits.point_text_chars, "trace_text_chars": limits.trace_text_chars,
            "n_maps": sum(len(m["generations"]) for m in maps), "n_points": n_points, "n_traces": len(traces)}
    return {"info": info, "answers": answers}


def _json_for_script(obj: Any) -> str:
    """JSON that cannot end the <script> element it sits in (every '<' escaped) nor break its line."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(payload: dict, compress: bool = True) -> str:
    """The explorer's index.html with its CSS, the data and its JavaScript inline. The data is gzipped
    and base64-encoded (a third of plain JSON's size at 50,000 points; the page inflates it with the
    browser's DecompressionStream), or plain JSON with compress=False."""
    page = (STATIC / "index.html").read_text()
    css = (STATIC / "app.css").read_text()
    js = (STATIC / "app.js").read_text().replace("</script", "<\\/script")
    link = '<link rel="stylesheet" href="static/app.css">'
    script = '<script src="static/app.js"></script>'
    assert link in page and script in page, "index.html no longer names app.css / app.js as the report expects"
    page = page.replace("<title>Topics explorer</title>", "<title>Topics report</title>")
    page = page.replace('<meta charset="utf-8">', f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" '
                                                 f'content="{CSP}">')
    page = page.replace(link, f"<style>\n{css}</style>")
    if compress:
        blob = base64.b64encode(gzip.compress(json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                                                         allow_nan=False).encode(), compresslevel=9, mtime=0))
        data_script = (f'<script type="application/octet-stream" id="topics-report" data-encoding="gzip+base64">'
                       f'{blob.decode()}</script>')
    else:
        data_script = f'<script type="application/json" id="topics-report">{_json_for_script(payload)}</script>'
    page = page.replace(script, f'{data_script}\n<script>\n{js}</script>')
    return page


def read_payload(html: str) -> dict:
    """The data a report file holds (its info and answers), as render wrote it."""
    import re

    m = re.search(r'<script type="application/(json|octet-stream)" id="topics-report"[^>]*>(.*?)</script>', html, re.S)
    if not m:
        raise ValueError("not a Topics report (no <script id=topics-report>)")
    text = m.group(2)
    return json.loads(gzip.decompress(base64.b64decode(text)) if m.group(1) == "octet-stream" else text)


def write_report(store: Store, out: str | Path, compress: bool = True, **kwargs) -> dict:
    """Write the report to `out`; returns its info (what it holds and what was bounded) and its size."""
    with store.reading():
        payload = collect(store, **kwargs)
    html = render(payload, compress=compress)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return {**payload["info"], "bytes": path.stat().st_size, "path": str(path)}
