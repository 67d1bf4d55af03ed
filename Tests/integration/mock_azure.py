"""A mock Azure OpenAI upstream: OpenAI's wire format on Azure's classic deployment routes.

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=…`` and ``…/embeddings``
  (``api-version`` is required: 404 like Azure without it; an unknown deployment is 404
  ``DeploymentNotFound``)
- auth: ``api-key: <key>`` or ``Authorization: Bearer <token>`` (``require_key`` /
  ``require_bearer``); 401 with Azure's envelope otherwise
- answers carry Azure's content-filter annotations: ``prompt_filter_results`` and per-choice
  ``content_filter_results``; a stream starts with Azure's annotation-only chunk (``choices: []``,
  empty ``id`` and ``model``, ``created: 0``)
- ``azure_error(status, code, message)``: answer with Azure's envelope ``{error:{code,message}}``
- ``finish_reason``: the finish reason to send (e.g. ``content_filter``)
"""

from __future__ import annotations

import json
import re
import time
from typing import Optional

from mock_upstream import MockUpstream, RecordedRequest, _Disconnected, _Handler, _random_id

PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)$")
FILTER_OK = {"hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": False, "severity": "safe"},
             "sexual": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}


class AzureMock(MockUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.server.RequestHandlerClass = _AzureHandler
        self.deployments = {"gpt-4o": "gpt-4o-2024-08-06", "prod-gpt4o": "gpt-4o-2024-08-06",
                            "text-embedding-3-small": "text-embedding-3-small", "embed-prod": "text-embedding-3-small"}
        self.require_key: Optional[str] = None
        self.require_bearer: Optional[str] = None
        self.azure_failure: Optional[tuple[int, dict]] = None
        self.finish_reason = "stop"

    def azure_error(self, status: int, code: str, message: str, **extra) -> None:
        self.azure_failure = (status, {"error": {"code": code, "message": message, **extra}})


class _AzureHandler(_Handler):
    server_version = "mock-azure/1.0"

    @property
    def azure(self) -> AzureMock:
        return self.server.mock  # type: ignore[attr-defined]

    def _azure_error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, {"error": {"code": code, "message": message}})

    def do_POST(self) -> None:
        req = self._record()
        path, _, query = req.path.partition("?")
        match = PATH.match(path)
        try:
            if not match:
                return self._azure_error(404, "404", "Resource not found")
            if not re.search(r"(^|&)api-version=[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?($|&)", query):
                return self._azure_error(404, "404", "Resource not found")
            if not self._azure_authorized(req):
                return
            deployment = match.group("deployment")
            if deployment not in self.azure.deployments:
                return self._azure_error(404, "DeploymentNotFound",
                                         "The API deployment for this resource does not exist.")
            if self.azure.azure_failure is not None:
                status, body = self.azure.azure_failure
                return self._send_json(status, body)
            model = self.azure.deployments[deployment]
            self.azure.response_model = model
            if match.group("op") == "embeddings":
                return self._embeddings(req)
            return self._azure_chat(req, model)
        except _Disconnected:
            self.azure.disconnected.set()
            self.close_connection = True

    def _azure_authorized(self, req: RecordedRequest) -> bool:
        mock = self.azure
        if mock.require_key is not None and req.headers.get("api-key") == mock.require_key:
            return True
        if mock.require_bearer is not None and req.headers.get("authorization") == f"Bearer {mock.require_bearer}":
            return True
        if mock.require_key is None and mock.require_bearer is None:
            return True
        self._azure_error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. "
                                      "Make sure to provide a valid key for an active subscription.")
        return False

    def _azure_chat(self, req: RecordedRequest, model: str) -> None:
        mock = self.azure
        body = req.body
        cid = _random_id("chatcmpl-")
        created = int(time.time())
        prompt_filter = [{"prompt_index": 0, "content_filter_results": FILTER_OK}]
        if not body.get("stream"):
            return self._send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "prompt_filter_results": prompt_filter,
                "choices": [{"index": 0, "finish_reason": mock.finish_reason, "logprobs": None,
                             "message": {"role": "assistant", "content": mock.content, "refusal": None},
                             "content_filter_results": FILTER_OK}],
                "usage": mock.usage(), "system_fingerprint": "fp_azure01"})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list, usage=None) -> dict:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_azure01", "choices": choices}
            if include_usage:
                obj["usage"] = usage
            return obj

        events = [{"id": "", "object": "", "created": 0, "model": "", "choices": [],
                   "prompt_filter_results": prompt_filter},
                  chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                          "logprobs": None}])]
        for piece in mock.content_pieces:
            events.append(chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None,
                                  "content_filter_results": FILTER_OK}]))
        events.append(chunk([{"index": 0, "delta": {}, "finish_reason": mock.finish_reason, "logprobs": None,
                              "content_filter_results": {}}]))
        if include_usage:
            events.append(chunk([], mock.usage()))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")
        mock.stream_finished.set()
