"""Facets: one summary per (trace, facet), every facet of a trace from one engine call.

engine.py chooses the engine (LLM when a model is configured, else extractive); stage.py is the
stage that facets the traces of some days, journaling paid answers as they arrive.
"""

from .engine import FacetEngine, make_engine
from .extractive import (
    EXTRACTIVE_MODEL,
    ExtractiveFacetEngine,
    SentimentClassifier,
    extract_issues,
    extract_sentiment,
    first_request,
    split_blocks,
)
from .llm_engine import LLMFacetEngine, validator
from .prompts import SCORE_RANGE, SYSTEM_PROMPT, facet_lines, facet_messages, facet_schema

__all__ = ["EXTRACTIVE_MODEL", "SCORE_RANGE", "SYSTEM_PROMPT", "ExtractiveFacetEngine", "FacetEngine", "SentimentClassifier",
           "LLMFacetEngine", "extract_issues", "extract_sentiment", "facet_lines", "facet_messages",
           "facet_schema", "first_request", "make_engine", "split_blocks", "validator"]
