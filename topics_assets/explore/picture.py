"""A small PNG of a generation's 2-D map, coloured as the explorer colours it, with no imaging library:
numpy draws the points into an RGB array and the PNG is written by hand (zlib + CRC chunks).

Each topic_map materialization carries it in its metadata (a markdown image with a data: URI, which
the Dagster UI renders); it stays a few tens of KB by its size and a flat background.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

# The explorer's palette (static/app.js PALETTE), in topic order; no_match is grey.
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#3b6fb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#e9a23b", "#86bcb6", "#a0cbe8",
           "#f1ce63", "#d4a6c8", "#79706e"]
NO_MATCH_COLOUR = "#c3c8d2"
BACKGROUND = (251, 252, 253)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    v = int(hex_colour[1:], 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def png(pixels: np.ndarray) -> bytes:
    """An RGB uint8 array (height, width, 3) as PNG bytes (8-bit truecolour, filter 'up' on each row)."""
    h, w, _ = pixels.shape
    rows = pixels.astype(np.uint8).reshape(h, w * 3)
    up = np.empty_like(rows)
    up[0] = rows[0]
    up[1:] = rows[1:] - rows[:-1]  # uint8 wrap-around is PNG's own arithmetic
    raw = np.hstack([np.full((h, 1), 2, dtype=np.uint8), up]).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def draw_map(x: np.ndarray, y: np.ndarray, topic: np.ndarray, topics: list[str], width: int = 480,
             height: int = 300, dot: int = 2) -> np.ndarray:
    """The points as the explorer's canvas draws them (same scaling, no_match underneath), as RGB pixels."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    x, y, topic = np.asarray(x, float), np.asarray(y, float), np.asarray(topic, np.int64)
    if not len(x):
        return img
    colours = np.array([_rgb(NO_MATCH_COLOUR if t == "no_match" else PALETTE[i % len(PALETTE)])
                        for i, t in enumerate(topics)], dtype=np.uint8)
    pad = 8
    span_x, span_y = max(float(np.ptp(x)), 1e-9), max(float(np.ptp(y)), 1e-9)
    s = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
    ox = pad + (width - 2 * pad - s * span_x) / 2
    oy = pad + (height - 2 * pad - s * span_y) / 2
    px = np.round(ox + (x - x.min()) * s).astype(np.int64)
    py = np.round(height - (oy + (y - y.min()) * s)).astype(np.int64)
    no_match = np.array([topics[t] == "no_match" for t in topic], dtype=bool) if len(topics) else np.zeros(len(x), bool)
    order = np.argsort(~no_match, kind="stable")  # no_match first, so topics draw over it
    px, py, topic = px[order], py[order], topic[order]
    for dy in range(dot):
        for dx in range(dot):
            xx, yy = px + dx - dot // 2, py + dy - dot // 2
            ok = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
            img[yy[ok], xx[ok]] = colours[topic[ok]]
    return img


def map_png(points: dict, width: int = 480, height: int = 300) -> bytes:
    """PNG bytes of the explorer's `points` answer (data.points); a small map gets larger dots."""
    dot = 3 if len(points["x"]) < 5_000 else 2
    return png(draw_map(points["x"], points["y"], points["topic"], points["topics"], width, height, dot))


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode()
