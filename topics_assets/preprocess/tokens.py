"""Token counting with a real BPE tokenizer that works offline.

tiktoken normally downloads its vocabulary on first use; litellm (already a
dependency) ships the vocabulary files in its package, so we point tiktoken at
them. We only locate litellm's folder, never import litellm (a slow import).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import tiktoken

ENCODING = "o200k_base"  # the GPT-4o / GPT-4.1 family tokenizer

_lock = threading.Lock()
_encoder: tiktoken.Encoding | None = None


def _litellm_tokenizers_dir() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("litellm is not installed; it ships the tokenizer files used offline")
    return Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"


def encoder() -> tiktoken.Encoding:
    """The cached encoder, loaded from litellm's bundled files (no network)."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                # tiktoken reads the cache dir from the environment at load time only;
                # restore it afterwards so we leave the process as we found it.
                previous = os.environ.get("TIKTOKEN_CACHE_DIR")
                os.environ["TIKTOKEN_CACHE_DIR"] = str(_litellm_tokenizers_dir())
                try:
                    _encoder = tiktoken.get_encoding(ENCODING)
                finally:
                    if previous is None:
                        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
                    else:
                        os.environ["TIKTOKEN_CACHE_DIR"] = previous
    return _encoder


def count_tokens(text: str) -> int:
    """Tokens in text; special-token strings in trace content count as plain text."""
    if not text:
        return 0
    return len(encoder().encode_ordinary(text))


def truncate_to_tokens(text: str, n: int) -> str:
    """A prefix of text of at most n tokens (cut at a token boundary)."""
    if n <= 0:
        return ""
    enc = encoder()
    # Only the first n tokens matter: encode a prefix long enough to hold them
    # (a token is rarely more than ~30 characters), not the whole text.
    head = text[: n * 32]
    ids = enc.encode_ordinary(head)
    if len(ids) <= n and len(head) == len(text):
        return text
    # Decoding can split a multi-byte character; drop the broken tail.
    return enc.decode_bytes(ids[:n]).decode("utf-8", errors="ignore")
