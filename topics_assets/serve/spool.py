"""The spool: accepted OTLP requests on disk, flushed before they are acknowledged.

A spool is a folder of segments. The one server appends to one open segment (`seg-<ns>.open`)
and closes it (renames it to `.seg`) at a size or an age; only closed segments are read and
removed by the consumer (the otlp_spool sensor). A segment is a run of frames: a 16-byte header
(payload length, CRC-32 of the rest of the frame, the arrival time as float64 Unix seconds) and
the payload, an ExportTraceServiceRequest in protobuf's binary encoding. Binary, not OTLP JSON
lines, so the acknowledgement path does no JSON encoding: protobuf-to-JSON costs about 100 us a
span in Python, which would eat a core at the target rate; the consumer converts instead.

A frame cut short by a crash (no fsync returned, so never acknowledged) is dropped when its
segment is recovered; a frame whose CRC does not match is reported, never silently read.
Locks (flock) keep one server per spool and one consumer at a time.
"""

from __future__ import annotations

import fcntl
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<IId")  # payload length, crc32(arrival time + payload), arrival time
OPEN, CLOSED = ".open", ".seg"
SERVER_LOCK, CONSUMER_LOCK = "server.lock", "consumer.lock"
_RESCAN_S = 1.0
_GROUP_BYTES = 8 << 20  # at most this much written per fsync


class SpoolBusy(RuntimeError):
    """Another process holds the lock."""


class SpoolCorrupt(RuntimeError):
    """A frame inside a segment does not match its checksum."""


@dataclass(frozen=True)
class Record:
    received_at: float
    payload: bytes


def frame(payload: bytes, received_at: float) -> bytes:
    stamp = struct.pack("<d", received_at)
    return HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(stamp)), received_at) + payload


def parse_frames(data: bytes, where: str) -> tuple[list[Record], int]:
    """The whole frames in data and the byte count they cover; a torn last frame is left out.

    Raises SpoolCorrupt for a complete frame whose checksum is wrong (not a crash's torn tail).
    """
    records, pos = [], 0
    view = memoryview(data)
    while pos + HEADER.size <= len(data):
        length, crc, received_at = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if end > len(data):
            break
        payload = bytes(view[pos + HEADER.size:end])
        if zlib.crc32(payload, zlib.crc32(struct.pack("<d", received_at))) != crc:
            raise SpoolCorrupt(f"{where}: frame at byte {pos} fails its checksum")
        records.append(Record(received_at, payload))
        pos = end
    return records, pos


def read_segment(path: Path) -> list[Record]:
    records, _ = parse_frames(path.read_bytes(), str(path))
    return records


def closed_segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"*{CLOSED}") if p.is_file())


def open_segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"*{OPEN}") if p.is_file())


def spool_bytes(directory: Path) -> int:
    total = 0
    with os.scandir(directory) as entries:
        for e in entries:
            if e.name.endswith((OPEN, CLOSED)):
                try:
                    total += e.stat().st_size
                except FileNotFoundError:  # removed by the consumer meanwhile
                    pass
    return total


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(directory: Path, name: str, records: list[Record]) -> Path:
    """A closed segment written whole and flushed (tmp file, fsync, rename, fsync the folder)."""
    tmp = directory / f"{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(frame(r.payload, r.received_at) for r in records))
        f.flush()
        os.fsync(f.fileno())
    final = directory / f"{name}{CLOSED}"
    os.replace(tmp, final)
    fsync_dir(directory)
    return final


def recover_open_segments(directory: Path) -> int:
    """Close the open segments a killed server left: torn tails cut off, empty ones removed.

    Call only with the server lock held (no server is appending to them).
    """
    n = 0
    for path in open_segments(directory):
        data = path.read_bytes()
        try:
            _, good = parse_frames(data, str(path))
        except SpoolCorrupt:
            good = len(data)  # keep it whole: the consumer reports the bad frame
        if good == 0:
            path.unlink()
            continue
        if good < len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        os.replace(path, path.with_suffix(CLOSED))
        n += 1
    fsync_dir(directory)
    return n


class FileLock:
    """An exclusive flock on a file in the spool, released on close (or when the process dies)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> FileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SpoolBusy(f"{self.path} is held by another process") from None
                time.sleep(0.05)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FileLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_STOP = object()


class SpoolWriter:
    """Appends accepted payloads to the open segment from one thread.

    Group commit: everything queued while one fsync runs is written with the next single write and
    fsync, so concurrent requests share the flush. submit() returns a Future that completes only
    after the payload's bytes are on disk; the server answers 200 after that.
    """

    def __init__(self, directory: str | os.PathLike, segment_bytes: int, segment_max_age_s: float):
        self.dir = Path(directory)
        self.segment_bytes, self.segment_max_age_s = segment_bytes, segment_max_age_s
        self.lock = FileLock(self.dir / SERVER_LOCK)
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened_at = 0.0
        self._on_disk = 0  # spool bytes at the last scan, plus what was written since
        self._scanned_at = 0.0

    def start(self, lock_wait_s: float = 5.0) -> SpoolWriter:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(lock_wait_s)  # one server per spool; the consumer holds it only to recover
        recover_open_segments(self.dir)
        self._rescan()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()
        return self

    def usage(self) -> int:
        return self._on_disk

    def submit(self, payload: bytes) -> Future:
        fut: Future = Future()
        self._q.put((frame(payload, time.time()), fut))
        return fut

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join()
            self._thread = None
        self.lock.release()

    def _rescan(self) -> None:
        self._on_disk, self._scanned_at = spool_bytes(self.dir), time.monotonic()

    def _run(self) -> None:
        while True:
            timeout = _RESCAN_S
            if self._fd is not None:
                timeout = min(timeout, max(0.0, self._opened_at + self.segment_max_age_s - time.monotonic()))
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                item = None
            if time.monotonic() - self._scanned_at >= _RESCAN_S:
                self._rescan()
            if self._fd is not None and time.monotonic() - self._opened_at >= self.segment_max_age_s:
                self._close_segment()
            if item is None:
                continue
            batch, stop = [], item is _STOP
            if not stop:
                batch.append(item)
                size = len(item[0])
                while size < _GROUP_BYTES:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
                    size += len(nxt[0])
            if batch:
                self._commit(batch)
            if stop:
                self._drain_and_stop()
                return

    def _drain_and_stop(self) -> None:
        rest = []
        while True:
            try:
                nxt = self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is not _STOP:
                rest.append(nxt)
        if rest:
            self._commit(rest)
        if self._fd is not None:
            self._close_segment()

    def _commit(self, batch: list) -> None:
        data = b"".join(f for f, _ in batch)
        try:
            fd = self._open_segment()
            view, written = memoryview(data), 0
            try:
                while written < len(data):
                    written += os.write(fd, view[written:])
                os.fdatasync(fd)
            except OSError:
                os.ftruncate(fd, self._size)  # no half frame left behind a failed write (disk full)
                raise
        except OSError as e:
            for _, fut in batch:
                fut.set_exception(e)
            return
        self._size += len(data)
        self._on_disk += len(data)
        for _, fut in batch:
            fut.set_result(None)
        if self._size >= self.segment_bytes:
            self._close_segment()

    def _open_segment(self) -> int:
        if self._fd is None:
            path = self.dir / f"seg-{time.time_ns():020d}{OPEN}"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            fsync_dir(self.dir)  # the file's name is durable before any frame in it is acknowledged
            self._path, self._size, self._opened_at = path, 0, time.monotonic()
        return self._fd

    def _close_segment(self) -> None:
        assert self._fd is not None and self._path is not None
        os.close(self._fd)
        self._fd = None
        if self._size:
            os.replace(self._path, self._path.with_suffix(CLOSED))
        else:
            self._path.unlink()
        fsync_dir(self.dir)


def iter_trace_ids(records: list[Record]) -> Iterator[tuple[float, bytes]]:
    """(arrival time, trace id) for every span in the records (used to find traces still arriving)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for r in records:
        msg = ExportTraceServiceRequest.FromString(r.payload)
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    yield r.received_at, s.trace_id
