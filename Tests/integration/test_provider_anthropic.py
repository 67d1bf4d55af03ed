"""The official OpenAI Python SDK against Prism's `anthropic` provider (Plugins/anthropic,
provider-anthropic.so), proxied to a strict mock of Anthropic's Messages API (mock_anthropic.py):
x-api-key and anthropic-version, named SSE events, tool_use / tool_result rules. The SDK's typed
objects must parse every answer Prism gives."""

import base64
import json
from dataclasses import dataclass

import openai
import pytest

from mock_anthropic import API_KEY, AnthropicMock
from prism_helpers import SSEStream, chat_body, make_config, parse_chunks

PLUGIN = "provider-anthropic.so"
MODEL = "claude-sonnet-4-20250514"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@dataclass
class Env:
    gw: object
    mock: AnthropicMock
    client: openai.OpenAI


@pytest.fixture
def env(gateway, dist_plugins_dir):
    if not (dist_plugins_dir / PLUGIN).is_file():
        pytest.fail(f"{PLUGIN} is not in {dist_plugins_dir}: build PrismProviderAnthropic and install it there",
                    pytrace=False)
    mock = AnthropicMock().start()
    try:
        gw = gateway(make_config({"anthropic": {"api_format": "anthropic", "api_key": API_KEY,
                                                "base_url": mock.base_url, "models": [MODEL]}}))
        yield Env(gw, mock, openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15))
    finally:
        mock.stop()


def collect_tool_calls(chunks) -> dict:
    """Tool calls assembled from typed stream chunks, by index, the way OpenAI clients do."""
    calls: dict = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    assert call["id"] is None, "a tool call's id arrived twice"
                    call["id"] = delta.id
                    call["name"] = delta.function.name
                    assert delta.type == "function"
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    return calls


def test_chat_non_stream(env):
    resp = env.client.chat.completions.create(
        model=MODEL, max_tokens=100, temperature=0.3, stop=["END"], user="user-42",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}])
    assert resp.object == "chat.completion"
    assert resp.id == "msg_01MockAnthropic"
    assert resp.model == MODEL
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "You said: Say hello."
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == 21 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    upstream = env.mock.last()
    assert upstream.path == "/v1/messages"
    assert upstream.headers["x-api-key"] == API_KEY
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in upstream.headers
    assert upstream.body["system"] == "Be terse."
    assert upstream.body["messages"] == [{"role": "user", "content": "Say hello."}]
    assert (upstream.body["max_tokens"], upstream.body["temperature"]) == (100, 0.3)
    assert upstream.body["stop_sequences"] == ["END"]
    assert upstream.body["metadata"] == {"user_id": "user-42"}


def test_default_max_tokens(env):
    env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert env.mock.last().body["max_tokens"] == 4096


def test_cached_usage(env):
    env.mock.usage = {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000}
    resp = env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert resp.usage.prompt_tokens == 3210
    assert resp.usage.prompt_tokens_details.cached_tokens == 3000


def test_stream_text_with_usage(env):
    env.mock.reply = "Hello there, this answer streams in pieces."
    stream = env.client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "Hi"}])
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id == "msg_01MockAnthropic"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == env.mock.reply
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3, "text was not streamed in pieces"
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    assert not chunks[-1].choices and chunks[-1].usage.prompt_tokens == 21
    assert chunks[-1].usage.completion_tokens > 0
    assert env.mock.last().body["stream"] is True


def test_stream_without_usage_has_no_usage_chunk(env):
    chunks = list(env.client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "Hi"}]))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_tool_call_non_stream(env):
    env.mock.tool_calls = [("get_weather", {"city": "Paris"})]
    env.mock.reply = "Let me check."
    resp = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], tool_choice="auto",
                                              messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("toolu_01Mock", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    upstream = env.mock.last().body
    assert upstream["tools"] == [{"name": "get_weather", "description": "Current weather for a city.",
                                  "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert upstream["tool_choice"] == {"type": "auto"}


def test_text_and_parallel_tool_calls_streamed(env):
    env.mock.reply = "Checking both."
    env.mock.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo, Japan"})]
    chunks = list(env.client.chat.completions.create(
        model=MODEL, stream=True, tools=[WEATHER_TOOL], tool_choice="required",
        messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}]))
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == "Checking both."
    calls = collect_tool_calls(chunks)
    assert sorted(calls) == [0, 1]
    assert [calls[i]["id"] for i in (0, 1)] == ["toolu_01Mock", "toolu_02Mock"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Tokyo, Japan"}]
    fragments = [d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or [] if not d.id]
    assert len(fragments) > 4, "arguments were not streamed as fragments"
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["tool_calls"]
    assert env.mock.last().body["tool_choice"] == {"type": "any"}


def test_tool_round_trip_history(env):
    """The second turn of a tool conversation: the strict mock refuses any history Anthropic would."""
    env.mock.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    first = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], parallel_tool_calls=True,
                                               messages=[{"role": "user", "content": "Weather in Paris and Rome?"}])
    assistant = first.choices[0].message
    env.mock.tool_calls = []
    env.mock.reply = "Paris 15°C, Rome 22°C."
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                assistant.model_dump(exclude_none=True),
                *[{"role": "tool", "tool_call_id": call.id, "content": f"{call.id}: sunny"} for call in assistant.tool_calls],
                {"role": "user", "content": "Summarise."}]
    second = env.client.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], messages=messages)
    assert second.choices[0].message.content == "Paris 15°C, Rome 22°C."
    sent = env.mock.last().body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["type"] for b in sent[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert sent[1]["content"][1]["input"] == {"city": "Paris"}
    assert [b["type"] for b in sent[2]["content"]] == ["tool_result", "tool_result", "text"]


def test_images(env):
    resp = env.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    assert resp.choices[0].message.content == "You said: Describe."
    blocks = env.mock.last().body["messages"][0]["content"]
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_response_format_json_schema(env):
    env.mock.tool_input = {"city": "Paris", "population": 2100000}
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    resp = env.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Largest French city?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.tool_calls is None
    assert json.loads(resp.choices[0].message.content) == env.mock.tool_input
    assert env.mock.last().body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_embeddings_not_supported(env):
    with pytest.raises(openai.APIStatusError) as info:
        env.client.embeddings.create(model=MODEL, input="hello")
    assert info.value.status_code == 501
    assert info.value.code == "not_supported"
    assert not env.mock.upstream.recorded(), "no upstream call for an API the provider lacks"


@pytest.mark.parametrize("status, kind, sdk_error, client_status, client_type", [
    (401, "authentication_error", openai.InternalServerError, 502, "provider_error"),
    (429, "rate_limit_error", openai.RateLimitError, 429, "rate_limit_error"),
    (529, "overloaded_error", openai.InternalServerError, 503, "overloaded_error"),
    (400, "invalid_request_error", openai.BadRequestError, 400, "invalid_request_error"),
])
def test_errors_before_the_stream(env, status, kind, sdk_error, client_status, client_type):
    env.mock.fail_with(status, kind, f"scripted {kind}")
    for stream in (False, True):
        with pytest.raises(sdk_error) as info:
            result = env.client.chat.completions.create(model=MODEL, stream=stream, messages=[{"role": "user", "content": "Hi"}])
            list(result) if stream else None
        assert info.value.status_code == client_status
        assert info.value.type == client_type
        assert f"scripted {kind}" in info.value.message


def test_error_event_mid_stream(env):
    env.mock.reply = "Once upon a time, in a land far away"
    env.mock.stream_error_after = 5
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in env.client.chat.completions.create(model=MODEL, stream=True,
                                                        messages=[{"role": "user", "content": "Story"}]):
            received.append(chunk)
    assert received and "Overloaded" in str(info.value.message)
    # Raw view: the error event is followed by [DONE].
    with SSEStream(env.gw.url("/v1/chat/completions"), chat_body(MODEL, stream=True)) as raw:
        events = raw.read_all()
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "overloaded_error"
    chunks, done = parse_chunks(events)
    assert done and any("content" in (c.get("choices") or [{}])[0].get("delta", {}) for c in chunks[:-1])


# ---- reasoning, native fields, forwarded headers, prompt caching ---------------------------------

def extra(model, name):
    """A non-standard field of an SDK object (`reasoning_content`, `thinking_blocks`, ...)."""
    return (model.model_extra or {}).get(name)


def test_reasoning_round_trip(env):
    """reasoning_effort, extra_body and extra_headers reach Anthropic; the thinking comes back as
    reasoning_content + thinking_blocks; sending the SDK's message back as it came replays the
    signed thinking block ahead of the tool call, which Anthropic requires while thinking."""
    env.mock.tool_calls = [("get_weather", {"city": "Paris"})]
    env.mock.reply = ""
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    resp = env.client.chat.completions.create(
        model=MODEL, reasoning_effort="low", tools=[WEATHER_TOOL], messages=messages,
        extra_body={"top_k": 10, "metadata": {"user_id": "u-1"}},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    message = resp.choices[0].message
    assert extra(message, "reasoning_content") == env.mock.thinking_text
    assert extra(message, "thinking_blocks") == [
        {"type": "thinking", "thinking": env.mock.thinking_text, "signature": env.mock.signature}]
    assert resp.choices[0].finish_reason == "tool_calls"
    upstream = env.mock.last()
    assert upstream.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert upstream.body["max_tokens"] == 1024 + 4096
    assert (upstream.body["top_k"], upstream.body["metadata"]) == (10, {"user_id": "u-1"})
    assert upstream.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"

    call = message.tool_calls[0]
    env.mock.tool_calls = []
    env.mock.reply = "It is sunny."
    follow = env.client.chat.completions.create(
        model=MODEL, reasoning_effort="low", tools=[WEATHER_TOOL],
        messages=messages + [message.model_dump(exclude_none=True),
                             {"role": "tool", "tool_call_id": call.id, "content": "18°C, sunny"}])
    assert follow.choices[0].message.content == "It is sunny."
    replayed = env.mock.last().body["messages"][1]
    assert replayed["role"] == "assistant"
    assert replayed["content"][0] == {"type": "thinking", "thinking": env.mock.thinking_text,
                                      "signature": env.mock.signature}
    assert replayed["content"][1]["type"] == "tool_use" and replayed["content"][1]["id"] == call.id


def test_reasoning_stream_round_trip(env):
    """Streamed thinking: reasoning_content deltas, then the signed block as a thinking_blocks delta;
    the assembled message goes back with it."""
    env.mock.tool_calls = [("get_weather", {"city": "Rome"})]
    env.mock.reply = ""
    chunks = list(env.client.chat.completions.create(
        model=MODEL, stream=True, reasoning_effort="medium", tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Rome?"}]))
    reasoning = "".join(extra(c.choices[0].delta, "reasoning_content") or "" for c in chunks if c.choices)
    blocks = [b for c in chunks if c.choices for b in extra(c.choices[0].delta, "thinking_blocks") or []]
    assert reasoning == env.mock.thinking_text
    assert len([c for c in chunks if c.choices and extra(c.choices[0].delta, "reasoning_content")]) > 1
    assert blocks == [{"type": "thinking", "thinking": env.mock.thinking_text, "signature": env.mock.signature}]
    calls = collect_tool_calls(chunks)
    assert env.mock.last().body["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    env.mock.tool_calls = []
    env.mock.reply = "Sunny."
    assistant = {"role": "assistant", "content": None, "reasoning_content": reasoning, "thinking_blocks": blocks,
                 "tool_calls": [{"id": calls[0]["id"], "type": "function",
                                 "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}]}
    env.client.chat.completions.create(
        model=MODEL, reasoning_effort="medium", tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Rome?"}, assistant,
                  {"role": "tool", "tool_call_id": calls[0]["id"], "content": "20°C"}])
    assert env.mock.last().body["messages"][1]["content"][0]["type"] == "thinking"


def test_cache_control_and_cache_usage(env):
    env.mock.usage = {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000}
    resp = env.client.chat.completions.create(
        model=MODEL, tools=[dict(WEATHER_TOOL, cache_control={"type": "ephemeral"})],
        messages=[{"role": "system", "content": [{"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral"}}]},
                  {"role": "user", "content": [{"type": "text", "text": "Long document.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                                               {"type": "text", "text": "Question?"}]}])
    assert resp.usage.prompt_tokens == 3210
    assert resp.usage.prompt_tokens_details.cached_tokens == 3000
    assert extra(resp.usage, "cache_creation_input_tokens") == 200
    body = env.mock.last().body
    assert body["system"] == [{"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral"}}]
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}

    stream = env.client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "Hi"}])
    usage = [c.usage for c in stream if c.usage][-1]
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (3210, 3000)
    assert extra(usage, "cache_creation_input_tokens") == 200
