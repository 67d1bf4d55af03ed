"""The official OpenAI Python SDK against Prism's `gemini` and `vertexai` providers
(Plugins/gemini, provider-gemini.so), proxied to a mock speaking Google's real wire formats:
generateContent / streamGenerateContent?alt=sse / batchEmbedContents with `x-goog-api-key`, and
Vertex's /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:… with a Bearer token."""

import base64
import json
import struct
from dataclasses import dataclass

import openai
import pytest

from mock_google import GoogleMock
from prism_helpers import SSEStream, chat_body, make_config, parse_chunks

PLUGIN = "provider-gemini.so"
API_KEY = "AIza-test-key-0001"
BEARER = "ya29.test-token-0001"
MODELS = ["gemini-2.0-flash", "gemini-embedding-001"]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": {"city": {"type": "string", "description": "City name"},
                                  "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
                   "required": ["city"], "additionalProperties": False}}}


@dataclass
class Env:
    flavor: str
    gw: object
    mock: GoogleMock
    client: openai.OpenAI

    def path(self, model: str, method: str) -> str:
        if self.flavor == "vertex":
            return (f"/v1/projects/my-proj/locations/us-central1/publishers/google/models/{model}:{method}")
        return f"/v1beta/models/{model}:{method}"


@pytest.fixture
def plugins_dir(make_plugins_dir, dist_plugins_dir):
    if not (dist_plugins_dir / PLUGIN).is_file():
        pytest.fail(f"{PLUGIN} is not in {dist_plugins_dir}: build PrismProviderGemini and install it there",
                    pytrace=False)
    return make_plugins_dir([dist_plugins_dir / PLUGIN])


def provider_section(flavor: str, base_url: str) -> dict:
    if flavor == "vertex":
        return {"type": "vertexai", "api_format": "gemini", "api_key": BEARER, "project": "my-proj",
                "location": "us-central1", "base_url": base_url, "models": MODELS}
    return {"api_format": "gemini", "api_key": API_KEY, "base_url": base_url, "models": MODELS}


@pytest.fixture(params=["gemini", "vertex"])
def env(request, gateway, _mocks, plugins_dir):
    mock = GoogleMock().start()
    _mocks.append(mock)
    mock.require_key = API_KEY
    mock.require_bearer = BEARER
    gw = gateway(make_config({"google": provider_section(request.param, mock.base_url)}), plugins_dir=plugins_dir)
    client = openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15)
    return Env(request.param, gw, mock, client)


def test_chat_system_and_multi_turn(env):
    resp = env.client.chat.completions.create(
        model="gemini-2.0-flash", temperature=0.2, top_p=0.9, max_tokens=256, stop=["END"], seed=7,
        messages=[{"role": "system", "content": "Be terse."},
                  {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": "Say hello again."}])
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hello from Gemini!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gemini-2.0-flash-001"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (11, 5, 16)

    up = env.mock.last_generate()
    assert up.path == env.path("gemini-2.0-flash", "generateContent")
    if env.flavor == "vertex":
        assert up.headers.get("authorization") == f"Bearer {BEARER}"
        assert "x-goog-api-key" not in up.headers
    else:
        assert up.headers.get("x-goog-api-key") == API_KEY
        assert "authorization" not in up.headers
    assert up.body == {
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                     {"role": "model", "parts": [{"text": "Hello."}]},
                     {"role": "user", "parts": [{"text": "Say hello again."}]}],
        "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
                             "seed": 7}}


def test_stream_text_with_usage(env):
    env.mock.usage_metadata = {"promptTokenCount": 40, "candidatesTokenCount": 8, "thoughtsTokenCount": 12,
                               "cachedContentTokenCount": 30, "totalTokenCount": 60}
    chunks = list(env.client.chat.completions.create(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "Hello from Gemini!"
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert not chunks[-1].choices, "the usage chunk comes last"
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 20, 60)
    assert usage.prompt_tokens_details.cached_tokens == 30
    assert usage.completion_tokens_details.reasoning_tokens == 12
    assert {c.model for c in chunks} == {"gemini-2.0-flash-001"}
    up = env.mock.last_generate()
    assert up.path == env.path("gemini-2.0-flash", "streamGenerateContent") + "?alt=sse"
    assert "stream" not in up.body and "stream_options" not in up.body


def test_stream_without_include_usage_has_no_usage_chunk(env):
    chunks = list(env.client.chat.completions.create(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert all(c.choices for c in chunks)
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "Hello from Gemini!"


def test_tools_non_stream(env):
    env.mock.content_pieces = []
    env.mock.function_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome", "unit": "c"})]
    resp = env.client.chat.completions.create(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome", "unit": "c"}]
    assert [c.id for c in calls] == ["call_resp-mock-1_0", "call_resp-mock-1_1"]
    assert all(c.type == "function" for c in calls)

    body = env.mock.last_generate().body
    assert body["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City name"},
                                      "unit": {"type": "string", "enum": ["c", "f"], "nullable": True}},
                       "required": ["city"]}}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_tool_history_round_trip(env):
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
    ]
    resp = env.client.chat.completions.create(model="gemini-2.0-flash", messages=messages,
                                              tools=[WEATHER_TOOL], tool_choice="auto")
    assert resp.choices[0].message.content == "Hello from Gemini!"
    body = env.mock.last_generate().body
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                                   {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}}]},
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_stream_text_and_tool_call(env):
    env.mock.content_pieces = ["Let me", " check."]
    env.mock.function_calls = [("get_weather", {"city": "Paris"})]
    stream = env.client.chat.completions.create(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL],
        stream=True)
    chunks = list(stream)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == "Let me check."
    deltas = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].id == "call_resp-mock-1_0" and deltas[0].type == "function"
    assert deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
    assert all(d.id is None and d.index == 0 for d in deltas[1:])
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["tool_calls"]


def test_images(env):
    png = "data:image/png;base64,iVBORw0KGgo="
    env.client.chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": png}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}}]}])
    assert env.mock.last_generate().body["contents"][0]["parts"] == [
        {"text": "Compare these."},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}}]


def test_json_response_format(env):
    env.client.chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": "JSON!"}],
                                       response_format={"type": "json_object"})
    assert env.mock.last_generate().body["generationConfig"] == {"responseMimeType": "application/json"}
    env.client.chat.completions.create(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "JSON!"}],
        response_format={"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {
            "type": "object", "properties": {"a": {"type": "integer", "format": "int64"}},
            "required": ["a"], "additionalProperties": False}}})
    assert env.mock.last_generate().body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"a": {"type": "integer", "format": "int64"}},
                           "required": ["a"]}}


def test_safety_is_content_filter(env):
    env.mock.finish_reason = "SAFETY"
    env.mock.content_pieces = []
    resp = env.client.chat.completions.create(model="gemini-2.0-flash",
                                              messages=[{"role": "user", "content": "Hi"}])
    assert resp.choices[0].finish_reason == "content_filter"
    chunks = list(env.client.chat.completions.create(model="gemini-2.0-flash",
                                                     messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["content_filter"]


@pytest.mark.parametrize("http,status,exc,code", [
    (429, "RESOURCE_EXHAUSTED", openai.RateLimitError, "rate_limit_exceeded"),
    (503, "UNAVAILABLE", openai.InternalServerError, "provider_overloaded"),
    (400, "INVALID_ARGUMENT", openai.BadRequestError, "provider_error"),
    (403, "PERMISSION_DENIED", openai.InternalServerError, "provider_auth_error"),
])
def test_errors_before_the_stream(env, http, status, exc, code):
    env.mock.google_error(http, status, f"mock {status}")
    for stream in (False, True):
        with pytest.raises(exc) as info:
            result = env.client.chat.completions.create(model="gemini-2.0-flash",
                                                        messages=[{"role": "user", "content": "Hi"}], stream=stream)
            list(result) if stream else None
        assert info.value.code == code
        assert f"mock {status}" in info.value.message


def test_bad_credentials_are_a_gateway_fault(env, gateway, plugins_dir):
    section = provider_section(env.flavor, env.mock.base_url)
    section["api_key"] = "wrong"
    gw = gateway(make_config({"google": section}), plugins_dir=plugins_dir)
    client = openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15)
    # Vertex: 401 UNAUTHENTICATED; AI Studio: 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 502
    assert info.value.code == "provider_auth_error"


def test_mid_stream_error(env):
    env.mock.stream_error_after = 2
    with SSEStream(env.gw.v1 + "/chat/completions", chat_body("gemini-2.0-flash", stream=True)) as s:
        assert s.status == 200
        events = s.read_all()
    chunks, done = parse_chunks(events)
    assert "".join(ch["delta"].get("content") or "" for c in chunks[:-1] for ch in c["choices"]) == "Hello from"
    assert "error" in chunks[-1], chunks[-1]
    assert "overloaded" in chunks[-1]["error"]["message"]
    with pytest.raises(openai.APIError):
        list(env.client.chat.completions.create(model="gemini-2.0-flash",
                                                messages=[{"role": "user", "content": "Hi"}], stream=True))


def test_truncated_stream_is_an_error(env):
    env.mock.stream_without_finish = True
    with SSEStream(env.gw.v1 + "/chat/completions", chat_body("gemini-2.0-flash", stream=True)) as s:
        events = s.read_all()
    chunks, _ = parse_chunks(events)
    assert "error" in chunks[-1] and "finishReason" in chunks[-1]["error"]["message"]


def test_embeddings(env):
    resp = env.client.embeddings.create(model="gemini-embedding-001", input=["hello", "world"])  # base64
    assert [d.embedding for d in resp.data] == [GoogleMock.embedding_for(i, 8) for i in range(2)]
    assert resp.model == "gemini-embedding-001"
    resp = env.client.embeddings.create(model="gemini-embedding-001", input="hello world", dimensions=4,
                                        encoding_format="float")
    assert resp.data[0].embedding == GoogleMock.embedding_for(0, 4)
    up = env.mock.recorded()[-1]
    if env.flavor == "vertex":
        assert up.path == env.path("gemini-embedding-001", "predict")
        assert up.body == {"instances": [{"content": "hello world"}], "parameters": {"outputDimensionality": 4}}
        assert resp.usage.prompt_tokens == 2
    else:
        assert up.path == env.path("gemini-embedding-001", "batchEmbedContents")
        assert up.body == {"requests": [{"model": "models/gemini-embedding-001",
                                         "content": {"parts": [{"text": "hello world"}]},
                                         "outputDimensionality": 4}]}


def test_embeddings_base64_is_float32(env):
    raw = env.client.embeddings.with_raw_response.create(model="gemini-embedding-001", input="x",
                                                         encoding_format="base64")
    data = json.loads(raw.text)["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(data))) == GoogleMock.embedding_for(0, 8)


def test_reasoning_effort_and_native_fields(env):
    """reasoning_effort becomes a thinking budget with thought summaries, which come back as
    reasoning_content (whole and streamed); top_k and safety_settings reach Gemini."""
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    resp = env.client.chat.completions.create(
        model="gemini-2.0-flash", reasoning_effort="medium", messages=[{"role": "user", "content": "Hi"}],
        extra_body={"top_k": 16, "safety_settings": safety})
    assert resp.choices[0].message.content == "Hello from Gemini!"
    assert resp.choices[0].message.model_extra["reasoning_content"] == env.mock.thought_summary
    body = env.mock.last_generate().body
    assert body["generationConfig"] == {"topK": 16, "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}
    assert body["safetySettings"] == safety

    chunks = list(env.client.chat.completions.create(
        model="gemini-2.0-flash", reasoning_effort="low", stream=True, messages=[{"role": "user", "content": "Hi"}]))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == env.mock.thought_summary
    assert "".join(d.content or "" for d in deltas) == "Hello from Gemini!"
