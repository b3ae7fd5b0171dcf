"""The spool's file format on its own: torn tails from a crash are cut off, corruption is reported, and the
consumer keeps the spans of traces still arriving."""

import os
import time

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from topics_assets.demo import generate_traces
from topics_assets.serve import spool
from topics_assets.serve.stage import ingest_spool
from topics_assets.store import open_store

from .test_app import finished_spans, stored


def test_a_torn_last_frame_is_cut_off_when_the_segment_is_recovered(tmp_path):
    frames = [spool.frame(b"first", 1.0), spool.frame(b"second", 2.0)]
    path = tmp_path / f"seg-1{spool.OPEN}"
    path.write_bytes(b"".join(frames) + spool.frame(b"third, never acknowledged", 3.0)[:-5])
    assert spool.recover_open_segments(tmp_path) == 1
    (closed,) = spool.closed_segments(tmp_path)
    assert [r.payload for r in spool.read_segment(closed)] == [b"first", b"second"]
    assert closed.stat().st_size == sum(map(len, frames)) and not spool.open_segments(tmp_path)
    (tmp_path / f"seg-2{spool.OPEN}").write_bytes(spool.frame(b"x", 1.0)[:3])  # nothing whole: removed
    assert spool.recover_open_segments(tmp_path) == 0 and len(os.listdir(tmp_path)) == 1


def test_a_corrupt_frame_is_reported_not_read(tmp_path):
    data = bytearray(spool.frame(b"payload", 1.0) + spool.frame(b"more", 2.0))
    data[20] ^= 0xFF
    path = tmp_path / f"seg-1{spool.CLOSED}"
    path.write_bytes(bytes(data))
    with pytest.raises(spool.SpoolCorrupt, match="frame at byte 0 fails its checksum"):
        spool.read_segment(path)


def _within(seconds: float, condition) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_writer_commits_groups_and_closes_segments_by_size_and_age(tmp_path):
    writer = spool.SpoolWriter(tmp_path, segment_bytes=100, segment_max_age_s=1.0).start()
    try:
        futures = [writer.submit(b"x" * 60) for _ in range(3)]
        for f in futures:
            f.result(10)
        # the segment is closed just after its frames are acknowledged, not before
        assert _within(5, lambda: spool.closed_segments(tmp_path))  # over 100 bytes: closed
        opened = time.monotonic()
        writer.submit(b"late").result(10)
        assert spool.open_segments(tmp_path) or time.monotonic() - opened >= 1.0
        assert _within(5, lambda: not spool.open_segments(tmp_path))  # closed by age with no further write
        assert writer.usage() == spool.spool_bytes(tmp_path)
        with pytest.raises(spool.SpoolBusy):  # one server per spool
            spool.SpoolWriter(tmp_path, 100, 1.0).start(lock_wait_s=0.1)
    finally:
        writer.close()
    payloads = [r.payload for p in spool.closed_segments(tmp_path) for r in spool.read_segment(p)]
    assert payloads == [b"x" * 60] * 3 + [b"late"]


def test_traces_still_receiving_spans_wait_for_the_idle_window(settings):
    """A trace is ingested once none of its spans arrived within idle_window_s; until then it stays spooled."""
    settings.serve.idle_window_s = 30
    directory = spool.Path(settings.spool_path)
    directory.mkdir(parents=True)
    old, new = (finished_spans(generate_traces(n_traces=1, days=1, seed=s, project="shop")) for s in (1, 2))
    now = time.time()
    # trace "old": all spans arrived a minute ago; trace "new": half a minute ago, and its last span just now
    spool.write_segment(directory, "seg-1", [
        spool.Record(now - 60, encode_spans(old).SerializeToString()),
        spool.Record(now - 30, encode_spans(new[:-1]).SerializeToString())])
    spool.write_segment(directory, "seg-2", [spool.Record(now - 1, encode_spans(new[-1:]).SerializeToString())])
    store = open_store(settings.database_path)

    first = ingest_spool(store=store, settings=settings, now=now)
    assert (first.traces_ready, first.traces_waiting, first.spans_waiting) == (1, 1, len(new))
    old_id, new_id = (format(s[0].context.trace_id, "032x") for s in (old, new))
    assert set(stored(settings)) == {old_id}
    (carry,) = spool.closed_segments(directory)  # both segments consumed; the waiting spans carried over
    assert carry.name.startswith("carry-")

    assert ingest_spool(store=store, settings=settings, now=now + 5).state == "waiting"  # nothing rewritten
    assert spool.closed_segments(directory) == [carry]
    later = ingest_spool(store=store, settings=settings, now=now + 31)
    assert later.ingest.loaded == 1 and not spool.closed_segments(directory)
    assert {s.id for s in stored(settings)[new_id].spans} == {format(s.context.span_id, "016x") for s in new}


def test_a_trace_that_never_goes_quiet_is_ingested_after_max_trace_wait(settings):
    settings.serve.idle_window_s, settings.serve.max_trace_wait_s = 30, 120
    directory = spool.Path(settings.spool_path)
    directory.mkdir(parents=True)
    spans = finished_spans(generate_traces(n_traces=1, days=1, seed=4, project="shop"))
    now = time.time()
    spool.write_segment(directory, "seg-1", [spool.Record(now - 200, encode_spans(spans[:2]).SerializeToString()),
                                             spool.Record(now - 1, encode_spans(spans[2:]).SerializeToString())])
    result = ingest_spool(store=open_store(settings.database_path), settings=settings, now=now)
    assert result.traces_ready == 1 and result.traces_waiting == 0
