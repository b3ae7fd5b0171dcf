"""A loopback HTTP receiver for alert sinks: a JSON webhook and Slack's chat.postMessage.

Tests point the real senders at it (urllib for the webhook, slack_sdk's WebClient for Slack), so
request building, error handling and retries are exercised over a real socket.

    with AlertReceiver() as rx:
        rx.failures = [500, 500]          # the next two requests get HTTP 500, then it accepts
        ...  # webhook url rx.url + "/hook"; Slack base_url rx.slack_base_url, token rx.slack_token
        rx.accepted                       # the JSON bodies it answered 2xx (Slack: ok true)

`fail_always = 500` refuses everything; `delay_s` holds each request that long before answering.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AlertReceiver:
    def __init__(self, slack_token: str = "xoxb-test-token") -> None:
        self.slack_token = slack_token
        self.failures: list[int] = []
        self.fail_always: int | None = None
        self.delay_s = 0.0
        self.requests: list[dict] = []   # every request: path, headers, body, status answered
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def slack_base_url(self) -> str:
        return self.url + "/api/"

    @property
    def accepted(self) -> list[dict]:
        with self._lock:
            return [r["body"] for r in self.requests if r["accepted"]]

    def _next_failure(self) -> int | None:
        with self._lock:
            if self.failures:
                return self.failures.pop(0)
            return self.fail_always

    def _record(self, **row) -> None:
        with self._lock:
            self.requests.append(row)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = dict(urllib.parse.parse_qsl(raw))
                headers = dict(self.headers.items())
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                failure = receiver._next_failure()
                slack = self.path.startswith("/api/")
                if failure is not None:
                    receiver._record(path=self.path, headers=headers, body=body, status=failure, accepted=False)
                    return self._answer(failure, {"ok": False, "error": "receiver_failure"} if slack
                                        else {"error": f"planned failure {failure}"})
                if slack:
                    if self.path != "/api/chat.postMessage":
                        receiver._record(path=self.path, headers=headers, body=body, status=404, accepted=False)
                        return self._answer(404, {"ok": False, "error": "unknown_method"})
                    if headers.get("Authorization") != f"Bearer {receiver.slack_token}":
                        receiver._record(path=self.path, headers=headers, body=body, status=200, accepted=False)
                        return self._answer(200, {"ok": False, "error": "invalid_auth"})
                    if not body.get("channel") or not body.get("text"):
                        receiver._record(path=self.path, headers=headers, body=body, status=200, accepted=False)
                        return self._answer(200, {"ok": False, "error": "no_text" if body.get("channel")
                                                  else "channel_not_found"})
                    receiver._record(path=self.path, headers=headers, body=body, status=200, accepted=True)
                    return self._answer(200, {"ok": True, "channel": body["channel"], "ts": f"{time.time():.6f}"})
                receiver._record(path=self.path, headers=headers, body=body, status=200, accepted=True)
                return self._answer(200, {"received": True})

        return Handler

    def start(self) -> AlertReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AlertReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
