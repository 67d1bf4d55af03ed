"""A mock Cohere upstream: the v2 API (`POST /v2/chat`, `POST /v2/embed`) with its real wire
format, and its strictness, so that a translation the real API would refuse fails here too.

Checks (400 `{"message": ...}` otherwise): `Authorization: Bearer <key>` (401); chat: `model` and
`messages` required, no unknown top-level field, one system turn and only first, roles
system/user/assistant/tool, no empty turn, user parts text or image_url, assistant `tool_calls`
with string arguments, tool turns with a `tool_call_id` of an earlier call, `tool_choice` only
REQUIRED or NONE, `p` within [0.01, 0.99], penalties within [0, 1], at most 5 stop sequences;
embed: `model`, `texts` (at most 96), a valid `input_type`, `embedding_types` required,
`output_dimension` only for embed-v4.0 and one of 256/512/1024/1536.

Answers: text (`reply`, default "You said: <last user text>") and/or the scripted `tool_calls`
([(name, arguments_dict)], with a `tool_plan`); streams send message-start, tool-plan-delta,
content-start/content-delta (pieces of `piece_size`)/content-end, tool-call-start/-delta
(fragments of `fragment_size`)/-end, message-end with finish_reason and usage. Scripting:
`fail_with(status, message)`, `stream_error_after = n` (n events, then message-end with
finish_reason ERROR), `billed` / `tokens` / `cached_tokens`.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from replay_upstream import RecordedRequest, ReplayUpstream

API_KEY = "co-test-key-0001"
CHAT_FIELDS = {"model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
               "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
               "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority", "stream"}
EMBED_FIELDS = {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension",
                "max_tokens", "truncate", "priority"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}


class InvalidRequest(Exception):
    pass


class CohereMock:
    def __init__(self) -> None:
        self.reply: Optional[str] = None
        self.tool_calls: list[tuple[str, dict]] = []
        self.tool_plan = "I will use the tools."
        self.billed = (7, 9)
        self.tokens = (480, 11)
        self.cached_tokens = 0
        self.piece_size = 5
        self.fragment_size = 6
        self.failure: Optional[tuple[int, str]] = None
        self.stream_error_after: Optional[int] = None
        self.upstream = ReplayUpstream(responder=self.respond)

    def start(self) -> "CohereMock":
        self.upstream.start()
        return self

    def stop(self) -> None:
        self.upstream.stop()

    @property
    def base_url(self) -> str:
        return self.upstream.base_url

    def fail_with(self, status: int, message: str) -> None:
        self.failure = (status, message)

    def last(self) -> RecordedRequest:
        return self.upstream.last()

    @staticmethod
    def vector(index: int, dimensions: int) -> list[float]:
        """Deterministic and exact in float32, so base64 round-trips exactly."""
        return [(index + 1) * 0.25 - j * 0.125 for j in range(dimensions)]

    # ---- answering ---------------------------------------------------------------------------------

    def respond(self, request: RecordedRequest) -> dict:
        path = request.path.split("?")[0]
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return error(401, "invalid api token")
        try:
            if path == "/v2/chat" and request.method == "POST":
                validate_chat(request.body)
            elif path == "/v2/embed" and request.method == "POST":
                validate_embed(request.body)
            else:
                return error(404, f"route not found: {request.method} {path}")
        except InvalidRequest as problem:
            return error(400, f"invalid request: {problem}")
        if self.failure:
            return error(*self.failure)
        if path == "/v2/embed":
            return self.embed(request.body)
        return self.chat(request.body)

    def usage(self) -> dict:
        return {"billed_units": {"input_tokens": self.billed[0], "output_tokens": self.billed[1]},
                "tokens": {"input_tokens": self.tokens[0], "output_tokens": self.tokens[1]},
                "cached_tokens": self.cached_tokens}

    def chat(self, body: dict) -> dict:
        text = self.reply if self.reply is not None else "You said: " + last_user_text(body["messages"])
        if self.tool_calls:
            text = self.reply or ""
        calls = [{"id": f"{name}_mock{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                 for i, (name, args) in enumerate(self.tool_calls)]
        finish = "TOOL_CALL" if calls else "COMPLETE"
        if not body.get("stream"):
            message: dict = {"role": "assistant", "content": [{"type": "text", "text": text}] if text else []}
            if calls:
                message["tool_plan"] = self.tool_plan
                message["tool_calls"] = calls
            return {"status": 200, "body": {"id": "c0mock-0000-4000-8000-000000000001", "finish_reason": finish,
                                            "message": message, "usage": self.usage()}}

        def event(kind: str, **data: Any) -> dict:
            return {"event": kind, "data": {"type": kind, **data}}

        events = [event("message-start", id="c0mock-0000-4000-8000-000000000002",
                        delta={"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}})]
        if calls:
            events.append(event("tool-plan-delta", delta={"message": {"tool_plan": self.tool_plan}}))
        if text:
            events.append(event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}))
            for at in range(0, len(text), self.piece_size):
                events.append(event("content-delta", index=0, delta={"message": {"content": {"text": text[at:at + self.piece_size]}}}))
            events.append(event("content-end", index=0))
        for i, call in enumerate(calls):
            shell = {"id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(event("tool-call-start", index=i, delta={"message": {"tool_calls": shell}}))
            arguments = call["function"]["arguments"]
            for at in range(0, len(arguments), self.fragment_size):
                events.append(event("tool-call-delta", index=i, delta={"message": {"tool_calls": {
                    "function": {"arguments": arguments[at:at + self.fragment_size]}}}}))
            events.append(event("tool-call-end", index=i))
        events.append(event("message-end", delta={"finish_reason": finish, "usage": self.usage()}))
        if self.stream_error_after is not None:
            events = events[:self.stream_error_after]
            events.append(event("message-end", delta={"finish_reason": "ERROR", "error": "internal server error",
                                                      "usage": self.usage()}))
        return {"status": 200, "headers": {"content-type": "text/event-stream"}, "sse": events}

    def embed(self, body: dict) -> dict:
        dimensions = body.get("output_dimension") or 8
        vectors = [self.vector(i, dimensions) for i in range(len(body["texts"]))]
        return {"status": 200, "body": {"id": "e0mock", "embeddings": {"float": vectors}, "texts": body["texts"],
                                        "meta": {"api_version": {"version": "2"},
                                                 "billed_units": {"input_tokens": sum(len(t.split()) for t in body["texts"])}},
                                        "response_type": "embeddings_by_type"}}


def error(status: int, message: str) -> dict:
    return {"status": status, "body": {"id": "err-mock", "message": message}}


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(p["text"] for p in content if p.get("type") == "text")
    return ""


def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("body must be an object")
    for key in ("model", "messages"):
        if key not in body:
            raise InvalidRequest(f"{key} is required")
    extra = sorted(set(body) - CHAT_FIELDS)
    if extra:
        raise InvalidRequest(f"unknown field: parameter {extra[0]} is not a valid field")
    if "p" in body and not 0.01 <= body["p"] <= 0.99:
        raise InvalidRequest("p must be between 0.01 and 0.99")
    for key in ("frequency_penalty", "presence_penalty"):
        if key in body and not 0 <= body[key] <= 1:
            raise InvalidRequest(f"{key} must be between 0 and 1")
    if "temperature" in body and body["temperature"] < 0:
        raise InvalidRequest("temperature must be at least 0")
    if len(body.get("stop_sequences") or []) > 5:
        raise InvalidRequest("stop_sequences can have at most 5 items")
    if "tool_choice" in body and body["tool_choice"] not in ("REQUIRED", "NONE"):
        raise InvalidRequest("tool_choice must be one of REQUIRED, NONE")
    if "tool_choice" in body and not body.get("tools"):
        raise InvalidRequest("tool_choice requires tools")
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") or {}
        if tool.get("type") != "function" or not function.get("name") or not isinstance(function.get("parameters", {}), dict):
            raise InvalidRequest(f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}")
    if "response_format" in body and body["response_format"].get("type") not in ("text", "json_object"):
        raise InvalidRequest("response_format.type must be text or json_object")
    calls: set = set()
    for i, message in enumerate(body["messages"]):
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            if i != 0:
                raise InvalidRequest("system turn must be the first in the list")
            if not content:
                raise InvalidRequest("message must not be empty in a turn")
        elif role == "user":
            if not content:
                raise InvalidRequest("message must not be empty in a turn")
            if isinstance(content, list):
                for part in content:
                    if part.get("type") == "text" and not part.get("text"):
                        raise InvalidRequest("message must not be empty in a turn")
                    if part.get("type") == "image_url" and not (part.get("image_url") or {}).get("url"):
                        raise InvalidRequest("image_url.url is required")
                    if part.get("type") not in ("text", "image_url"):
                        raise InvalidRequest(f"unsupported content type {part.get('type')}")
        elif role == "assistant":
            tool_calls = message.get("tool_calls") or []
            if not content and not tool_calls:
                raise InvalidRequest("message must not be empty in a turn")
            for call in tool_calls:
                if not isinstance((call.get("function") or {}).get("arguments"), str):
                    raise InvalidRequest("tool_calls.function.arguments must be a string")
                calls.add(call.get("id"))
        elif role == "tool":
            if message.get("tool_call_id") not in calls:
                raise InvalidRequest(f"tool_call_id {message.get('tool_call_id')} does not match a tool call")
            if not isinstance(content, (str, list)):
                raise InvalidRequest("tool content must be a string or a list")
        else:
            raise InvalidRequest(f"invalid role {role}")


def validate_embed(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("body must be an object")
    for key in ("model", "input_type", "embedding_types"):
        if key not in body:
            raise InvalidRequest(f"{key} is required")
    extra = sorted(set(body) - EMBED_FIELDS)
    if extra:
        raise InvalidRequest(f"unknown field: parameter {extra[0]} is not a valid field")
    texts = body.get("texts") or []
    if not texts or len(texts) > 96:
        raise InvalidRequest("texts must have between 1 and 96 items")
    if body["input_type"] not in INPUT_TYPES:
        raise InvalidRequest(f"invalid input_type {body['input_type']}")
    if body["embedding_types"] != ["float"]:
        raise InvalidRequest("this mock serves float embeddings only")
    if "output_dimension" in body:
        if body["model"] != "embed-v4.0" or body["output_dimension"] not in (256, 512, 1024, 1536):
            raise InvalidRequest("output_dimension is only supported by embed-v4.0 (256, 512, 1024 or 1536)")
