"""OTLP/HTTP trace requests and responses, on the opentelemetry-proto messages.

Decoding is the messages' own (protobuf's parser; google.protobuf.json_format for JSON). The one
step json_format cannot do is the OTLP/JSON rule that trace and span ids are hex, not base64 as
in protobuf's generic JSON mapping: those few fields are re-encoded before json_format sees them
(ids that are not hex of the right length are left for it, so base64 ids work too).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF, JSON = "application/x-protobuf", "application/json"
ENCODINGS = ("identity", "gzip", "deflate")


class BadRequest(ValueError):
    """The body cannot be parsed (400)."""


class TooLarge(ValueError):
    """The body, or what it decompresses to, is over the limit (413)."""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per Content-Encoding, never more than `limit` bytes of output (a zip bomb is 413)."""
    if encoding in ("", "identity"):
        return body
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out, data = [], body
    total = 0
    try:
        while data:  # gzip may hold several members
            d = zlib.decompressobj(wbits)
            chunk = d.decompress(data, limit + 1 - total)
            total += len(chunk)
            out.append(chunk)
            if total > limit or d.unconsumed_tail:
                raise TooLarge(f"the body decompresses to more than {limit:,} bytes")
            if not d.eof:
                raise BadRequest(f"the {encoding} stream is truncated")
            data = d.unused_data if encoding == "gzip" else b""
            if data and not data.strip(b"\0"):
                break
    except zlib.error as e:
        raise BadRequest(f"not valid {encoding}: {e}") from None
    return b"".join(out)


_HEX = re.compile(r"[0-9a-fA-F]+")
_ID_FIELDS = {("traceId", "trace_id"): 16, ("spanId", "span_id"): 8, ("parentSpanId", "parent_span_id"): 8}


def _b64_ids(obj: dict) -> None:
    for keys, n in _ID_FIELDS.items():
        for k in keys:
            v = obj.get(k)
            if isinstance(v, str) and len(v) == 2 * n and _HEX.fullmatch(v):
                obj[k] = base64.b64encode(bytes.fromhex(v)).decode()


def _list(obj: dict, *keys: str) -> list:
    for k in keys:
        v = obj.get(k)
        if isinstance(v, list):
            return v
    return []


def _otlp_json_ids(doc: dict) -> None:
    """Hex trace/span ids (OTLP/JSON) as base64, where json_format expects bytes; in place."""
    for rs in _list(doc, "resourceSpans", "resource_spans"):
        if not isinstance(rs, dict):
            continue
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            if not isinstance(ss, dict):
                continue
            for span in _list(ss, "spans"):
                if not isinstance(span, dict):
                    continue
                _b64_ids(span)
                for link in _list(span, "links"):
                    if isinstance(link, dict):
                        _b64_ids(link)


def parse_request(raw: bytes, content_type: str) -> ExportTraceServiceRequest:
    if content_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(raw)
        except (DecodeError, RecursionError) as e:
            raise BadRequest(f"not a protobuf ExportTraceServiceRequest: {e}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"an OTLP/JSON request is an object, got {type(doc).__name__}")
    _otlp_json_ids(doc)
    try:
        return json_format.ParseDict(doc, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as e:
        raise BadRequest(f"not an OTLP/JSON ExportTraceServiceRequest: {e}") from None


def _span_problem(span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid traceId (not 16 bytes, or all zero)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid spanId (not 8 bytes, or all zero)"
    if len(span.parent_span_id) not in (0, 8):
        return "invalid parentSpanId (not 8 bytes)"
    return None


def filter_spans(msg: ExportTraceServiceRequest, keep: Callable) -> ExportTraceServiceRequest:
    """A request with only the spans for which keep(span) is true (resources and scopes kept as they were)."""
    out = ExportTraceServiceRequest()
    for rs in msg.resource_spans:
        new_rs = None
        for ss in rs.scope_spans:
            kept = [s for s in ss.spans if keep(s)]
            if not kept:
                continue
            if new_rs is None:
                new_rs = out.resource_spans.add()
                new_rs.resource.CopyFrom(rs.resource)
                new_rs.schema_url = rs.schema_url
            new_ss = new_rs.scope_spans.add()
            new_ss.scope.CopyFrom(ss.scope)
            new_ss.schema_url = ss.schema_url
            new_ss.spans.extend(kept)
    return out


def count_spans(msg: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)


@dataclass
class Accepted:
    payload: bytes  # what goes to the spool: the request less its rejected spans, protobuf-encoded
    spans: int
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)

    def message(self) -> str:
        return "; ".join(f"{n} span(s): {why}" for why, n in self.reasons.most_common())


def accept(raw: bytes, content_type: str, max_spans: int) -> Accepted:
    """Parse a (decompressed) body and drop the spans that cannot be stored, counting why.

    Raises BadRequest when the body does not parse at all.
    """
    msg = parse_request(raw, content_type)
    reasons: Counter = Counter()
    n = valid = 0
    for rs in msg.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                n += 1
                why = _span_problem(s)
                if why is None:
                    valid += 1
                else:
                    reasons[why] += 1
    if valid > max_spans:
        reasons[f"over the limit of {max_spans:,} spans per request"] += valid - max_spans
    if not reasons:
        return Accepted(raw if content_type == PROTOBUF else msg.SerializeToString(), n)
    budget = [max_spans]

    def keep(s) -> bool:
        if _span_problem(s) is not None:
            return False
        budget[0] -= 1
        return budget[0] >= 0

    kept = filter_spans(msg, keep)
    return Accepted(kept.SerializeToString(), min(valid, max_spans), n - min(valid, max_spans), reasons)


def response_body(accepted: Accepted | None, content_type: str) -> bytes:
    resp = ExportTraceServiceResponse()
    if accepted is not None and accepted.rejected:
        resp.partial_success.rejected_spans = accepted.rejected
        resp.partial_success.error_message = accepted.message()
    return _encode(resp, content_type)


_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 413: code_pb2.INVALID_ARGUMENT,
          415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}


def status_body(http_status: int, message: str, content_type: str) -> bytes:
    """The google.rpc.Status the OTLP/HTTP spec asks for in every 4xx and 5xx answer."""
    return _encode(status_pb2.Status(code=_CODES.get(http_status, code_pb2.UNKNOWN), message=message), content_type)


def _encode(msg, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return msg.SerializeToString()
    return json_format.MessageToJson(msg, indent=None).encode()


def to_otlp_json(payload: bytes) -> str:
    """A spooled request as one OTLP JSON export line, the shape ingest's OTLP reader reads."""
    msg = ExportTraceServiceRequest.FromString(payload)
    return json.dumps(json_format.MessageToDict(msg), ensure_ascii=False, separators=(",", ":"))
