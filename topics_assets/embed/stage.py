"""The embed stage: each distinct facet text of some days, once per model."""

from __future__ import annotations

import dataclasses
import time

from ..config import Settings
from ..results import StageResult
from ..store import Store
from . import Embedder, make_embedder

EMBED_CHUNK = 2048  # texts per embeddings write: bounds what a failed remote batch can lose


class EmbeddingIncomplete(RuntimeError):
    """Some new facet texts could not be embedded; the ones before them were stored."""


@dataclasses.dataclass(frozen=True)
class EmbedResult(StageResult):
    model: str
    embedded: int
    seconds: float


def embed_days(*, store: Store, settings: Settings, days: list[str], embedder: Embedder | None = None,
               chunk: int = EMBED_CHUNK) -> EmbedResult:
    """Vectors are stored `chunk` texts at a time, so when a remote batch fails for good (after its
    retries) the run stops there but keeps every vector already paid for; the next run embeds
    only the rest."""
    t0 = time.monotonic()
    embedder = embedder or make_embedder(settings.embedding)
    missing = store.texts_missing_embeddings(days, embedder.model_id, settings.text_facet_names)
    done = 0
    for start in range(0, len(missing), max(1, chunk)):
        part = missing.iloc[start:start + chunk]
        try:
            vectors = embedder.embed(part.text.tolist())
        except Exception as e:
            raise EmbeddingIncomplete(
                f"embedding with {embedder.model_id} stopped after {done} of {len(missing)} new texts "
                f"({type(e).__name__}: {e}); the {done} are stored, the next run embeds the other "
                f"{len(missing) - done}") from e
        store.write_embeddings(embedder.model_id, part.text_hash.tolist(), part.text.tolist(), vectors)
        done += len(part)
    return EmbedResult(model=embedder.model_id, embedded=done, seconds=round(time.monotonic() - t0, 3))
