"""Topics: continuous topic maps for production LLM-agent traces."""

__version__ = "0.1.0"
