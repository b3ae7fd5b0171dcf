"""The offline runtime gives the plain model's vectors, row for row, however batches are split."""

import numpy as np

from topics_assets.embed import LocalEmbedder, TorchEmbedder, embed_unique

TEXTS = [
    "refund",
    "How do I reset my password?",
    "My card was charged twice for the same order and the support chat keeps closing on me.",
    "",
    "Where is my parcel? It said delivered yesterday but nothing arrived at the door.",
    "cancel",
    "Can you explain why my transfer to a German IBAN is still pending after three days?" * 6,
    "How do I reset my password?",
    "What is the exchange rate for USD to EUR today?",
    "I want to close my account",
    "Why was my top-up declined?",
]


def test_parallel_small_batches_match_pytorch_row_for_row():
    reference = TorchEmbedder().embed(TEXTS)
    for batch_size, workers in ((3, 2), (2, 4), (64, 1)):
        vecs = LocalEmbedder(batch_size=batch_size, workers=workers).embed(TEXTS)
        cos = (vecs * reference).sum(axis=1)
        assert cos.min() > 0.9999, (batch_size, workers, cos.round(5).tolist())
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_duplicates_are_embedded_once_and_scattered_back():
    class Counting(LocalEmbedder):
        seen: list[str] = []

        def embed(self, texts):
            Counting.seen.extend(texts)
            return super().embed(texts)

    vecs = embed_unique(Counting(), TEXTS)
    assert len(Counting.seen) == len(set(TEXTS))
    assert np.allclose(vecs[1], vecs[7])
    assert np.allclose(vecs, LocalEmbedder().embed(TEXTS), atol=1e-5)
