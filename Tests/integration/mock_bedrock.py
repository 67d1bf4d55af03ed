"""A mock AWS Bedrock runtime: Converse, ConverseStream (binary `application/vnd.amazon.eventstream`
frames with real CRCs) and InvokeModel (Titan text embeddings v2), behind SigV4 that it verifies
with botocore's own signer, as AWS would.

Each request must carry a valid Signature Version 4 for service `bedrock`: the mock rebuilds the
request from what it received (method, path as sent, the headers named in SignedHeaders, body),
recomputes the signature with ``botocore.auth.SigV4Auth`` for the region in the credential scope,
and answers 403 ``InvalidSignatureException`` (Bedrock's error JSON and ``x-amzn-ErrorType``) on
any mismatch. It also checks the key id, the session token, the region (the first path segment
when the gateway's base_url is ``http://127.0.0.1:PORT/{region}``), ``x-amz-content-sha256``
against the body, and the clock skew.

Paths: ``[/{region}]/model/{modelId}/converse``, ``…/converse-stream``, ``…/invoke``.

Scripting (attributes):
- ``text``: the answer text (``{region}`` is replaced by the answering region);
- ``tool_call``: ``(name, input)``: answer with a toolUse block (stopReason tool_use) when the
  request declares tools and its last user turn has no toolResult;
- a request that forces the ``json_response`` tool (the gateway's response_format) is answered
  through it with ``{"answer": text}``;
- ``fail_regions``: ``{region: (status, error type, message)}``, answered before anything else;
- ``stream_exception``: ``(exception type, message)``: sent as an exception frame after the first
  text delta;
- ``chunk_size``: stream bytes per chunk (frames split anywhere), default 7.

Claude's extended thinking (``additionalModelRequestFields.thinking``), checked as Bedrock does:
``budget_tokens`` at least 1024 and below ``inferenceConfig.maxTokens``; with thinking on, the
assistant turn whose tool calls the request answers must start with its signed
``reasoningContent``. The answer then starts with a ``reasoningContent`` block
(``reasoning_text``, ``signature``), streamed as text deltas and a signature delta.

``verified`` lists ``(region, path, ok, reason)`` per request.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from typing import Any, Optional
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from replay_upstream import RecordedRequest, ReplayUpstream

PATH = re.compile(r"^(?:/(?P<prefix>[a-z0-9-]+))?/model/(?P<model>[^/]+)/(?P<action>converse|converse-stream|invoke)$")
AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
                  r"/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$")


def aws_error(status: int, error_type: str, message: str) -> dict:
    return {"status": status, "headers": {"x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                          "x-amzn-requestid": "7e1ad0c1-0000-4000-8000-000000000000"},
            "body": {"message": message}}


def event(event_type: str, payload: dict) -> dict:
    return {"headers": {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
            "payload": {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[:len(event_type) + 5]}}


class BedrockMock:
    def __init__(self, access_key: str, secret_key: str, session_token: Optional[str] = None) -> None:
        self.credentials = Credentials(access_key, secret_key, session_token)
        self.text = "Hello from Bedrock in {region}!"
        self.tool_call: Optional[tuple[str, dict]] = None
        self.fail_regions: dict[str, tuple[int, str, str]] = {}
        self.stream_exception: Optional[tuple[str, str]] = None
        self.chunk_size = 7
        self.reasoning_text = "Think it through, then answer."
        self.signature = "EqQBCgIYAhIMmockBedrockSig"
        self.verified: list[tuple[str, str, bool, str]] = []
        self.lock = threading.Lock()
        self.upstream = ReplayUpstream(responder=self.respond)

    def start(self) -> "BedrockMock":
        self.upstream.start()
        return self

    def stop(self) -> None:
        self.upstream.stop()

    @property
    def base_url(self) -> str:
        return self.upstream.base_url

    def recorded(self) -> list[RecordedRequest]:
        return self.upstream.recorded()

    # ---- SigV4 ----------------------------------------------------------------------------------

    def verify(self, request: RecordedRequest) -> tuple[Optional[str], str]:
        """(region from the credential scope, "") when the signature is valid, else (region, reason)."""
        match = AUTH.match(request.headers.get("authorization", ""))
        if not match:
            return None, "missing or malformed Authorization header"
        region, signed = match["region"], match["signed"].split(";")
        amz_date = request.headers.get("x-amz-date", "")
        if match["key"] != self.credentials.access_key:
            return region, f"unknown access key {match['key']}"
        if match["service"] != "bedrock":
            return region, f"credential scope names service {match['service']}, not bedrock"
        if match["date"] != amz_date[:8]:
            return region, "credential scope date differs from x-amz-date"
        for name in ["host", "x-amz-date", "content-type"] + (["x-amz-security-token"] if self.credentials.token else []):
            if name not in signed:
                return region, f"{name} is not signed"
        if any(name not in request.headers for name in signed):
            return region, "a signed header is missing"
        if self.credentials.token and request.headers.get("x-amz-security-token") != self.credentials.token:
            return region, "wrong session token"
        if "x-amz-content-sha256" in request.headers and \
                request.headers["x-amz-content-sha256"] != hashlib.sha256(request.body_bytes).hexdigest():
            return region, "x-amz-content-sha256 is not the body's hash"
        try:
            skew = abs(time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.mktime(time.gmtime()))
        except ValueError:
            return region, "bad x-amz-date"
        if skew > 300:
            return region, f"x-amz-date is {skew:.0f}s off"
        aws_request = AWSRequest(method=request.method, url=f"http://{request.headers['host']}{request.path}",
                                 headers={name: request.headers[name] for name in signed}, data=request.body_bytes)
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, "bedrock", region)
        canonical = signer.canonical_request(aws_request)
        if signer.signed_headers(signer.headers_to_sign(aws_request)) != match["signed"]:
            return region, "SignedHeaders differs from botocore's"
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if expected != match["signature"]:
            return region, f"signature mismatch; botocore's canonical request:\n{canonical}"
        return region, ""

    # ---- answers --------------------------------------------------------------------------------

    def respond(self, request: RecordedRequest) -> dict:
        path = PATH.match(request.path)
        region, problem = self.verify(request)
        with self.lock:
            self.verified.append((region or "", request.path, not problem, problem))
        if problem:
            return aws_error(403, "InvalidSignatureException",
                             "The request signature we calculated does not match the signature you provided. "
                             "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
        if not path:
            return aws_error(404, "UnknownOperationException", f"no such operation: {request.path}")
        if path["prefix"] and path["prefix"] != region:
            return aws_error(403, "InvalidSignatureException", f"credential scope region {region} does not match {path['prefix']}")
        if region in self.fail_regions:
            status, error_type, message = self.fail_regions[region]
            return aws_error(status, error_type, message)
        model, body = unquote(path["model"]), request.body or {}
        if path["action"] == "invoke":
            return self.embed(model, body)
        if not body.get("messages"):
            return aws_error(400, "ValidationException", "The messages field is required.")
        problem = thinking_problem(body)
        if problem:
            return aws_error(400, "ValidationException", problem)
        content, stop = self.answer(body, region)
        if ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type") == "enabled":
            content.insert(0, {"reasoningContent": {"reasoningText": {"text": self.reasoning_text, "signature": self.signature}}})
        if path["action"] == "converse":
            return {"status": 200, "headers": {"content-type": "application/json"},
                    "body": {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                             "usage": {"inputTokens": 25, "outputTokens": 9, "totalTokens": 34},
                             "metrics": {"latencyMs": 321}}}
        return {"status": 200, "eventstream": self.frames(content, stop), "eventstream_chunk_size": self.chunk_size}

    def answer(self, body: dict, region: str) -> tuple[list, str]:
        last = body["messages"][-1]["content"]
        forced = body.get("toolConfig", {}).get("toolChoice", {}).get("tool", {}).get("name")
        if forced == "json_response":
            return [{"toolUse": {"toolUseId": "tooluse_json", "name": "json_response",
                                 "input": {"answer": self.text.replace("{region}", region)}}}], "tool_use"
        if self.tool_call and body.get("toolConfig") and not any("toolResult" in block for block in last):
            name, tool_input = self.tool_call
            return [{"text": "Let me look that up."},
                    {"toolUse": {"toolUseId": "tooluse_Xy1ZpQrStUvWx0123456789a", "name": name, "input": tool_input}}], "tool_use"
        return [{"text": self.text.replace("{region}", region)}], "end_turn"

    def frames(self, content: list, stop: str) -> list[dict]:
        frames = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(content):
            if "reasoningContent" in block:
                reasoning = block["reasoningContent"]["reasoningText"]
                for word in re.findall(r"\S+\s*", reasoning["text"]):
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                              "delta": {"reasoningContent": {"text": word}}}))
                frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                          "delta": {"reasoningContent": {"signature": reasoning["signature"]}}}))
            elif "text" in block:
                words = re.findall(r"\S+\s*", block["text"])
                for number, word in enumerate(words):
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}}))
                    if number == 0 and self.stream_exception:
                        error_type, message = self.stream_exception
                        frames.append({"headers": {":exception-type": error_type, ":content-type": "application/json",
                                                   ":message-type": "exception"}, "payload": {"message": message}})
                        return frames
            else:
                use = block["toolUse"]
                frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                text = json.dumps(use["input"])
                for piece in [text[i:i + 6] for i in range(0, len(text), 6)]:
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                              "delta": {"toolUse": {"input": piece}}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(event("messageStop", {"stopReason": stop}))
        frames.append(event("metadata", {"usage": {"inputTokens": 25, "outputTokens": 9, "totalTokens": 34},
                                         "metrics": {"latencyMs": 321}}))
        return frames

    def embed(self, model: str, body: dict) -> dict:
        if "titan-embed" not in model or not isinstance(body.get("inputText"), str):
            return aws_error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
        dimensions = body.get("dimensions", 1024)
        vector = [round((i + 1) / 8, 3) for i in range(dimensions)]
        return {"status": 200, "headers": {"content-type": "application/json"},
                "body": {"embedding": vector, "embeddingsByType": {"float": vector},
                         "inputTextTokenCount": len(body["inputText"].split())}}


def thinking_problem(body: dict) -> str:
    """What Bedrock refuses about Claude's thinking in a Converse body ("" when nothing)."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if not thinking or thinking.get("type") != "enabled":
        return ""
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.budget_tokens: must be at least 1024"
    if budget >= (body.get("inferenceConfig") or {}).get("maxTokens", 0):
        return "The maximum tokens you requested exceeds the model limit: max_tokens must be greater than thinking.budget_tokens"
    messages = body["messages"]
    for message in reversed(messages[:-1] if messages[-1]["role"] == "user" else []):
        if message["role"] != "assistant":
            continue
        content = message["content"]
        if any("toolUse" in block for block in content) and "reasoningContent" not in content[0]:
            return ("Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, "
                    "a final `assistant` message must start with a thinking block.")
        break
    return ""
