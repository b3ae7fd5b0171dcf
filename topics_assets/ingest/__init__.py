"""Ingest: read trace files of any supported shape into Trace objects, auto-detected per record.

Shapes, one reader module each (listed in readers.READERS): chat logs ({"messages": [...]}),
span trees ({"spans": [...]}), tau-bench run files (records with "traj"), tau2-bench results
({"simulations": [...]}) and OpenTelemetry OTLP JSON ({"resourceSpans": [...]}, GenAI or
OpenInference attributes). A record that cannot be parsed becomes a Quarantined with a reason
that names the problem; it never stops the rest of the file from landing. Memory stays bounded
by the largest record: JSONL is streamed, and a line over MAX_RECORD_BYTES is skipped unread.
"""

from topics_assets.ingest.files import iter_lines, read_file
from topics_assets.ingest.otlp import SPAN_FORMATS, merge_exports
from topics_assets.ingest.readers import READERS, parse_record
from topics_assets.ingest.records import MAX_RECORD_BYTES, Context, RecordError, parse_time, write_actions

__all__ = [
    "MAX_RECORD_BYTES",
    "READERS",
    "SPAN_FORMATS",
    "Context",
    "RecordError",
    "iter_lines",
    "merge_exports",
    "parse_record",
    "parse_time",
    "read_file",
    "write_actions",
]
