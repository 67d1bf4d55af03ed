"""The official OpenAI Python SDK against Prism's `cohere` provider (Plugins/cohere,
provider-cohere.so), proxied to a strict mock of Cohere's v2 API (mock_cohere.py): /v2/chat with
its typed SSE events and /v2/embed. The SDK's typed objects must parse every answer Prism gives."""

import base64
import json
import struct
from dataclasses import dataclass

import openai
import pytest

from mock_cohere import API_KEY, CohereMock
from prism_helpers import SSEStream, chat_body, make_config, parse_chunks

PLUGIN = "provider-cohere.so"
MODEL = "command-a-03-2025"
EMBED_V3 = "embed-english-v3.0"
EMBED_V4 = "embed-v4.0"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@dataclass
class Env:
    gw: object
    mock: CohereMock
    client: openai.OpenAI


@pytest.fixture
def env(gateway, dist_plugins_dir):
    if not (dist_plugins_dir / PLUGIN).is_file():
        pytest.fail(f"{PLUGIN} is not in {dist_plugins_dir}: build PrismProviderCohere and install it there",
                    pytrace=False)
    mock = CohereMock().start()
    try:
        gw = gateway(make_config({"cohere": {"api_format": "cohere", "api_key": API_KEY, "base_url": mock.base_url,
                                             "models": [MODEL, EMBED_V3, EMBED_V4]}}))
        yield Env(gw, mock, openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15))
    finally:
        mock.stop()


def collect_tool_calls(chunks) -> dict:
    calls: dict = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    assert call["id"] is None, "a tool call's id arrived twice"
                    call["id"], call["name"] = delta.id, delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    return calls


def test_chat_non_stream(env):
    resp = env.client.chat.completions.create(
        model=MODEL, max_tokens=50, temperature=0.2, top_p=1.0, seed=7, stop=["END"],
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}])
    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert resp.choices[0].message.content == "You said: Say hello."
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (7, 9, 16)

    upstream = env.mock.last()
    assert upstream.path == "/v2/chat"
    assert upstream.headers["authorization"] == f"Bearer {API_KEY}"
    body = upstream.body
    assert body["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}]
    assert (body["max_tokens"], body["temperature"], body["p"], body["seed"]) == (50, 0.2, 0.99, 7)
    assert body["stop_sequences"] == ["END"]
    assert "stream" not in body


def test_cached_usage(env):
    env.mock.cached_tokens = 4
    resp = env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert resp.usage.prompt_tokens_details.cached_tokens == 4


def test_stream_text_with_usage(env):
    env.mock.reply = "Hello there, this answer streams in pieces."
    chunks = list(env.client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "Hi"}]))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == env.mock.reply
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    assert not chunks[-1].choices
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 9)
    assert env.mock.last().body["stream"] is True


def test_tool_call_non_stream(env):
    env.mock.tool_calls = [("get_weather", {"city": "Paris"})]
    resp = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], tool_choice="required",
                                              messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None, "Cohere's tool_plan is not passed on as content"
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name) == ("get_weather_mock0", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    upstream = env.mock.last().body
    assert upstream["tools"] == [WEATHER_TOOL]
    assert upstream["tool_choice"] == "REQUIRED"


def test_parallel_tool_calls_streamed(env):
    env.mock.tool_calls = [("get_weather", {"city": "Madrid"}), ("get_weather", {"city": "Brasilia, Brazil"})]
    chunks = list(env.client.chat.completions.create(model=MODEL, stream=True, tools=[WEATHER_TOOL],
                                                     messages=[{"role": "user", "content": "Madrid and Brasilia?"}]))
    calls = collect_tool_calls(chunks)
    assert sorted(calls) == [0, 1]
    assert [calls[i]["id"] for i in (0, 1)] == ["get_weather_mock0", "get_weather_mock1"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Madrid"}, {"city": "Brasilia, Brazil"}]
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "", "tool-plan-delta is dropped"
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["tool_calls"]


def test_text_and_tool_call_streamed(env):
    env.mock.reply = "Let me look."
    env.mock.tool_calls = [("get_weather", {"city": "Oslo"})]
    chunks = list(env.client.chat.completions.create(model=MODEL, stream=True, tools=[WEATHER_TOOL],
                                                     messages=[{"role": "user", "content": "Oslo?"}]))
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "Let me look."
    assert json.loads(collect_tool_calls(chunks)[0]["arguments"]) == {"city": "Oslo"}


def test_tool_round_trip_history(env):
    env.mock.tool_calls = [("get_weather", {"city": "Paris"})]
    first = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL],
                                               messages=[{"role": "user", "content": "Weather in Paris?"}])
    assistant = first.choices[0].message
    env.mock.tool_calls = []
    env.mock.reply = "It is sunny in Paris."
    second = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        assistant.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": assistant.tool_calls[0].id, "content": "{\"sky\": \"sunny\"}"}])
    assert second.choices[0].message.content == "It is sunny in Paris."
    sent = env.mock.last().body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}
    assert sent[2] == {"role": "tool", "tool_call_id": "get_weather_mock0", "content": "{\"sky\": \"sunny\"}"}


def test_response_format_json_schema(env):
    env.mock.reply = "{\"city\": \"Paris\"}"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    resp = env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "City?"}],
                                              response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    assert json.loads(resp.choices[0].message.content) == {"city": "Paris"}
    assert env.mock.last().body["response_format"] == {"type": "json_object", "json_schema": schema}


def test_embeddings_float(env):
    resp = env.client.embeddings.create(model=EMBED_V3, input=["hello world", "goodbye"], encoding_format="float")
    assert resp.object == "list" and resp.model == EMBED_V3
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[1].embedding == CohereMock.vector(1, 8)
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (3, 3)
    body = env.mock.last().body
    assert env.mock.last().path == "/v2/embed"
    assert body == {"model": EMBED_V3, "texts": ["hello world", "goodbye"], "input_type": "search_document",
                    "embedding_types": ["float"]}


def test_embeddings_sdk_default_base64_with_dimensions(env):
    # The SDK asks for base64 when the caller names no encoding and decodes it itself.
    resp = env.client.embeddings.create(model=EMBED_V4, input="hello", dimensions=256)
    assert len(resp.data[0].embedding) == 256
    assert resp.data[0].embedding == CohereMock.vector(0, 256)
    assert env.mock.last().body["output_dimension"] == 256
    raw = env.client.embeddings.with_raw_response.create(model=EMBED_V4, input="hi", encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == CohereMock.vector(0, 8)


def test_embeddings_input_type_extension(env):
    env.client.embeddings.create(model=EMBED_V3, input="query", extra_body={"input_type": "search_query"})
    assert env.mock.last().body["input_type"] == "search_query"


def test_embeddings_dimensions_on_v3_is_refused(env):
    with pytest.raises(openai.BadRequestError) as info:
        env.client.embeddings.create(model=EMBED_V3, input="hello", dimensions=256)
    assert info.value.code == "unsupported_parameter"
    assert not env.mock.upstream.recorded()


@pytest.mark.parametrize("status, sdk_error, client_status, client_type", [
    (401, openai.InternalServerError, 502, "provider_error"),
    (498, openai.InternalServerError, 502, "provider_error"),
    (429, openai.RateLimitError, 429, "rate_limit_error"),
    (503, openai.InternalServerError, 503, "overloaded_error"),
    (400, openai.BadRequestError, 400, "invalid_request_error"),
])
def test_errors_before_the_stream(env, status, sdk_error, client_status, client_type):
    env.mock.fail_with(status, f"scripted {status}")
    for stream in (False, True):
        with pytest.raises(sdk_error) as info:
            result = env.client.chat.completions.create(model=MODEL, stream=stream, messages=[{"role": "user", "content": "Hi"}])
            list(result) if stream else None
        assert info.value.status_code == client_status
        assert info.value.type == client_type
        assert f"scripted {status}" in info.value.message


def test_error_finish_mid_stream(env):
    env.mock.reply = "Once upon a time, in a land far away"
    env.mock.stream_error_after = 4
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in env.client.chat.completions.create(model=MODEL, stream=True,
                                                        messages=[{"role": "user", "content": "Story"}]):
            received.append(chunk)
    assert received and "internal server error" in str(info.value.message)
    with SSEStream(env.gw.url("/v1/chat/completions"), chat_body(MODEL, stream=True)) as raw:
        events = raw.read_all()
    chunks, done = parse_chunks(events)
    assert done and chunks[-1]["error"]["code"] == "provider_error"
