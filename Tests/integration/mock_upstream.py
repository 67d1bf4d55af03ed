"""A mock OpenAI-compatible upstream for Prism's integration tests.

It speaks OpenAI's real wire format (HTTP/1.1, keep-alive, chunked SSE for streams):

- ``POST /v1/chat/completions``: a ``chat.completion`` object, or with ``"stream": true`` a
  ``text/event-stream`` of ``chat.completion.chunk`` events ending with ``data: [DONE]``. With
  ``stream_options.include_usage`` every chunk carries ``"usage": null`` and one extra final chunk
  has ``"choices": []`` and the usage, exactly as OpenAI does.
- ``GET /v1/models``: a model list (``self.models``).
- ``POST /v1/responses``: OpenAI's Responses API (a ``response`` object with one output_text
  message, or its typed SSE events: response.created … response.output_text.delta … response.completed).
- ``POST /v1/completions``: legacy completions (``text_completion``, or its chunks and ``[DONE]``).
  Every answer's body bytes are kept in ``sent`` (what a pass-through must relay unchanged).
- ``POST /v1/embeddings``: an embedding list, as floats or (``encoding_format: "base64"``, which the
  official SDK asks for by default) base64 of little-endian float32.
- anything else: OpenAI's 404 ``Invalid URL`` error.

Every request is recorded (method, path, lower-cased headers, parsed JSON body). Behaviour is
scripted by setting attributes on the ``MockUpstream`` object (all thread-safe enough for tests:
set them before the request is sent):

- ``fail_with(status, message, ...)``: answer chat/embeddings with that status and an OpenAI error body.
- ``delay``: seconds to wait before answering chat/embeddings (timeouts).
- ``hold_response``: wait on ``release`` before answering a non-streaming chat/embeddings request.
- ``hold_after_chunks = n``: a "slow stream": send n chunks, then wait on ``release`` before the rest.
- ``die_after_chunks = n``: send n chunks, then close the socket abruptly (no terminating chunk,
  no ``[DONE]``).
- ``omit_done``: end every stream cleanly but without ``data: [DONE]`` (a cut a proxy can cause).
- ``require_api_key``: answer 401 like OpenAI unless ``Authorization: Bearer <that key>``.

Events a test can wait on: ``request_received`` (any recorded request), ``holding`` (the mock is
blocked waiting for ``release``), ``stream_finished`` (a stream was sent completely), and
``disconnected`` (the mock noticed that its client closed the connection or a write failed while
it was waiting or streaming).
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import select
import socket
import string
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

DEFAULT_CONTENT_PIECES = ["Hello", " from", " the", " mock", " upstream", "!"]
DEFAULT_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # lower-case names -> last value
    raw_headers: list  # [(name, value)] as received
    body_bytes: bytes
    body: Any  # parsed JSON, or None when absent / not JSON
    time: float = field(default_factory=time.monotonic)
    client_port: int = 0  # the gateway's side of the connection (shows keep-alive reuse)


def _random_id(prefix: str, n: int = 29) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


class _Disconnected(Exception):
    """The peer closed the connection (or a write to it failed)."""


class MockUpstream:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        # Scriptable behaviour -------------------------------------------------------------------
        self.models: list[str] = list(DEFAULT_MODELS)
        self.owned_by = "system"
        self.content_pieces: list[str] = list(DEFAULT_CONTENT_PIECES)
        self.response_model: Optional[str] = None  # None: echo the request's model
        self.prompt_tokens = 13
        self.completion_tokens = 7
        self.cached_tokens = 0  # of prompt_tokens, reported in prompt_tokens_details
        self.error: Optional[tuple[int, dict]] = None
        self.delay = 0.0
        # Scripted answers, one per chat/embeddings request, consumed in order (then normal):
        # {"status": 503, "headers": {...}}, {"delay": seconds}, {"reset": True},
        # {"raw": b"...", "status": 200, "content_type": "text/html"}, or "ok".
        self.script: list = []
        self.hold_response = False
        self.hold_after_chunks: Optional[int] = None
        self.die_after_chunks: Optional[int] = None
        self.omit_done = False  # end streams cleanly (terminating chunk) but without data: [DONE]
        self.require_api_key: Optional[str] = None
        self.embedding_dimensions = 8
        self.sent: list[bytes] = []  # body bytes of each Responses / completions answer
        # Events -----------------------------------------------------------------------------------
        self.release = threading.Event()
        self.holding = threading.Event()
        self.request_received = threading.Event()
        self.stream_finished = threading.Event()
        self.disconnected = threading.Event()
        self._stopping = threading.Event()

        self.server = http.server.ThreadingHTTPServer((host, 0), _Handler)
        self.server.daemon_threads = True
        self.server.mock = self  # type: ignore[attr-defined]
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"mock-upstream-{self.port}", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "MockUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "MockUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Without /v1, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def v1_url(self) -> str:
        return self.base_url + "/v1"

    # ---- scripting ---------------------------------------------------------------------------------

    @property
    def content(self) -> str:
        return "".join(self.content_pieces)

    def fail_with(self, status: int, message: str, type: str = "server_error",
                  code: Optional[str] = None, param: Optional[str] = None) -> None:
        self.error = (status, {"error": {"message": message, "type": type, "param": param,
                                         "code": code}})

    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }

    @staticmethod
    def embedding_for(index: int, dimensions: int) -> list[float]:
        """Deterministic vector; every value is exact in float32, so base64 round-trips exactly."""
        return [(index + 1) * 0.5 + j * 0.25 * (-1) ** j for j in range(dimensions)]

    # ---- inspection --------------------------------------------------------------------------------

    def recorded(self, path_suffix: Optional[str] = None) -> list[RecordedRequest]:
        with self.lock:
            items = list(self.requests)
        if path_suffix is None:
            return items
        return [r for r in items if r.path.split("?")[0].endswith(path_suffix)]

    def chat_requests(self) -> list[RecordedRequest]:
        return self.recorded("/chat/completions")

    def last_chat(self) -> RecordedRequest:
        items = self.chat_requests()
        assert items, "the mock upstream received no chat completion request"
        return items[-1]

    def wait_for_requests(self, count: int, path_suffix: Optional[str] = None,
                          timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while True:
            items = self.recorded(path_suffix)
            if len(items) >= count or time.monotonic() >= deadline:
                return items
            time.sleep(0.01)

    def _record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)
        self.request_received.set()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-openai/1.0"
    sys_version = ""

    @property
    def mock(self) -> MockUpstream:
        return self.server.mock  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # ---- request reading ----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> RecordedRequest:
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = RecordedRequest(
            method=self.command, path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_headers=list(self.headers.items()), body_bytes=raw, body=body,
            client_port=self.client_address[1])
        self.mock._record(req)
        return req

    # ---- low-level writing --------------------------------------------------------------------------

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _wait(self, event: Optional[threading.Event], seconds: Optional[float]) -> None:
        """Wait for `event` (or `seconds`), watching for the client going away."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if event is not None and event.is_set():
                return
            if self.mock._stopping.is_set():
                raise _Disconnected()
            if deadline is not None and time.monotonic() >= deadline:
                return
            if self._peer_closed():
                raise _Disconnected()
            time.sleep(0.02)

    def _send_json(self, status: int, obj: Any, extra_headers: Optional[dict] = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + secrets.token_hex(16))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as err:
            raise _Disconnected() from err

    def _send_error_body(self, status: int, message: str, type: str,
                         code: Optional[str] = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": type, "param": None,
                                           "code": code}})

    # ---- routing ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        req = self._record()
        path = req.path.split("?")[0]
        if path == "/v1/models":
            if not self._authorized(req):
                return
            now = int(time.time())
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": now - 86400 * (i + 1),
                 "owned_by": self.mock.owned_by} for i, m in enumerate(self.mock.models)]})
        else:
            self._invalid_url(req)

    def do_POST(self) -> None:
        req = self._record()
        path = req.path.split("?")[0]
        try:
            if path == "/v1/chat/completions":
                self._chat(req)
            elif path == "/v1/embeddings":
                self._embeddings(req)
            elif path == "/v1/responses":
                self._responses(req)
            elif path == "/v1/completions":
                self._completions(req)
            else:
                self._invalid_url(req)
        except _Disconnected:
            self.mock.disconnected.set()
            self.close_connection = True

    def do_PUT(self) -> None:
        self._invalid_url(self._record())

    do_DELETE = do_PATCH = do_PUT

    def _invalid_url(self, req: RecordedRequest) -> None:
        self._send_error_body(404, f"Invalid URL ({req.method} {req.path})",
                              "invalid_request_error")

    def _authorized(self, req: RecordedRequest) -> bool:
        want = self.mock.require_api_key
        if want is None:
            return True
        got = req.headers.get("authorization", "")
        if got == f"Bearer {want}":
            return True
        self._send_error_body(401, "Incorrect API key provided. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.",
                              "invalid_request_error", "invalid_api_key")
        return False

    def _preamble(self, req: RecordedRequest) -> bool:
        """Checks, scripted errors and delays shared by chat and embeddings. False: answered."""
        mock = self.mock
        if not self._authorized(req):
            return False
        if not isinstance(req.body, dict):
            self._send_error_body(400, "We could not parse the JSON body of your request.",
                                  "invalid_request_error")
            return False
        with mock.lock:
            step = mock.script.pop(0) if mock.script else "ok"
        if isinstance(step, dict):
            if step.get("reset"):
                # An abrupt reset: the peer sees ECONNRESET, not a clean close.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return False
            if "delay" in step:
                self._wait(None, step["delay"])
            if "raw" in step:
                # Exactly these bytes, whatever the request wanted (an HTML page from a proxy...).
                data = step["raw"]
                self.send_response(step.get("status", 200))
                self.send_header("Content-Type", step.get("content_type", "text/html"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return False
            if "status" in step:
                self._send_json(step["status"], {"error": {"message": step.get("message", "scripted failure"),
                                                           "type": "server_error", "param": None, "code": None}},
                                step.get("headers"))
                return False
        if mock.delay:
            self._wait(None, mock.delay)
        if mock.error is not None:
            status, body = mock.error
            self._send_json(status, body)
            return False
        return True

    # ---- chat ---------------------------------------------------------------------------------------

    def _chat(self, req: RecordedRequest) -> None:
        mock = self.mock
        if not self._preamble(req):
            return
        body = req.body
        if "messages" not in body:
            self._send_error_body(400, "Missing required parameter: 'messages'.",
                                  "invalid_request_error", "missing_required_parameter")
            return
        model = mock.response_model or body.get("model", "unknown")
        cid = _random_id("chatcmpl-")
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._chat_stream(cid, created, model, include_usage)
            return
        if mock.hold_response:
            mock.holding.set()
            self._wait(mock.release, None)
        self._send_json(200, {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": mock.content,
                                     "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": mock.usage(), "service_tier": "default",
            "system_fingerprint": "fp_mock0001"})

    def _chat_stream(self, cid: str, created: int, model: str, include_usage: bool) -> None:
        mock = self.mock

        def chunk(choices: list, usage: Any = None) -> dict:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model, "service_tier": "default",
                   "system_fingerprint": "fp_mock0001", "choices": choices}
            if include_usage:
                obj["usage"] = usage
            return obj

        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                          "logprobs": None, "finish_reason": None}])]
        for piece in mock.content_pieces:
            events.append(chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                  "finish_reason": None}]))
        events.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            events.append(chunk([], mock.usage()))

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", "req_" + secrets.token_hex(16))
        self.end_headers()
        try:
            self.wfile.flush()
        except OSError as err:
            raise _Disconnected() from err

        for sent, event in enumerate(events):
            if mock.die_after_chunks is not None and sent == mock.die_after_chunks:
                self._die()
                return
            if mock.hold_after_chunks is not None and sent == mock.hold_after_chunks:
                mock.holding.set()
                self._wait(mock.release, None)
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        if not mock.omit_done:
            self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # terminating zero-length chunk
        mock.stream_finished.set()

    # ---- Responses and legacy completions (for pass-through) ----------------------------------------

    def _send_recorded(self, data: bytes, content_type: str) -> None:
        with self.mock.lock:
            self.mock.sent.append(data)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + secrets.token_hex(16))
        self.end_headers()
        self.wfile.write(data)

    def _responses(self, req: RecordedRequest) -> None:
        mock = self.mock
        if not self._preamble(req):
            return
        body = req.body
        if "input" not in body:
            self._send_error_body(400, "Missing required parameter: 'input'.", "invalid_request_error",
                                  "missing_required_parameter")
            return
        rid, mid = _random_id("resp_"), _random_id("msg_")
        usage = {"input_tokens": mock.prompt_tokens, "input_tokens_details": {"cached_tokens": mock.cached_tokens},
                 "output_tokens": mock.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": mock.prompt_tokens + mock.completion_tokens}
        message = {"type": "message", "id": mid, "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": mock.content, "annotations": []}]}
        response = {"id": rid, "object": "response", "created_at": int(time.time()), "status": "completed",
                    "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                    "model": mock.response_model or body.get("model"), "output": [message],
                    "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
                    "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
                    "tool_choice": "auto", "tools": [], "top_p": 1.0, "usage": usage, "metadata": {}}
        if not body.get("stream"):
            self._send_recorded(json.dumps(response).encode(), "application/json")
            return
        events: list[tuple[str, dict]] = []
        started = dict(response, status="in_progress", output=[], usage=None)
        events.append(("response.created", {"response": started}))
        events.append(("response.output_item.added", {"output_index": 0, "item": dict(message, status="in_progress",
                                                                                       content=[])}))
        events.append(("response.content_part.added", {"item_id": mid, "output_index": 0, "content_index": 0,
                                                        "part": {"type": "output_text", "text": "", "annotations": []}}))
        for piece in mock.content_pieces:
            events.append(("response.output_text.delta", {"item_id": mid, "output_index": 0, "content_index": 0,
                                                          "delta": piece}))
        events.append(("response.output_text.done", {"item_id": mid, "output_index": 0, "content_index": 0,
                                                     "text": mock.content}))
        events.append(("response.output_item.done", {"output_index": 0, "item": message}))
        events.append(("response.completed", {"response": response}))
        data = b"".join(f"event: {name}\ndata: ".encode()
                        + json.dumps(dict({"type": name, "sequence_number": n}, **fields)).encode() + b"\n\n"
                        for n, (name, fields) in enumerate(events))
        self._send_recorded(data, "text/event-stream; charset=utf-8")

    def _completions(self, req: RecordedRequest) -> None:
        mock = self.mock
        if not self._preamble(req):
            return
        body = req.body
        cid, created = _random_id("cmpl-"), int(time.time())
        model = mock.response_model or body.get("model")
        usage = {"prompt_tokens": mock.prompt_tokens, "completion_tokens": mock.completion_tokens,
                 "total_tokens": mock.prompt_tokens + mock.completion_tokens}
        if not body.get("stream"):
            answer = {"id": cid, "object": "text_completion", "created": created, "model": model,
                      "choices": [{"text": mock.content, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                      "usage": usage}
            self._send_recorded(json.dumps(answer).encode(), "application/json")
            return
        chunks = [{"id": cid, "object": "text_completion", "created": created, "model": model,
                   "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]}
                  for piece in mock.content_pieces]
        chunks.append({"id": cid, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"id": cid, "object": "text_completion", "created": created, "model": model,
                           "choices": [], "usage": usage})
        data = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
        self._send_recorded(data, "text/event-stream; charset=utf-8")

    def _die(self) -> None:
        """Close the connection abruptly: no terminating chunk, no [DONE]."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- embeddings ---------------------------------------------------------------------------------

    def _embeddings(self, req: RecordedRequest) -> None:
        mock = self.mock
        if not self._preamble(req):
            return
        body = req.body
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs
                                       and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            self._send_error_body(400, "'input' is a required property", "invalid_request_error")
            return
        if mock.hold_response:
            mock.holding.set()
            self._wait(mock.release, None)
        dims = int(body.get("dimensions") or mock.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i in range(len(inputs)):
            vec = mock.embedding_for(i, dims)
            value: Any = (base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
                          if as_base64 else vec)
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(str(x).split()) or 1 for x in inputs)
        self._send_json(200, {"object": "list", "data": data,
                              "model": mock.response_model or body.get("model"),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def start_mock() -> MockUpstream:
    return MockUpstream().start()


if __name__ == "__main__":  # manual use: python3 mock_upstream.py
    m = start_mock()
    print(f"mock upstream on {m.v1_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        m.stop()
