"""A small OTLP/HTTP trace receiver for the telemetry tests.

Each POST to /v1/traces is decoded with the real OpenTelemetry protobuf schema (the
`opentelemetry-proto` package): JSON bodies with `google.protobuf.json_format.Parse` (after turning
OTLP/JSON's hex trace and span ids into the protobuf JSON mapping's base64, as the OpenTelemetry
Collector does), protobuf bodies with `ParseFromString`. A body that does not decode, or whose ids
are not lower-case hex of the right length, is recorded in `errors` (and answered 400).

Spans are flattened to dicts: trace_id, span_id, parent (hex, "" for none), name, kind (the enum
number: 1 internal, 2 server, 3 client), start, end (unix ns), attributes (python values), status
(code number), status_message, resource (python values).
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import time
from typing import Any, Callable, Optional

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEX_ID = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


def _any_value(value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _hex_ids_to_base64(document: dict) -> None:
    """OTLP/JSON writes ids as hex; the protobuf JSON mapping reads bytes as base64."""
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for name, length in HEX_ID.items():
                    if name not in span:
                        continue
                    text = span[name]
                    if not re.fullmatch(r"[0-9a-f]{%d}" % length, text):
                        raise ValueError(f"{name} {text!r} is not {length} lower-case hex digits")
                    span[name] = base64.b64encode(bytes.fromhex(text)).decode()


class OTLPReceiver:
    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.status = status
        self.delay = delay
        self.posts: list[dict] = []  # {"path", "headers", "content_type", "request"}
        self.errors: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"otlp-receiver-{self.port}", daemon=True)

    def start(self) -> "OTLPReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    @property
    def endpoint(self) -> str:
        """The collector's base URL (Prism adds /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[dict]:
        with self.lock:
            posts = list(self.posts)
        out = []
        for post in posts:
            for resource_spans in post["request"].resource_spans:
                resource = {kv.key: _any_value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append({
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(), "name": span.name, "kind": span.kind,
                            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                            "attributes": {kv.key: _any_value(kv.value) for kv in span.attributes},
                            "status": span.status.code, "status_message": span.status.message,
                            "resource": resource, "scope": scope_spans.scope.name,
                        })
        return out

    def trace(self, trace_id: str) -> list[dict]:
        return [s for s in self.spans() if s["trace_id"] == trace_id]

    def wait_for(self, predicate: Callable[[list[dict]], Any], timeout: float = 10.0) -> Any:
        """Waits until predicate(spans) is truthy and returns its value; fails with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            assert not self.errors, f"the receiver could not decode an export: {self.errors}"
            result = predicate(self.spans())
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"no matching spans within {timeout}s; received: "
                                     f"{[(s['name'], s['attributes'].get('prism.request_id')) for s in self.spans()]}")
            time.sleep(0.05)

    def wait_for_request(self, request_id: str, timeout: float = 10.0) -> tuple[dict, list[dict]]:
        """The root span of the request with this x-prism-request-id, and every span of its trace."""
        def find(spans):
            roots = [s for s in spans if s["attributes"].get("prism.request_id") == request_id]
            return roots[0] if roots else None
        root = self.wait_for(find, timeout)
        return root, self.trace(root["trace_id"])


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        receiver: OTLPReceiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if receiver.delay:
            time.sleep(receiver.delay)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        message = ExportTraceServiceRequest()
        try:
            if self.path != "/v1/traces":
                raise ValueError(f"POST to {self.path}, not /v1/traces")
            if content_type == "application/json":
                document = json.loads(raw)
                _hex_ids_to_base64(document)
                json_format.Parse(json.dumps(document), message)
            elif content_type == "application/x-protobuf":
                message.ParseFromString(raw)
            else:
                raise ValueError(f"content-type {content_type!r}")
        except Exception as error:  # noqa: BLE001 - every decoding problem is a test failure
            with receiver.lock:
                receiver.errors.append(f"{type(error).__name__}: {error}")
            self._answer(400, b'{"message":"undecodable"}')
            return
        with receiver.lock:
            receiver.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "content_type": content_type, "request": message})
        self._answer(receiver.status, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
