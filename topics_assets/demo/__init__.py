"""The demo: seeded synthetic agent traces (scenario families in families.yaml) for `topics demo` and tests."""

from topics_assets.demo.generator import OUTCOMES, SCENARIOS, SENTIMENTS, TOOL_ERROR_FAMILIES, generate_traces, write_jsonl

__all__ = ["OUTCOMES", "SCENARIOS", "SENTIMENTS", "TOOL_ERROR_FAMILIES", "generate_traces", "write_jsonl"]
