"""Files: JSONL streamed line by line, JSON documents whole; each record goes to its reader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topics_assets.ingest import otlp, tau2_bench
from topics_assets.ingest.records import (
    MAX_RECORD_BYTES,
    SNIPPET_CHARS,
    Context,
    loads,
    snippet_of,
)
from topics_assets.ingest.readers import parse_or_quarantine
from topics_assets.traces import Quarantined, Trace

_SKIP_CHUNK = 1 << 20


def read_file(
    path: str | Path,
    project: str | None = None,
    default_project: str = "default",
    now: datetime | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Trace | Quarantined]:
    """Every trace in the file, and a Quarantined for every record that is not one.

    .jsonl/.ndjson files are streamed line by line (memory stays bounded by the
    largest line, and lines over max_record_bytes are skipped unread); .json
    files hold one document: a list of records, a tau2-bench results object,
    an OTLP export, or a single record.
    """
    path = Path(path)
    ctx = Context(str(path), project, default_project, now or datetime.now(timezone.utc))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path, ctx, max_record_bytes)
    elif suffix == ".json":
        yield from _read_json(path, ctx, max_record_bytes)
    else:
        yield Quarantined(
            ctx.source, None, f"unsupported file type {suffix or '(none)'!r}: expected .json, .jsonl or .ndjson"
        )


class iter_lines:  # noqa: N801 - used like a generator function
    """(line number, bytes with their newline, size) for each line of a binary file.

    A line longer than max_bytes comes back as None (with its size), read past
    in 1 MB chunks: one huge line costs neither the memory to hold it nor the
    rest of the file. A class, not a generator, so that it keeps no reference
    to the line it handed out (the caller frees it before parsing).
    """

    def __init__(self, f: Any, max_bytes: int = MAX_RECORD_BYTES):
        self.f, self.max_bytes, self.lineno = f, max_bytes, 0

    def __iter__(self) -> iter_lines:
        return self

    def __next__(self) -> tuple[int, bytes | None, int]:
        raw = self.f.readline(self.max_bytes + 1)
        if not raw:
            raise StopIteration
        self.lineno += 1
        if len(raw) > self.max_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            del raw
            while True:
                chunk = self.f.readline(_SKIP_CHUNK)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            return self.lineno, None, size
        return self.lineno, raw, len(raw)


def _line_text(raw: bytes, lineno: int) -> str:
    """The line as text without its newline (or a BOM on line 1), decoded without copying the bytes first."""
    end = len(raw) - (2 if raw.endswith(b"\r\n") else 1 if raw.endswith((b"\n", b"\r")) else 0)
    start = 3 if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
    with memoryview(raw)[start:end] as view:
        return str(view, "utf-8")


def too_large(where: str, size: int, limit: int) -> str:
    return f"{where}: record too large ({size:,} bytes, limit {limit:,}); skipped unread"


def _read_jsonl(path: Path, ctx: Context, max_bytes: int) -> Iterator[Trace | Quarantined]:
    asm: otlp.OtlpAssembler | None = None
    with path.open("rb") as f:
        for lineno, raw, size in iter_lines(f, max_bytes):
            if raw is None:
                yield Quarantined(ctx.source, lineno, too_large(f"line {lineno}", size, max_bytes))
            elif raw and not raw.isspace():  # (no copy: the line may be huge)
                obj: Any = _FAILED
                try:
                    line = _line_text(raw, lineno)
                except UnicodeDecodeError as e:
                    snippet = snippet_of(raw[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace").rstrip("\r\n"))
                    yield Quarantined(ctx.source, lineno, f"line {lineno}: not valid UTF-8 (byte {e.start})", snippet)
                    line = ""
                del raw
                if line:
                    try:
                        obj = loads(line)
                    except ValueError as e:
                        reason = (
                            f"line {lineno}: not valid JSON: {getattr(e, 'msg', e)} "
                            f"at column {getattr(e, 'colno', '?')}"
                        )
                        yield Quarantined(ctx.source, lineno, reason, snippet_of(line))
                    except RecursionError:
                        reason = f"line {lineno}: not valid JSON: nested too deeply"
                        yield Quarantined(ctx.source, lineno, reason, snippet_of(line))
                if obj is not _FAILED and otlp.detect(obj):
                    if asm is None:  # one extra byte scan, only for files that hold OTLP
                        with path.open("rb") as g:
                            last = otlp.last_lines_in((n, r) for n, r, _ in iter_lines(g, max_bytes))
                        asm = otlp.OtlpAssembler(ctx, last)
                    yield from asm.add(obj, lineno, f"line {lineno}")
                elif obj is not _FAILED:
                    yield from parse_or_quarantine(obj, ctx, lineno, f"line {lineno}", line)
                del line, obj
            if asm is not None:
                yield from asm.ready(lineno)
    if asm is not None:
        yield from asm.finish()


_FAILED = object()  # a line that did not decode


def _read_json(path: Path, ctx: Context, max_bytes: int) -> Iterator[Trace | Quarantined]:
    size = path.stat().st_size
    if size > max_bytes:
        yield Quarantined(ctx.source, None, too_large(path.name, size, max_bytes) + " (split it into JSONL)")
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        snippet = snippet_of(raw[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace"))
        yield Quarantined(ctx.source, None, f"{path.name}: not valid UTF-8 (byte {e.start})", snippet)
        return
    del raw
    try:
        doc = loads(text)
    except RecursionError:
        yield Quarantined(ctx.source, None, f"{path.name}: not valid JSON: nested too deeply", snippet_of(text))
        return
    except ValueError as e:
        where = f"line {e.lineno} column {e.colno}" if hasattr(e, "lineno") else "?"
        yield Quarantined(
            ctx.source,
            getattr(e, "lineno", None),
            f"{path.name}: not valid JSON: {getattr(e, 'msg', e)} at {where}",
            snippet_of(text),
        )
        return
    if isinstance(doc, list):
        asm = None
        for i, obj in enumerate(doc):
            if otlp.detect(obj):
                asm = asm or otlp.OtlpAssembler(ctx)
                yield from asm.add(obj, None, f"record {i}")
            else:
                yield from parse_or_quarantine(obj, ctx, None, f"record {i}", None)
        if asm is not None:
            yield from asm.finish()
    elif otlp.detect(doc):
        asm = otlp.OtlpAssembler(ctx)
        yield from asm.add(doc, None, path.name)
        yield from asm.finish()
    elif isinstance(doc, dict) and tau2_bench.detect(doc):
        yield from tau2_bench.quarantining(doc, ctx, path.name, text)
    else:
        yield from parse_or_quarantine(doc, ctx, None, path.name, None)
