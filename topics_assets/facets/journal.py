"""A write-ahead journal of LLM facet answers, so an answer that was paid for is never paid for twice.

Each answer is appended (one JSON line, flushed to the OS) the moment it arrives; the store is
written in batches. A process killed between the two leaves its journal behind, and the next run
takes those answers from it instead of calling the LLM again. A journal is deleted once its
answers are in the store; one per process, so concurrent runs never share a file. Lines whose key
is not a `Key` (an older release's, before trace ids were scoped by project) are ignored and dropped.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

Key = tuple[str, str, str, str, str]  # project, trace_id, content_hash, facets_hash, model
KEY_LEN = 5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FacetJournal:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.path = self.dir / f"facets-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fh = None

    @classmethod
    def for_store(cls, database: str | None, home: str) -> FacetJournal | None:
        """Beside a store file (so a copied store keeps its journal); under home for a server store."""
        if not database or database == ":memory:":
            return None
        if "://" in database:
            return cls(Path(home) / "journal")
        return cls(Path(database).parent / "journal")

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("facets-*.jsonl")) if self.dir.is_dir() else []

    def load(self) -> dict[Key, dict[str, str]]:
        """Answers left by earlier (or concurrent) runs; a torn last line is ignored."""
        saved: dict[Key, dict[str, str]] = {}
        for path in self._files():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    rec = _parse(line)
                    if rec is not None:
                        saved[rec[0]] = rec[1]
        return saved

    def append(self, key: Key, facets: dict[str, str]) -> None:
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps({"key": list(key), "facets": facets}, ensure_ascii=False) + "\n")
        self._fh.flush()

    def finish(self, stored: set[Key]) -> None:
        """Drop the answers that are in the store now, from this run's journal and from dead runs'."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for path in self._files():
            pid = path.name.split("-")[1]
            if path != self.path and (not pid.isdigit() or _alive(int(pid))):
                continue  # a live run's journal is its own business
            with open(path, encoding="utf-8") as fh:
                left = [line for line in fh if not _stored(line, stored)]
            if left:
                path.write_text("".join(left), encoding="utf-8")
            else:
                path.unlink(missing_ok=True)


def _parse(line: str) -> tuple[Key, dict[str, str]] | None:
    """A journal line's key and answer; None for a torn line or an older release's key."""
    try:
        rec = json.loads(line)
        key, facets = tuple(rec["key"]), rec["facets"]
    except (ValueError, KeyError, TypeError):
        return None
    return (key, facets) if len(key) == KEY_LEN and all(isinstance(k, str) for k in key) else None


def _stored(line: str, stored: set[Key]) -> bool:
    rec = _parse(line)
    return rec is None or rec[0] in stored  # a torn or outdated line is nothing to keep
