"""The map picture topic_map materializations carry: a PNG written by hand, decoded back here with zlib
(no imaging library), the points where the explorer would draw them, in its colours."""

import struct
import zlib

import numpy as np

from topics_assets.explore.picture import BACKGROUND, NO_MATCH_COLOUR, PALETTE, _rgb, draw_map, map_png, png


def decode_png(data: bytes) -> np.ndarray:
    """RGB pixels of an 8-bit truecolour, non-interlaced PNG (filters none, sub, up, average, Paeth)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    out = np.zeros((h, 3 * w), dtype=np.int64)
    for r in range(h):
        f, line = raw[r, 0], raw[r, 1:].astype(np.int64)
        prev = out[r - 1] if r else np.zeros(3 * w, dtype=np.int64)
        if f in (0, 2):
            out[r] = (line + (prev if f == 2 else 0)) % 256
        else:
            for i in range(3 * w):
                a = out[r, i - 3] if i >= 3 else 0
                b, c = prev[i], prev[i - 3] if i >= 3 else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pred = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
                out[r, i] = (line[i] + pred) % 256
    return out.reshape(h, w, 3).astype(np.uint8)


def test_png_round_trips():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert (decode_png(png(pixels)) == pixels).all()


def test_points_in_the_explorer_colours_no_match_underneath():
    x, y = np.array([0.0, 1.0, 0.5, 0.5]), np.array([0.0, 1.0, 0.5, 0.5])
    topics = ["task-001", "task-002", "no_match"]
    img = draw_map(x, y, [0, 1, 2, 0], topics, width=100, height=100, dot=2)
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert colours == {BACKGROUND, _rgb(PALETTE[0]), _rgb(PALETTE[1])}  # no_match is drawn over by task-001
    corner_low, corner_high = img[100 - 8 - 1, 8], img[8 - 1, 100 - 8]  # y grows upwards, as on the canvas
    assert tuple(corner_low) == _rgb(PALETTE[0]) and tuple(corner_high) == _rgb(PALETTE[1])
    alone = draw_map(x[2:3], y[2:3], [0], ["no_match"], width=20, height=20)
    assert _rgb(NO_MATCH_COLOUR) in {tuple(c) for c in alone.reshape(-1, 3)}


def test_50k_points_stay_small():
    rng = np.random.default_rng(1)
    n, k = 50_000, 60
    topic = rng.integers(0, k, n)
    xy = rng.normal(0, 10, (k, 2))[topic] + rng.normal(0, 1, (n, 2))
    data = map_png({"x": xy[:, 0], "y": xy[:, 1], "topic": topic, "topics": [f"t{i}" for i in range(k)]})
    assert len(data) < 40_000, len(data)
    assert decode_png(data).shape == (300, 480, 3)
