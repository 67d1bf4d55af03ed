"""A mock Google upstream speaking the Gemini API (AI Studio, v1beta) and Vertex AI wire formats.

Paths (the model and method are taken from the URL, as Google does):

- ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
  (AI Studio; ``x-goog-api-key``), ``:batchEmbedContents``
- ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse``, ``:predict`` (Vertex; ``Authorization: Bearer``)

Answers are ``GenerateContentResponse`` objects; a stream is SSE with ``data:`` lines only, events
separated by CRLF CRLF (as Google sends them), no ``[DONE]``: it ends at EOF. Scripting:

- ``content_pieces``: text pieces (one per stream event; joined for a whole answer)
- ``function_calls``: ``[(name, args_dict)]`` sent after the text (in one stream event)
- ``finish_reason`` (default ``STOP``), ``model_version``, ``response_id``
- ``usage_metadata``: the final ``usageMetadata``
- ``google_error(http, status, message)``: answer with Google's error envelope
- ``stream_error_after = n``: after n stream events, send ``{"error": {...}}`` and end the stream
- ``stream_without_finish``: omit ``finishReason`` (a truncated stream)
- ``require_key`` / ``require_bearer``: 401 / 403 like Google unless the credential matches
- ``thought_summary``: with ``generationConfig.thinkingConfig.includeThoughts``, answers start
  with this text as a ``thought: true`` part (its own stream event)
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from mock_upstream import MockUpstream, RecordedRequest, _Disconnected, _Handler

PATH = re.compile(r"^/(?P<version>v1beta|v1)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"
                  r"publishers/google/)?models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")


class GoogleMock(MockUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.server.RequestHandlerClass = _GoogleHandler
        self.content_pieces = ["Hello", " from", " Gemini", "!"]
        self.function_calls: list[tuple[str, dict]] = []
        self.finish_reason = "STOP"
        self.model_version = "gemini-2.0-flash-001"
        self.response_id = "resp-mock-1"
        self.usage_metadata: dict = {"promptTokenCount": 11, "candidatesTokenCount": 5, "totalTokenCount": 16}
        self.google_failure: Optional[tuple[int, dict]] = None
        self.stream_error_after: Optional[int] = None
        self.stream_without_finish = False
        self.require_key: Optional[str] = None
        self.require_bearer: Optional[str] = None
        self.thought_summary = "**Thinking** about the answer."

    def google_error(self, http: int, status: str, message: str) -> None:
        self.google_failure = (http, {"error": {"code": http, "message": message, "status": status}})

    def generate_requests(self) -> list[RecordedRequest]:
        return [r for r in self.recorded() if "Content" in r.path]

    def last_generate(self) -> RecordedRequest:
        items = self.generate_requests()
        assert items, "the mock received no generateContent request"
        return items[-1]

    def parts(self, with_text: bool = True, with_calls: bool = True) -> list[dict]:
        parts: list[dict] = []
        if with_text and self.content_pieces:
            parts.append({"text": "".join(self.content_pieces)})
        if with_calls:
            parts += [{"functionCall": {"name": n, "args": a}} for n, a in self.function_calls]
        return parts


class _GoogleHandler(_Handler):
    server_version = "mock-google/1.0"

    @property
    def google(self) -> GoogleMock:
        return self.server.mock  # type: ignore[attr-defined]

    def _google_error(self, http: int, status: str, message: str) -> None:
        self._send_json(http, {"error": {"code": http, "message": message, "status": status}})

    def do_POST(self) -> None:
        req = self._record()
        match = PATH.match(req.path.split("?")[0])
        try:
            if not match:
                return self._google_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found.")
            vertex = match.group("project") is not None
            if not self._authorized(req, vertex):
                return
            if self.google.google_failure is not None:
                status, body = self.google.google_failure
                return self._send_json(status, body)
            if not isinstance(req.body, dict):
                return self._google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
            method = match.group("method")
            thoughts = (((req.body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
                        is True)
            if method == "generateContent":
                parts = ([{"text": self.google.thought_summary, "thought": True}] if thoughts else []) + self.google.parts()
                return self._send_json(200, self._response(parts, final=True))
            if method == "streamGenerateContent":
                if "alt=sse" not in req.path:
                    return self._google_error(400, "INVALID_ARGUMENT", "this mock only streams with alt=sse")
                return self._stream(thoughts)
            if method == "batchEmbedContents" and not vertex:
                return self._batch_embed(req, match.group("model"))
            if method == "predict" and vertex:
                return self._predict(req)
            return self._google_error(404, "NOT_FOUND", f"Method {method} not found.")
        except _Disconnected:
            self.google.disconnected.set()
            self.close_connection = True

    def _authorized(self, req: RecordedRequest, vertex: bool) -> bool:
        mock = self.google
        if vertex and mock.require_bearer is not None:
            if req.headers.get("authorization") != f"Bearer {mock.require_bearer}":
                self._google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                return False
        if not vertex and mock.require_key is not None:
            if req.headers.get("x-goog-api-key") != mock.require_key:
                # What AI Studio really answers for a bad key: 400, with the reason in ErrorInfo.
                self._send_json(400, {"error": {
                    "code": 400, "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                 "domain": "googleapis.com"}]}})
                return False
        return True

    def _response(self, parts: list[dict], final: bool, usage: Optional[dict] = None) -> dict:
        mock = self.google
        candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
        if final and not mock.stream_without_finish:
            candidate["finishReason"] = mock.finish_reason
        return {"candidates": [candidate],
                "usageMetadata": usage if usage is not None else mock.usage_metadata,
                "modelVersion": mock.model_version, "responseId": mock.response_id}

    def _stream(self, thoughts: bool = False) -> None:
        mock = self.google
        partial_usage = {"promptTokenCount": mock.usage_metadata.get("promptTokenCount", 0),
                         "totalTokenCount": mock.usage_metadata.get("promptTokenCount", 0)}
        events: list[dict] = []
        if thoughts:
            events.append(self._response([{"text": mock.thought_summary, "thought": True}], final=False, usage=partial_usage))
        pieces = list(mock.content_pieces)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1 and not mock.function_calls
            events.append(self._response([{"text": piece}], final=last,
                                         usage=mock.usage_metadata if last else partial_usage))
        if mock.function_calls:
            events.append(self._response(mock.parts(with_text=False), final=True))
        if not events:
            events.append(self._response([], final=True))

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for sent, event in enumerate(events):
            if mock.stream_error_after is not None and sent == mock.stream_error_after:
                failure = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
                self._write_chunk(b"data: " + json.dumps(failure).encode() + b"\r\n\r\n")
                break
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        self._write_chunk(b"")
        mock.stream_finished.set()

    def _vector(self, index: int, dimensions: Optional[int]) -> list[float]:
        return MockUpstream.embedding_for(index, dimensions or self.google.embedding_dimensions)

    def _batch_embed(self, req: RecordedRequest, model: str) -> None:
        requests = req.body.get("requests") or []
        for item in requests:
            if item.get("model") != f"models/{model}":
                return self._google_error(400, "INVALID_ARGUMENT",
                                          "Model in the request does not match the model in the URL.")
        self._send_json(200, {"embeddings": [
            {"values": self._vector(i, item.get("outputDimensionality"))} for i, item in enumerate(requests)]})

    def _predict(self, req: RecordedRequest) -> None:
        instances = req.body.get("instances") or []
        dims = (req.body.get("parameters") or {}).get("outputDimensionality")
        self._send_json(200, {"predictions": [
            {"embeddings": {"values": self._vector(i, dims),
                            "statistics": {"truncated": False, "token_count": len(str(x.get("content")).split())}}}
            for i, x in enumerate(instances)], "metadata": {"billableCharacterCount": 10}})


def start_google_mock() -> GoogleMock:
    return GoogleMock().start()  # type: ignore[return-value]


if __name__ == "__main__":  # manual use
    import time
    m = start_google_mock()
    print(f"mock google upstream on {m.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        m.stop()
