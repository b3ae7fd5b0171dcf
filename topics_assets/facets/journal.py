"""A write-ahead journal of LLM answers, so an answer that was paid for is never paid for twice.

One kind per file prefix: facet answers (`FacetJournal`, keyed by trace) and topic names
(`NamingJournal`, keyed by the naming prompt). Each answer is appended (one JSON line, flushed to the OS) the moment it arrives; the store is
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

from ..claims import pid_alive

Key = tuple[str, str, str, str, str]  # project, trace_id, content_hash, facets_hash, model
KEY_LEN = 5
NamingKey = tuple[str, str, str]  # facet, model, sha256 of the naming request


class AnswerJournal:
    kind = "answers"  # the file prefix
    key_len = 0
    field = "answer"  # the record's answer field

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.path = self.dir / f"{self.kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fh = None

    @classmethod
    def for_store(cls, database: str | None, home: str):
        """Beside a store file (so a copied store keeps its journal); under home for a server store."""
        if not database or database == ":memory:":
            return None
        if "://" in database:
            return cls(Path(home) / "journal")
        return cls(Path(database).parent / "journal")

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.kind}-*.jsonl")) if self.dir.is_dir() else []

    def load(self) -> dict[tuple, dict]:
        """Answers left by earlier (or concurrent) runs; a torn last line is ignored."""
        saved: dict[tuple, dict] = {}
        for path in self._files():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    rec = self._parse(line)
                    if rec is not None:
                        saved[rec[0]] = rec[1]
        return saved

    def append(self, key: tuple, answer: dict) -> None:
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps({"key": list(key), self.field: answer}, ensure_ascii=False) + "\n")
        self._fh.flush()

    def finish(self, stored: set[tuple]) -> None:
        """Drop the answers that are in the store now, from this run's journal and from dead runs'."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for path in self._files():
            pid = path.name.split("-")[1]
            if path != self.path and (not pid.isdigit() or pid_alive(int(pid))):
                continue  # a live run's journal is its own business
            with open(path, encoding="utf-8") as fh:
                left = [line for line in fh if not self._stored(line, stored)]
            if left:
                path.write_text("".join(left), encoding="utf-8")
            else:
                path.unlink(missing_ok=True)


    def _parse(self, line: str) -> tuple[tuple, dict] | None:
        """A journal line's key and answer; None for a torn line or an older release's key."""
        try:
            rec = json.loads(line)
            key, answer = tuple(rec["key"]), rec[self.field]
        except (ValueError, KeyError, TypeError):
            return None
        return (key, answer) if len(key) == self.key_len and all(isinstance(k, str) for k in key) else None

    def _stored(self, line: str, stored: set[tuple]) -> bool:
        rec = self._parse(line)
        return rec is None or rec[0] in stored  # a torn or outdated line is nothing to keep


class FacetJournal(AnswerJournal):
    """Facet answers by trace: a rerun after a kill takes them instead of calling the LLM again."""

    kind, key_len, field = "facets", KEY_LEN, "facets"


class NamingJournal(AnswerJournal):
    """Topic names by naming request: a map generation killed while naming reuses the names it paid for
    (the same data gives the same clusters, hence the same requests)."""

    kind, key_len, field = "naming", 3, "answer"

    def __init__(self, directory: str | os.PathLike):
        super().__init__(directory)
        self.used: set[NamingKey] = set()  # asked or reused by this run: dropped once its map lands
