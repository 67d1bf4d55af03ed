"""The official OpenAI SDK's Responses API (`client.responses.create`, streaming, function calls,
`previous_response_id`, retrieve/delete) and legacy completions (`client.completions.create`) against
Prism's ingress plugins (ingress-responses.so, ingress-completions.so): translated through the
canonical chat request for every native provider format and OpenAI-compatible servers, passed
through byte for byte to a provider that speaks the dialect itself (OpenAI's own Responses API, a
self-hosted server's /v1/completions)."""

from __future__ import annotations

import http.client
import json
import socket
import time

import openai
import pytest

from mock_anthropic import API_KEY as ANTHROPIC_KEY, AnthropicMock
from mock_google import GoogleMock
from mock_bedrock import BedrockMock
from mock_cohere import API_KEY as COHERE_KEY, CohereMock
from prism_helpers import make_config, openai_provider, post, get
from redis_server import RedisServer

GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-20250514"
GEMINI = "gemini-2.0-flash"
LLAMA = "llama-3.1-8b"
GOOGLE_KEY = "AIza-test-key-0001"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def env(gateway, make_mock):
    openai_mock, compatible = make_mock(), make_mock()
    compatible.models = [LLAMA]  # a self-hosted server: what it lists is what it serves (discovery)
    anthropic_mock = AnthropicMock().start()
    google = GoogleMock().start()
    google.require_key = GOOGLE_KEY
    # `type: openai` speaks Responses natively (pass-through); a `vllm` server speaks legacy
    # completions natively; the others are reached through the canonical chat request.
    providers = {
        "openai": openai_provider(openai_mock.v1_url, models=[GPT]),
        "vllm": dict(openai_provider(compatible.v1_url, models=[LLAMA]), type="vllm"),
        "anthropic": {"api_format": "anthropic", "api_key": ANTHROPIC_KEY, "base_url": anthropic_mock.base_url,
                      "models": [CLAUDE]},
        "google": {"api_format": "gemini", "api_key": GOOGLE_KEY, "base_url": google.base_url, "models": [GEMINI]},
    }
    gw = gateway(make_config(providers))
    sdk = openai.OpenAI(base_url=gw.v1, api_key="sk-client", max_retries=0, timeout=15)
    yield type("Env", (), {"gw": gw, "sdk": sdk, "openai": openai_mock, "compatible": compatible,
                           "anthropic": anthropic_mock, "google": google})
    anthropic_mock.stop()
    google.stop()


# ---- Responses ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [CLAUDE, GEMINI, LLAMA])
def test_responses_create_translated(env, model):
    response = env.sdk.responses.create(model=model, instructions="Be brief.", input="Say hi")
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_")
    if model == LLAMA:
        assert response.output_text == "Hello from the mock upstream!"
        sent = env.compatible.last_chat().body
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."} or sent["messages"][0]["role"] in ("system", "developer")
        assert sent["messages"][-1]["role"] == "user"
    else:
        assert "Say hi" in response.output_text or response.output_text.startswith("Hello from")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("model", [CLAUDE, LLAMA])
def test_responses_stream_translated(env, model):
    events = list(env.sdk.responses.create(model=model, input="Stream please", stream=True))
    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text and text == events[-1].response.output_text
    assert "response.output_item.added" in types and "response.output_item.done" in types


def test_responses_request_options_reach_the_canonical_request(env):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    env.sdk.responses.create(model=LLAMA, input="Where?", max_output_tokens=300, reasoning={"effort": "high"},
                             text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    sent = env.compatible.last_chat().body
    assert sent["max_tokens"] == 300 and sent["reasoning_effort"] == "high"
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "place", "schema": schema, "strict": True}}


def test_responses_function_call_round_trip(env):
    env.anthropic.tool_calls = [("get_weather", {"city": "Paris"})]
    first = env.sdk.responses.create(model=CLAUDE, input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    env.anthropic.tool_calls = []
    # previous_response_id: the gateway stored the conversation; only the tool's output is new.
    second = env.sdk.responses.create(model=CLAUDE, previous_response_id=first.id, tools=[WEATHER],
                                      input=[{"type": "function_call_output", "call_id": call.call_id,
                                              "output": "18C and sunny"}])
    assert second.status == "completed" and second.previous_response_id == first.id
    sent = env.anthropic.last().body["messages"]
    assert sent[0]["role"] == "user" and "Weather in Paris?" in json.dumps(sent[0])
    assert sent[1]["content"][-1]["type"] == "tool_use" and sent[1]["content"][-1]["input"] == {"city": "Paris"}
    assert sent[2]["content"][0]["type"] == "tool_result" and "18C and sunny" in json.dumps(sent[2])


def test_responses_function_call_stream(env):
    env.anthropic.tool_calls = [("get_weather", {"city": "Paris"})]
    events = list(env.sdk.responses.create(model=CLAUDE, input="Weather?", tools=[WEATHER], stream=True))
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Paris"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and json.loads(done[0].arguments) == {"city": "Paris"}
    final = events[-1].response
    assert any(item.type == "function_call" for item in final.output)


def test_responses_retrieve(env):
    created = env.sdk.responses.create(model=LLAMA, input="Remember me")
    fetched = env.sdk.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    # No deletion: decode runs before the middleware, so it would precede a key's refusal.
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", env.gw.port, timeout=5)
    conn.request("DELETE", f"/v1/responses/{created.id}")
    assert conn.getresponse().status == 405
    assert env.sdk.responses.retrieve(created.id).id == created.id
    with pytest.raises(openai.NotFoundError):
        env.sdk.responses.retrieve("resp_never_stored")
    with pytest.raises(openai.NotFoundError) as info:
        env.sdk.responses.create(model=LLAMA, input="x", previous_response_id="resp_doesnotexist")
    assert info.value.body["code"] == "previous_response_not_found"


def test_responses_pass_through_to_openai(env):
    body = {"model": GPT, "input": [{"role": "user", "content": "Hi"}], "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"], "some_future_field": {"kept": True}}
    raw = json.dumps(body).encode()
    resp = post(env.gw.url("/v1/responses"), raw, headers={"content-type": "application/json"})
    assert resp.status == 200, resp.text
    upstream = env.openai.recorded("/v1/responses")[-1]
    assert upstream.path == "/v1/responses" and upstream.body_bytes == raw
    assert upstream.headers["authorization"].startswith("Bearer sk-upstream")
    assert resp.body == env.openai.sent[-1]
    # Streamed, byte for byte as well.
    conn = http.client.HTTPConnection("127.0.0.1", env.gw.port, timeout=15)
    conn.request("POST", "/v1/responses", json.dumps(dict(body, stream=True)), {"content-type": "application/json"})
    answer = conn.getresponse()
    assert answer.status == 200 and answer.read() == env.openai.sent[-1]
    events = list(env.sdk.responses.create(model=GPT, input="Hi", stream=True))
    assert events[-1].type == "response.completed"


def test_responses_pass_through_usage_is_accounted(env):
    env.sdk.responses.create(model=GPT, input="Hi")
    line = env.gw.wait_for_log(r"request id=\S+ .*model=" + GPT + r" .*status=200.*").group(0)
    assert "tokens_in=13" in line and "tokens_out=7" in line, line


def test_responses_bad_input_is_an_openai_error(env):
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk.responses.create(model=LLAMA, input="x", tools=[{"type": "web_search"}])
    assert "web_search" in info.value.message
    with pytest.raises(openai.NotFoundError) as info:
        env.sdk.responses.create(model="no-such-model", input="x")
    assert info.value.body["code"] == "model_not_found"


def test_responses_websocket_attempt_is_refused_fast(env):
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", env.gw.port), timeout=5)
    sock.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert time.monotonic() - started < 2
    head, _, body = data.partition(b"\r\n\r\n")
    assert not head.startswith(b"HTTP/1.1 101")
    assert b" 405 " in head.split(b"\r\n")[0] or b" 400 " in head.split(b"\r\n")[0], head
    assert b"websocket" in body.lower()


# ---- legacy completions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [GPT, CLAUDE, GEMINI])
def test_completions_translated(env, model):
    completion = env.sdk.completions.create(model=model, prompt="Say this is a test", max_tokens=32)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.choices[0].text and completion.choices[0].finish_reason == "stop"
    if model == GPT:
        sent = env.openai.last_chat().body
        assert sent["messages"] == [{"role": "user", "content": "Say this is a test"}]
    assert completion.usage.prompt_tokens > 0


def test_completions_stream_translated(env):
    chunks = list(env.sdk.completions.create(model=CLAUDE, prompt="Count", stream=True,
                                             stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "Count" in text
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0


def test_completions_pass_through_to_a_self_hosted_server(env):
    raw = json.dumps({"model": LLAMA, "prompt": ["Once upon"], "max_tokens": 5, "logprobs": 2, "echo": True}).encode()
    resp = post(env.gw.url("/v1/completions"), raw, headers={"content-type": "application/json"})
    assert resp.status == 200, resp.text
    assert env.compatible.recorded("/v1/completions")[-1].body_bytes == raw
    assert resp.body == env.compatible.sent[-1]
    chunks = list(env.sdk.completions.create(model=LLAMA, prompt="Once upon", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the mock upstream!"


def test_completions_refusals(env):
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk.completions.create(model=GPT, prompt=["one", "two"])
    assert "one text prompt per request" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk.completions.create(model=CLAUDE, prompt="x", logprobs=3)
    assert "logprobs" in info.value.message


# ---- every native provider format, and the store shared through Redis -------------------------------

COMMAND = "command-a-03-2025"
BEDROCK = "anthropic.claude-3-5-sonnet-20240620-v1:0"
AWS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "IQoJb3JpZ2luX2VjEXAMPLE//session+token==")


@pytest.fixture
def native(gateway):
    cohere, bedrock = CohereMock().start(), BedrockMock(*AWS).start()
    gw = gateway(make_config({
        "cohere": {"api_format": "cohere", "api_key": COHERE_KEY, "base_url": cohere.base_url, "models": [COMMAND]},
        "bedrock": {"api_format": "bedrock", "aws_access_key_id": AWS[0], "aws_secret_access_key": AWS[1],
                    "aws_session_token": AWS[2], "aws_region": "us-east-1", "base_url": bedrock.base_url + "/{region}",
                    "models": [BEDROCK]}}))
    yield openai.OpenAI(base_url=gw.v1, api_key="sk-client", max_retries=0, timeout=15)
    cohere.stop()
    bedrock.stop()


@pytest.mark.parametrize("model", [COMMAND, BEDROCK])
def test_responses_and_completions_on_cohere_and_bedrock(native, model):
    response = native.responses.create(model=model, input="Say hi")
    assert response.status == "completed" and response.output_text
    events = list(native.responses.create(model=model, input="Say hi", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == events[-1].response.output_text
    completion = native.completions.create(model=model, prompt="Say hi", max_tokens=16)
    assert completion.choices[0].text
    chunks = list(native.completions.create(model=model, prompt="Say hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == completion.choices[0].text


def test_stored_responses_are_shared_through_redis(gateway, make_mock, tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        upstream = make_mock()
        upstream.models = [LLAMA]
        config = make_config({"vllm": dict(openai_provider(upstream.v1_url, models=[LLAMA]), type="vllm")},
                             redis={"enabled": True, "address": redis.address, "prefix": "prism-test:"},
                             ingress={"responses": {"store_ttl_seconds": 120}})
        first, second = gateway(config), gateway(config)
        a = openai.OpenAI(base_url=first.v1, api_key="k", max_retries=0, timeout=15)
        b = openai.OpenAI(base_url=second.v1, api_key="k", max_retries=0, timeout=15)
        created = a.responses.create(model=LLAMA, input="Remember the number 42")
        # The other replica retrieves it, and continues the conversation from it.
        assert b.responses.retrieve(created.id).output_text == created.output_text
        follow = b.responses.create(model=LLAMA, previous_response_id=created.id, input="Which number?")
        sent = upstream.last_chat().body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert sent[0]["content"] == "Remember the number 42" and sent[2]["content"] == "Which number?"
        assert follow.previous_response_id == created.id
        keys = redis.keys("*")
        assert any(created.id in key for key in keys), keys
        ttl = int((redis.command("PTTL", next(key for key in keys if created.id in key)) or b":0").lstrip(b":"))
        assert 0 < ttl <= 120_000
    finally:
        redis.stop()
