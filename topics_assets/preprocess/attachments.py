"""Attachments (images, audio, files, base64 blobs) become short placeholders.

A leaf module: parsing (ingest) and the preprocessor both use it, so it imports nothing else of the product.
"""

from __future__ import annotations

import re
from typing import Any


# ---------------------------------------------------------------------------
# Attachments


def _size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{n_bytes / (1024 * 1024):.1f} MB"


def _b64_bytes(b64: str) -> int:
    return len(b64.rstrip("=")) * 3 // 4


def _kind_of(mime: str | None) -> str:
    major = (mime or "").split("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def _placeholder(kind: str, detail: str) -> str:
    return f"[{kind} attachment removed: {detail}]"


_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,([A-Za-z0-9+/=_-]*)")
# The look-behind starts a match only at the start of a run, keeping the scan linear.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{200,}={0,2}")


def _looks_base64(run: str) -> bool:
    # Binary data in base64 mixes cases and digits and has few slashes; long
    # identifiers and URL paths do not.
    return (
        any(c.isdigit() for c in run)
        and any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and run.count("/") < len(run) / 20
    )


def _data_uri_placeholder(m: re.Match[str], kind: str = "file") -> str:
    mime = m.group(1)
    # Sized from the match's span, not a copy of the (possibly 100 MB) payload.
    start, end = m.span(2)
    while end > start and m.string[end - 1] == "=":
        end -= 1
    n_bytes = (end - start) * 3 // 4
    return _placeholder(_kind_of(mime) if mime else kind, f"{mime or 'unknown type'}, {_size(n_bytes)}")


def _may_hold_blob(text: str) -> bool:
    # A run of 200 base64 characters covers a whole aligned 100-character window
    # with no space in it; prose has spaces in every window. This check is ~10x
    # cheaper than running the regex over every block of a million-token trace.
    return any(" " not in text[i : i + 100] for i in range(0, len(text) - 99, 100))


def strip_attachments(text: str) -> str:
    """Replace data: URIs and long base64 blobs with a placeholder naming kind and size."""
    if "base64," in text:
        text = _DATA_URI.sub(_data_uri_placeholder, text)
    if len(text) >= 200 and _may_hold_blob(text):
        text = _BASE64_RUN.sub(
            lambda m: (
                _placeholder("base64", _size(_b64_bytes(m.group(0)))) if _looks_base64(m.group(0)) else m.group(0)
            ),
            text,
        )
    return text


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


_ATTACHMENT_KINDS = {
    "image_url": "image",
    "image": "image",
    "input_image": "image",
    "audio": "audio",
    "input_audio": "audio",
    "file": "file",
    "input_file": "file",
    "document": "file",
}


def _part_kind(part: dict[str, Any]) -> str | None:
    t = part.get("type")
    return _ATTACHMENT_KINDS.get(t) if isinstance(t, str) else None


def is_attachment_part(part: dict[str, Any]) -> bool:
    return _part_kind(part) is not None or any(s.startswith("data:") for s in _strings(part))


def attachment_placeholder(part: dict[str, Any]) -> str:
    """The placeholder for a non-text content part (image, audio, file).

    The parser calls this so that attachment bytes are neither stored nor sent;
    the placeholder keeps what the conversation needs to know: that there was one.
    """
    kind = _part_kind(part) or "file"
    payload = max(_strings(part), key=len, default="")
    m = _DATA_URI.match(payload)
    if m:
        return _data_uri_placeholder(m, kind)
    if payload.startswith(("http://", "https://")):
        return _placeholder(kind, "linked by URL, size unknown")
    source, audio = part.get("source"), part.get("input_audio")
    mime = (
        part.get("media_type")
        or part.get("mime_type")
        or (source.get("media_type") if isinstance(source, dict) else None)
    )
    fmt = audio.get("format") if isinstance(audio, dict) else None
    detail = mime or (f"{kind}/{fmt}" if fmt else kind)
    return _placeholder(kind, f"{detail}, {_size(_b64_bytes(payload) if payload else 0)}")


def attachment_text(
    kind: str | None, mime: str | None = None, data: str | None = None, url: str | None = None,
    file_id: str | None = None,
) -> str:
    """The placeholder for an attachment described field by field (OTel GenAI blob / uri / file parts)."""
    kind = kind if kind in ("image", "audio", "video") else _kind_of(mime)
    if data is not None:
        detail = f"{mime or kind}, {_size(_b64_bytes(data))}"
    elif url:
        detail = "linked by URL, size unknown"
    elif file_id:
        detail = f"{mime or kind}, file id {file_id}"
    else:
        detail = mime or kind
    return _placeholder(kind, detail)
