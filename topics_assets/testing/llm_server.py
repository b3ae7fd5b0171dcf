"""A small OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks (yours too: point a custom facet at it).

Tests point the real client (litellm, the voyageai SDK) at it, so request building, retries
and response parsing are exercised over a real socket, with no monkeypatching.

    with FakeLLMServer() as server:
        server.chat_handler = lambda body: '{"task": "..."}'
        server.faults.append(("status", 429, {"Retry-After": "1"}))
        ...  # model "openai/test-model", api_base=server.url, api_key="test-key"

Faults are consumed in order, one per request (chat or embeddings alike):
    ("status", code, headers[, message])  answer with that HTTP status and an OpenAI error body
    ("malformed", None, {})               chat content that is not JSON at all
    ("truncated", None, {})               the handler's content cut in half, finish_reason "length"
    ("drop", None, {})                    close the socket without any response
    ("slow", seconds, {})                 sleep, then answer normally
    ("drip", seconds, {})                 the normal answer, 8 bytes at a time, `seconds` apart (every
                                          read is quick, the whole answer slow: a per-read timeout
                                          never fires)
    ("bad_utf8", None, {})                chat content with bytes that are not UTF-8 (a 200 answer)

`fail_all = (code, headers)` answers every request with that HTTP status, after any faults.

`schema_answer` answers any facet schema validly; `python -m topics_assets.testing.llm_server
--latency 0.25` runs one in its own process (benchmarks).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

EMBED_DIM = 16


def count_tokens(text: str) -> int:
    """Roughly 4 characters a token: nonzero and proportional to input, like a real tokenizer."""
    return max(1, len(text) // 4)


def hash_embedding(text: str, dim: int = EMBED_DIM) -> list[float]:
    """A deterministic unit vector per text, so tests can check order and identity."""
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    while len(raw) < dim * 2:
        raw += hashlib.sha256(raw).digest()
    values = [(int.from_bytes(raw[2 * i : 2 * i + 2], "little") / 65535.0) - 0.5 for i in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def default_chat_handler(body: dict) -> str:
    """Echo the last user message back inside a JSON object."""
    last = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
    return json.dumps({"echo": _text_of(last.get("content"))})


def request_schema(body: dict) -> dict | None:
    """The JSON schema a chat request asks for: response_format json_schema, else one quoted in a
    system message (the json_object / prompt modes), else None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    for m in body.get("messages", []):
        text = _text_of(m.get("content"))
        if m.get("role") == "system" and "JSON Schema:" in text:
            try:
                return json.loads(text.split("JSON Schema:", 1)[1])
            except ValueError:
                return None
    return None


def trace_block(body: dict) -> str | None:
    """The text between <trace> and </trace> in the first user message, or None."""
    for m in body.get("messages", []):
        if m.get("role") == "user":
            text = _text_of(m.get("content"))
            if "<trace>" in text and "</trace>" in text:
                return text.split("<trace>", 1)[1].rsplit("</trace>", 1)[0].strip("\n")
            return None
    return None


def schema_answer(body: dict) -> str:
    """A valid answer for whatever object schema the request carries, varied by the trace.

    Enums pick a category and integers a value in range, both from a hash of the trace, so one
    handler serves any facet configuration in tests and benchmarks.
    """
    schema = request_schema(body) or {"properties": {}}
    seed = int(hashlib.sha256((trace_block(body) or "").encode()).hexdigest(), 16)
    out: dict[str, Any] = {}
    for i, (name, prop) in enumerate((schema.get("properties") or {}).items()):
        pick = (seed >> (8 * i)) & 0xFF
        if "enum" in prop:
            out[name] = prop["enum"][pick % len(prop["enum"])]
        elif prop.get("type") == "integer":
            lo, hi = prop.get("minimum", 1), prop.get("maximum", 5)
            out[name] = lo + pick % (hi - lo + 1)
        else:
            out[name] = f"The user asks about case {pick % 7} ({name})."
    return json.dumps(out)


def default_embed_handler(texts: list[str]) -> list[list[float]]:
    return [hash_embedding(t) for t in texts]


def _text_of(content: Any) -> str:
    """Message content is a string or a list of parts ({"type": "text", "text": ...})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


class FakeLLMServer:
    """OpenAI-compatible /v1/chat/completions and /v1/embeddings on an ephemeral port."""

    def __init__(
        self,
        chat_handler: Callable[[dict], str | dict] | None = None,
        embed_handler: Callable[[list[str]], list[list[float]]] | None = None,
        latency_s: float = 0.0,
    ):
        self.chat_handler = chat_handler or default_chat_handler
        self.embed_handler = embed_handler or default_embed_handler
        self.latency_s = latency_s
        self.faults: collections.deque = collections.deque()  # appends/poplefts are thread-safe
        self.fail_all: tuple[int, dict] | None = None
        self._requests: list[tuple[str, dict, float]] = []
        self._headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight_seen = 0
        self.usage_reported = {"prompt_tokens": 0, "completion_tokens": 0}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "FakeLLMServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- records -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, dict, float]]:
        """(path, json body, arrival time.monotonic()) for every request, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """HTTP headers of each request (lower-cased names), aligned with `requests`."""
        with self._lock:
            return list(self._headers)

    def requests_to(self, suffix: str) -> list[tuple[str, dict, float]]:
        return [r for r in self.requests if r[0].endswith(suffix)]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._headers.clear()
            self.faults.clear()
            self.max_in_flight_seen = 0
            self.usage_reported = {"prompt_tokens": 0, "completion_tokens": 0}

    def _record(self, path: str, body: dict, headers: dict[str, str]) -> None:
        with self._lock:
            self._requests.append((path, body, time.monotonic()))
            self._headers.append(headers)

    def _next_fault(self) -> tuple | None:
        try:
            return self.faults.popleft()
        except IndexError:
            return None

    def _count_usage(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.usage_reported["prompt_tokens"] += prompt
            self.usage_reported["completion_tokens"] += completion


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog (5) drops SYNs when many clients connect at once


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"  # keep-alive, like real APIs
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's delayed
    # ACK add about 40 ms to every answer (measured), which no real API server does.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections go away eventually

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = self.path.split("?", 1)[0]
        fake._record(path, body, {k.lower(): v for k, v in self.headers.items()})
        with fake._lock:
            fake._in_flight += 1
            fake.max_in_flight_seen = max(fake.max_in_flight_seen, fake._in_flight)
        try:
            self._answer(path, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer
        finally:
            with fake._lock:
                fake._in_flight -= 1

    def _answer(self, path: str, body: dict) -> None:
        fake = self.fake
        self._drip_s = None
        if fake.latency_s:
            time.sleep(fake.latency_s)
        if path.endswith("/chat/completions"):
            kind = "chat"
        elif path.endswith("/embeddings"):
            kind = "embeddings"
        else:
            self._send_error(404, f"unknown path {path}", {})
            return
        fault = fake._next_fault()
        if fault is None and fake.fail_all is not None:
            fault = ("status", *fake.fail_all)
        name, arg, headers = (tuple(fault) + (None, {}))[:3] if fault else (None, None, {})
        headers = headers or {}
        if name == "status":
            message = fault[3] if len(fault) > 3 else f"injected fault: HTTP {arg}"
            self._send_error(int(arg), message, headers)
            return
        if name == "drop":
            self.close_connection = True  # returning without a response closes the socket
            return
        if name == "slow":
            time.sleep(float(arg))
        if name == "drip":
            self._drip_s = float(arg)
        if kind == "chat":
            self._chat(body, name)
        else:
            self._embeddings(body, name)

    def _chat(self, body: dict, fault: str | None) -> None:
        fake = self.fake
        content = fake.chat_handler(body)
        if not isinstance(content, str):
            content = json.dumps(content)
        finish_reason = "stop"
        if fault == "malformed":
            content = "Sure! Here is the summary you asked for: the user wants help, {not json"
        elif fault == "truncated":
            content = content[: max(1, len(content) // 2)]
            finish_reason = "length"
        prompt = count_tokens(" ".join(_text_of(m.get("content")) for m in body.get("messages", [])))
        completion = count_tokens(content)
        fake._count_usage(prompt, completion)
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        data = json.dumps(answer).encode()
        if fault == "bad_utf8":  # a lone continuation byte and a truncated sequence inside the content
            data = data.replace(b'"content": "', b'"content": "\x80\xe2\x82', 1)
        self._send_raw(200, data, {})

    def _embeddings(self, body: dict, fault: str | None) -> None:
        fake = self.fake
        texts = body.get("input", [])
        if isinstance(texts, str):
            texts = [texts]
        if fault in ("malformed", "truncated"):
            self._send_raw(200, b'{"object": "list", "data": [{"embedding": [0.1, ', {})
            return
        vectors = fake.embed_handler(list(texts))
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, vec in enumerate(vectors):
            value: Any = list(vec)
            if as_base64:  # what the openai SDK asks for by default: little-endian float32
                value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        prompt = sum(count_tokens(t) for t in texts)
        fake._count_usage(prompt, 0)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "test-embed"),
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
            },
        )

    def _send_error(self, status: int, message: str, headers: dict) -> None:
        kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "api_error")
        # "error" is the OpenAI shape; "detail" is what the voyageai SDK reads.
        payload = {"error": {"message": message, "type": kind, "code": str(status)}, "detail": message}
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send_raw(status, json.dumps(payload).encode(), {})

    def _send_raw(self, status: int, data: bytes, headers: dict) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.end_headers()
        drip = getattr(self, "_drip_s", None)
        if not drip:
            self.wfile.write(data)
            return
        for i in range(0, len(data), 8):
            self.wfile.write(data[i : i + 8])
            self.wfile.flush()
            time.sleep(drip)


def main() -> None:
    """Serve on 127.0.0.1 in its own process, so a benchmark's client does not share its GIL.

    Prints the base URL on the first line of stdout, then serves until killed.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every answer waits")
    args = parser.parse_args()
    server = FakeLLMServer(chat_handler=schema_answer, latency_s=args.latency).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
