"""Preprocess: a trace becomes the one linear, de-duplicated, redacted, capped text a facet model reads.

walk (span tree -> conversation), attachments (placeholders; a leaf that parsing also uses),
redact, tokens, cap (the token budget), custom (user callables), core (the whole step) and
stage (preprocess_days, over the store).
"""

from topics_assets.preprocess.core import PreprocessedTrace, preprocess
from topics_assets.preprocess.custom import CustomPreprocessorError, apply_custom, load_custom
from topics_assets.preprocess.attachments import strip_attachments
from topics_assets.preprocess.redact import redact  # after core: the function, not the submodule
from topics_assets.preprocess.tokens import count_tokens, truncate_to_tokens

__all__ = [
    "CustomPreprocessorError",
    "PreprocessedTrace",
    "apply_custom",
    "count_tokens",
    "load_custom",
    "preprocess",
    "redact",
    "strip_attachments",
    "truncate_to_tokens",
]
