"""Embedding of facet texts (never raw traces). Vectors are L2-normalised float32.

The offline default is all-MiniLM-L6-v2 shipped inside a wheel (local.py), loaded with no hub
access; voyageai and litellm models when configured (remote.py). `embed_days` (stage.py) is the stage.
"""

from __future__ import annotations

import numpy as np

from ..config import EmbeddingSettings
from .base import Embedder, normalise
from .local import LOCAL_MODEL_ID, LocalEmbedder, TorchEmbedder
from .remote import RemoteEmbedder, embed_texts

__all__ = ["LOCAL_MODEL_ID", "Embedder", "LocalEmbedder", "RemoteEmbedder", "TorchEmbedder", "embed_texts",
           "embed_unique", "embedding_model_id", "is_local", "make_embedder", "normalise"]


def is_local(settings: EmbeddingSettings) -> bool:
    return settings.model in ("local", LOCAL_MODEL_ID)


def embedding_model_id(settings: EmbeddingSettings) -> str:
    """The id vectors are stored under, known without loading the model."""
    return LOCAL_MODEL_ID if is_local(settings) else settings.model


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    if is_local(settings):
        return LocalEmbedder()  # embedding.batch_size sizes API requests; local batches are tuned
    return RemoteEmbedder(settings)


def embed_unique(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Embed each distinct text once and scatter the vectors back to every position."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    vecs = embedder.embed([str(t) for t in uniq])
    return vecs[inverse]
