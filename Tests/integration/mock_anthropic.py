"""A mock Anthropic upstream: the Messages API (`POST /v1/messages`) with its real wire format,
and its strictness, so that a translation the real API would refuse fails here too.

Requests are checked as Anthropic does (400 `invalid_request_error` otherwise): `x-api-key` (401
`authentication_error`) and `anthropic-version`; `model`, `max_tokens` and `messages` required;
no unknown top-level field ("Extra inputs are not permitted"); roles only user/assistant; text
blocks non-empty; image sources base64 (jpeg/png/gif/webp) or url; every `tool_use` answered by
`tool_result` blocks first in the next user turn and no `tool_result` without its `tool_use`; ids
matching ^[a-zA-Z0-9_-]+$; `input` an object; tool `input_schema.type` "object"; `tool_choice` only
with tools; temperature within [0, 1].

Answers: text (`reply`, default "You said: <last user text>") then the scripted `tool_calls`
([(name, input)]); with a forced tool choice, a call of that tool with `tool_input`. Streams
send message_start, a ping, content blocks (text in `piece_size` pieces, tool input as
input_json_delta fragments of `fragment_size`), message_delta with the stop reason and
cumulative usage, message_stop. Scripting: `fail_with(status, type, message)`,
`stream_error_after = n` (n events, then an `error` event and the end of the stream),
`usage` (input_tokens, cache reads and writes).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from replay_upstream import RecordedRequest, ReplayUpstream

API_KEY = "sk-ant-test-key-0001"
TOP_LEVEL = {"model", "max_tokens", "messages", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
             "stop_sequences", "metadata", "stream", "thinking", "service_tier", "container", "mcp_servers",
             "output_config", "context_management", "inference_geo", "cache_control"}
ID = re.compile(r"^[a-zA-Z0-9_-]+$")
MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class InvalidRequest(Exception):
    pass


class AnthropicMock:
    def __init__(self) -> None:
        self.reply: Optional[str] = None
        self.tool_calls: list[tuple[str, dict]] = []
        self.tool_input: dict = {"answer": 42}
        self.stop_reason: Optional[str] = None
        self.usage = {"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        self.piece_size = 6
        self.fragment_size = 7
        self.failure: Optional[tuple[int, str, str]] = None
        self.stream_error_after: Optional[int] = None
        self.upstream = ReplayUpstream(responder=self.respond)

    # ---- lifecycle and scripting -------------------------------------------------------------------

    def start(self) -> "AnthropicMock":
        self.upstream.start()
        return self

    def stop(self) -> None:
        self.upstream.stop()

    @property
    def base_url(self) -> str:
        return self.upstream.base_url

    def fail_with(self, status: int, type: str, message: str) -> None:
        self.failure = (status, type, message)

    def last(self) -> RecordedRequest:
        return self.upstream.last()

    # ---- answering ---------------------------------------------------------------------------------

    def respond(self, request: RecordedRequest) -> dict:
        if request.path.split("?")[0] != "/v1/messages" or request.method != "POST":
            return error(404, "not_found_error", f"Not found: {request.method} {request.path}")
        if request.headers.get("x-api-key") != API_KEY:
            return error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != "2023-06-01":
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        try:
            validate(request.body)
        except InvalidRequest as problem:
            return error(400, "invalid_request_error", str(problem))
        if self.failure:
            return error(*self.failure)
        body = request.body
        blocks = self.answer_blocks(body)
        stop = self.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
        output_tokens = sum(len(json.dumps(b)) // 8 for b in blocks) + 1
        message = {"id": "msg_01MockAnthropic", "type": "message", "role": "assistant", "model": body["model"],
                   "content": blocks, "stop_reason": stop, "stop_sequence": None,
                   "usage": dict(self.usage, output_tokens=output_tokens)}
        if not body.get("stream"):
            return {"status": 200, "headers": {"request-id": "req_mock01"}, "body": message}
        return {"status": 200, "headers": {"content-type": "text/event-stream; charset=utf-8"},
                "sse": self.stream_events(message)}

    def answer_blocks(self, body: dict) -> list[dict]:
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            return [{"type": "tool_use", "id": "toolu_01Forced", "name": choice["name"], "input": self.tool_input}]
        text = self.reply if self.reply is not None else "You said: " + last_user_text(body["messages"])
        blocks = [{"type": "text", "text": text}] if text else []
        for i, (name, arguments) in enumerate(self.tool_calls):
            blocks.append({"type": "tool_use", "id": f"toolu_0{i + 1}Mock", "name": name, "input": arguments})
        return blocks

    def stream_events(self, message: dict) -> list[dict]:
        def event(name: str, **data: Any) -> dict:
            return {"event": name, "data": {"type": name, **data}}

        start = dict(message, content=[], stop_reason=None, usage=dict(message["usage"], output_tokens=1))
        events = [event("message_start", message=start), event("ping")]
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                events.append(event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
                text = block["text"]
                for at in range(0, len(text), self.piece_size):
                    events.append(event("content_block_delta", index=index,
                                        delta={"type": "text_delta", "text": text[at:at + self.piece_size]}))
            else:
                shell = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                events.append(event("content_block_start", index=index, content_block=shell))
                arguments = json.dumps(block["input"])
                events.append(event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": ""}))
                for at in range(0, len(arguments), self.fragment_size):
                    events.append(event("content_block_delta", index=index, delta={
                        "type": "input_json_delta", "partial_json": arguments[at:at + self.fragment_size]}))
            events.append(event("content_block_stop", index=index))
        events.append(event("message_delta", delta={"stop_reason": message["stop_reason"], "stop_sequence": None},
                            usage={"output_tokens": message["usage"]["output_tokens"]}))
        events.append(event("message_stop"))
        if self.stream_error_after is not None:
            events = events[:self.stream_error_after]
            events.append(event("error", error={"type": "overloaded_error", "message": "Overloaded"}))
        return events


def error(status: int, type: str, message: str) -> dict:
    return {"status": status, "headers": {"request-id": "req_mock01"},
            "body": {"type": "error", "error": {"type": type, "message": message}, "request_id": "req_mock01"}}


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        texts = [b["text"] for b in content if b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def validate(body: Any) -> None:
    """Raises InvalidRequest with Anthropic-style messages for what the real API refuses."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: Input should be a valid dictionary")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise InvalidRequest(f"{key}: Field required")
    extra = sorted(set(body) - TOP_LEVEL)
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise InvalidRequest("max_tokens: Input should be a valid positive integer")
    if "temperature" in body and not 0 <= body["temperature"] <= 1:
        raise InvalidRequest("temperature: Input should be less than or equal to 1")
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        if set(tool) - {"name", "description", "input_schema", "cache_control", "strict", "type"}:
            raise InvalidRequest(f"tools.{i}: Extra inputs are not permitted")
        if (tool.get("input_schema") or {}).get("type") != "object":
            raise InvalidRequest(f"tools.{i}.input_schema.type: Input should be 'object'")
    if "tool_choice" in body:
        if not tools:
            raise InvalidRequest("tool_choice may only be specified while providing tools")
        if body["tool_choice"].get("type") not in {"auto", "any", "tool", "none"}:
            raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if "system" in body and not isinstance(body["system"], (str, list)):
        raise InvalidRequest("system: Input should be a valid string")
    messages = body["messages"]
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    pending: set = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise InvalidRequest(f"messages.{i}: content must be a non-empty string or list")
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if pending:
            if role != "user" or {b.get("tool_use_id") for b in results} != pending:
                raise InvalidRequest(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                                     + ", ".join(sorted(pending)))
            if blocks[:len(results)] != results:
                raise InvalidRequest(f"messages.{i}: `tool_result` blocks must come first in the user message")
        elif results:
            raise InvalidRequest(f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                 f"{results[0].get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                                 "`tool_use` block in the previous message.")
        pending = set()
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type")
            if kind == "text":
                if not block.get("text", "").strip():
                    raise InvalidRequest(f"{where}: text content blocks must contain non-whitespace text")
            elif kind == "image":
                source = block.get("source") or {}
                if source.get("type") == "base64":
                    if source.get("media_type") not in MEDIA_TYPES or not source.get("data"):
                        raise InvalidRequest(f"{where}.source: invalid base64 image source")
                elif source.get("type") == "url":
                    if not str(source.get("url", "")).startswith(("https://", "http://")):
                        raise InvalidRequest(f"{where}.source.url: invalid URL")
                else:
                    raise InvalidRequest(f"{where}.source.type: Input should be 'base64' or 'url'")
            elif kind == "tool_use":
                if role != "assistant":
                    raise InvalidRequest(f"{where}: tool_use blocks are only allowed in assistant messages")
                if not ID.match(block.get("id", "")):
                    raise InvalidRequest(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
                if not isinstance(block.get("input"), dict):
                    raise InvalidRequest(f"{where}.input: Input should be a valid dictionary")
                pending.add(block["id"])
            elif kind == "tool_result":
                if not ID.match(block.get("tool_use_id", "")):
                    raise InvalidRequest(f"{where}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            elif kind != "document":
                raise InvalidRequest(f"{where}.type: unknown content block type {kind!r}")
    if pending:
        raise InvalidRequest("`tool_use` ids were found without `tool_result` blocks immediately after: "
                             + ", ".join(sorted(pending)))
