"""Remote embeddings: voyageai for voyage/<model>, litellm for every other provider, with our retries."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..config import EmbeddingSettings
from ..llm.client import litellm_module
from ..llm.concurrency import run_bounded
from ..llm.errors import LLMError
from ..llm.retries import BACKOFF_BASE_S, RetryPolicy
from .base import normalise

VOYAGE_MAX_TEXTS = 128
VOYAGE_MAX_TOKENS = 120_000

def embed_texts(
    texts: list[str],
    model: str,
    api_base: str | None = None,
    api_key: str | None = None,
    batch_size: int = 64,
    max_retries: int = 5,
    *,
    timeout_s: float = 60.0,
    deadline_s: float | None = None,
    max_in_flight: int = 1,
    input_type: str | None = "document",
    backoff_base_s: float = BACKOFF_BASE_S,
) -> np.ndarray:
    """Embed texts with a remote model: an (n, dim) float32 array in input order.

    "voyage/<model>" goes through the voyageai SDK (batches of at most 128 texts and an estimated
    120k tokens); any other name through litellm.embedding. Batches are retried like chat calls;
    if one batch fails for good the whole call raises LLMError, since a partial matrix is no use.
    input_type is passed to Voyage only (document vs query embeddings differ there). timeout_s
    bounds each read; deadline_s (default timeout_s) each batch request in all.
    """
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"embed_texts needs strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    if model == "local":
        raise ValueError("the 'local' embedding model runs in-process, not through embed_texts")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    policy = RetryPolicy(max_retries=max_retries, backoff_base_s=backoff_base_s, deadline_s=deadline_s or timeout_s)

    if model.startswith("voyage/"):
        batches = voyage_batches(texts, min(batch_size, VOYAGE_MAX_TEXTS), VOYAGE_MAX_TOKENS)
        client = _voyage_client(api_key, api_base, timeout_s)
        name = model.split("/", 1)[1]

        def embed_batch(batch: list[str]) -> list[list[float]]:
            result = client.embed(batch, model=name, input_type=input_type)
            return list(result.embeddings)

    else:
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), max(1, batch_size))]
        litellm = litellm_module()

        def embed_batch(batch: list[str]) -> list[list[float]]:
            resp = litellm.embedding(
                model=model,
                input=batch,
                api_base=api_base,
                api_key=api_key,
                timeout=timeout_s,
                num_retries=0,
                max_retries=0,
            )
            rows = sorted(resp.data, key=lambda d: _get(d, "index", 0))
            return [list(_get(d, "embedding")) for d in rows]

    def with_retries(batch: list[str]) -> list[list[float]]:
        vectors, _ = policy.run(lambda: embed_batch(batch))
        if len(vectors) != len(batch):
            raise LLMError(f"asked for {len(batch)} embeddings, got {len(vectors)}", reason="bad_response")
        return vectors

    results = run_bounded(with_retries, batches, max_in_flight)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    rows = [v for vectors in results for v in vectors]
    dims = {len(v) for v in rows}
    if len(dims) != 1:
        raise LLMError(f"embeddings of different sizes came back: {sorted(dims)}", reason="bad_response")
    return np.asarray(rows, dtype=np.float32)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """litellm returns embedding rows as dicts or objects depending on provider."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate (UTF-8 bytes / 3) for packing batches offline.

    Over-counts English (about 4 characters a token) and is about right for CJK, so batches
    stay under a provider's limit without downloading its tokenizer.
    """
    return len(text.encode("utf-8")) // 3 + 1


def voyage_batches(texts: list[str], max_texts: int, max_tokens: int) -> list[list[str]]:
    batches: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        t = estimate_tokens(text)
        if current and (len(current) >= max_texts or tokens + t > max_tokens):
            batches.append(current)
            current, tokens = [], 0
        current.append(text)  # a single over-long text goes alone; Voyage truncates it
        tokens += t
    if current:
        batches.append(current)
    return batches


def _voyage_client(api_key: str | None, api_base: str | None, timeout_s: float):
    import voyageai

    # max_retries=0: the SDK's own tenacity retries are off, ours apply.
    return voyageai.Client(api_key=api_key, max_retries=0, timeout=timeout_s, base_url=api_base)


class RemoteEmbedder:
    """voyageai ("voyage/<model>") or any litellm embedding model."""

    def __init__(self, settings: EmbeddingSettings):
        self.settings = settings
        self.model_id = settings.model

    def embed(self, texts: list[str]) -> np.ndarray:
        key = os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
        vecs = embed_texts(texts, self.settings.model, api_base=self.settings.api_base, api_key=key,
                           batch_size=self.settings.batch_size, timeout_s=self.settings.timeout_s,
                           deadline_s=self.settings.deadline_s)
        return normalise(vecs)
