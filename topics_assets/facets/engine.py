"""The facet engine protocol, and the one place an engine is chosen from settings."""

from __future__ import annotations

from typing import Protocol

from ..config import FacetSpec
from .extractive import ExtractiveFacetEngine
from .llm_engine import LLMFacetEngine


class FacetEngine(Protocol):
    """Every facet of one preprocessed trace, as {facet name: text}; raises on failure.

    `engine` ('llm' | 'extractive') and `model` are written beside every row, so a reader can
    always tell an LLM summary from an extracted one.
    """

    engine: str
    specs: list[FacetSpec]

    @property
    def model(self) -> str: ...

    def facet(self, text: str) -> dict[str, str]: ...


def make_engine(settings, client=None):
    """The LLM engine when a model is configured, else the extractive one."""
    if settings.llm.model:
        if client is None:
            from ..llm import LLMClient

            client = LLMClient(settings.llm, api_key=settings.llm_api_key())
        return LLMFacetEngine(settings.facets, client)
    from ..embed import LocalEmbedder  # the offline engine's sentiment classifier reads the local embedding

    return ExtractiveFacetEngine(settings.facets, embedder=LocalEmbedder())
