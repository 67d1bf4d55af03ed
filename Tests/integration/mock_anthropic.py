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

Extended thinking, as Anthropic checks it: `thinking.budget_tokens` at least 1024 and below
`max_tokens`; thinking blocks in the history need their `signature` (redacted ones their `data`);
with thinking on, the assistant turn whose tool calls the request answers must start with a
thinking block. With thinking on, the answer starts with a thinking block (`thinking_text`, signed
`signature`), streamed as thinking_delta pieces then a signature_delta. `cache_control` on system,
tool and content blocks must be `{"type": "ephemeral", "ttl"?: "5m"|"1h"}`.
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
        self.thinking_text = "The user asked something; answer it."
        self.signature = "EqQBCgIYAhIMmockSignature01"
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
        # "2023-06-01", or a later dated version (as newer SDKs send).
        if not re.fullmatch(r"20\d\d-\d\d-\d\d", request.headers.get("anthropic-version") or "") \
                or request.headers["anthropic-version"] < "2023-06-01":
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
        if (body.get("thinking") or {}).get("type") == "enabled":
            blocks.insert(0, {"type": "thinking", "thinking": self.thinking_text, "signature": self.signature})
        for i, (name, arguments) in enumerate(self.tool_calls):
            blocks.append({"type": "tool_use", "id": f"toolu_0{i + 1}Mock", "name": name, "input": arguments})
        return blocks

    def stream_events(self, message: dict) -> list[dict]:
        def event(name: str, **data: Any) -> dict:
            return {"event": name, "data": {"type": name, **data}}

        start = dict(message, content=[], stop_reason=None, usage=dict(message["usage"], output_tokens=1))
        events = [event("message_start", message=start), event("ping")]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            if kind in ("text", "thinking"):  # text_delta / thinking_delta pieces; thinking ends signed
                events.append(event("content_block_start", index=index, content_block={"type": kind, kind: ""}))
                text = block[kind]
                for at in range(0, len(text), self.piece_size):
                    events.append(event("content_block_delta", index=index,
                                        delta={"type": f"{kind}_delta", kind: text[at:at + self.piece_size]}))
                if kind == "thinking":
                    events.append(event("content_block_delta", index=index,
                                        delta={"type": "signature_delta", "signature": block["signature"]}))
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
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
        if thinking_on:
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if budget >= body["max_tokens"]:
                raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
    if "top_k" in body and (not isinstance(body["top_k"], int) or body["top_k"] < 0):
        raise InvalidRequest("top_k: Input should be a valid non-negative integer")
    if "metadata" in body and set(body["metadata"]) - {"user_id"}:
        raise InvalidRequest("metadata: Extra inputs are not permitted")
    if "cache_control" in body:
        check_cache_control(body["cache_control"], "cache_control")
    if isinstance(body.get("system"), list):
        for i, block in enumerate(body["system"]):
            if block.get("type") != "text" or not str(block.get("text", "")).strip():
                raise InvalidRequest(f"system.{i}: system blocks must be non-empty text blocks")
            if "cache_control" in block:
                check_cache_control(block["cache_control"], f"system.{i}.cache_control")
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        if set(tool) - {"name", "description", "input_schema", "cache_control", "strict", "type"}:
            raise InvalidRequest(f"tools.{i}: Extra inputs are not permitted")
        if "cache_control" in tool:
            check_cache_control(tool["cache_control"], f"tools.{i}.cache_control")
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
    # With thinking on, the assistant turn whose tool calls this request answers must start with
    # its (signed) thinking, as Anthropic returned it.
    if thinking_on and messages[-1].get("role") == "user":
        for message in reversed(messages[:-1]):
            if message.get("role") != "assistant":
                continue
            content = message.get("content")
            if isinstance(content, list) and any(b.get("type") == "tool_use" for b in content) \
                    and content[0].get("type") not in ("thinking", "redacted_thinking"):
                raise InvalidRequest("messages: Expected `thinking` or `redacted_thinking`, but found "
                                     f"`{content[0].get('type')}`. When `thinking` is enabled, a final `assistant` message "
                                     "must start with a thinking block.")
            break
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
            if "cache_control" in block:
                check_cache_control(block["cache_control"], f"{where}.cache_control")
            if kind in ("thinking", "redacted_thinking"):
                if role != "assistant":
                    raise InvalidRequest(f"{where}: thinking blocks are only allowed in assistant messages")
                if kind == "thinking" and (not isinstance(block.get("thinking"), str) or not block.get("signature")):
                    raise InvalidRequest(f"{where}.signature: Field required")
                if kind == "redacted_thinking" and not block.get("data"):
                    raise InvalidRequest(f"{where}.data: Field required")
            elif kind == "text":
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


def check_cache_control(control: Any, where: str) -> None:
    if not isinstance(control, dict) or control.get("type") != "ephemeral" or set(control) - {"type", "ttl"} \
            or control.get("ttl", "5m") not in ("5m", "1h"):
        raise InvalidRequest(f"{where}: Input should be {{'type': 'ephemeral', 'ttl'?: '5m' | '1h'}}")
