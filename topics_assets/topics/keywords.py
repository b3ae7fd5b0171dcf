"""Keywords per cluster by class-based TF-IDF: one document per cluster, words frequent in it and rare elsewhere."""

from __future__ import annotations

import numpy as np

from .cluster import NOISE


def ctfidf_keywords(texts: list[str], labels: np.ndarray, n_keywords: int = 8) -> dict[int, list[str]]:
    """Class-based TF-IDF (one document per cluster): words frequent here and rare elsewhere."""
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted(int(c) for c in set(labels.tolist()) if c != NOISE)
    if not clusters:
        return {}
    members: dict[int, list[str]] = {c: [] for c in clusters}
    for t, l in zip(texts, labels.tolist()):
        if l != NOISE:
            members[l].append(t)
    docs = [" ".join(members[c]) for c in clusters]
    vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1,
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        counts = vectorizer.fit_transform(docs)
    except ValueError:  # only stop words
        return {c: [] for c in clusters}
    counts = counts.astype(np.float64)
    tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
    avg_words = counts.sum() / len(clusters)
    idf = np.log(1 + avg_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
    scores = tf.multiply(idf).tocsr()
    vocab = vectorizer.get_feature_names_out()
    out: dict[int, list[str]] = {}
    for row, c in enumerate(clusters):
        r = scores.getrow(row).toarray().ravel()
        order = np.argsort(-r)
        words: list[str] = []
        for i in order:
            if r[i] <= 0 or len(words) >= n_keywords:
                break
            w = vocab[i]
            # Skip a unigram already covered by a chosen bigram and vice versa.
            if any(w in x.split() or x in w.split() for x in words):
                continue
            words.append(w)
        out[c] = words
    return out
