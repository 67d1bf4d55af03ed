"""The official Anthropic Python SDK against Prism's Anthropic Messages ingress
(Plugins/ingress-anthropic, ingress-anthropic.so): `messages.create`, `messages.stream`, a tools
round trip, `count_tokens` and the SDK's error classes, against every native provider format and an
OpenAI-format one (translated through the canonical chat request), and against an Anthropic
provider (pass-through: the client's body goes upstream unchanged but for the model, and the
answer comes back byte for byte)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from mock_anthropic import API_KEY as ANTHROPIC_KEY, AnthropicMock
from mock_bedrock import BedrockMock
from mock_cohere import API_KEY as COHERE_KEY, CohereMock
from mock_google import GoogleMock
from prism_helpers import make_config, openai_provider, post

CLAUDE = "claude-sonnet-4-20250514"
GPT = "gpt-4o-mini"
GEMINI = "gemini-2.0-flash"
COMMAND = "command-a-03-2025"
BEDROCK = "anthropic.claude-3-5-sonnet-20240620-v1:0"
GOOGLE_KEY = "AIza-test-key-0001"
AWS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "IQoJb3JpZ2luX2VjEXAMPLE//session+token==")
CLIENT_KEY = "sk-prism-client-0001"
WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@dataclass
class Upstreams:
    openai: Any
    anthropic: AnthropicMock
    google: GoogleMock
    cohere: CohereMock
    bedrock: BedrockMock


@pytest.fixture
def upstreams(make_mock):
    mocks = Upstreams(make_mock(), AnthropicMock().start(), GoogleMock().start(), CohereMock().start(),
                      BedrockMock(*AWS).start())
    mocks.google.require_key = GOOGLE_KEY
    yield mocks
    for mock in (mocks.anthropic, mocks.google, mocks.cohere, mocks.bedrock):
        mock.stop()


def providers(mocks: Upstreams) -> dict:
    return {
        "openai": openai_provider(mocks.openai.v1_url, models=[GPT]),
        "anthropic": {"api_format": "anthropic", "api_key": ANTHROPIC_KEY, "base_url": mocks.anthropic.base_url,
                      "models": [CLAUDE]},
        "google": {"api_format": "gemini", "api_key": GOOGLE_KEY, "base_url": mocks.google.base_url, "models": [GEMINI]},
        "cohere": {"api_format": "cohere", "api_key": COHERE_KEY, "base_url": mocks.cohere.base_url, "models": [COMMAND]},
        "bedrock": {"api_format": "bedrock", "aws_access_key_id": AWS[0], "aws_secret_access_key": AWS[1],
                    "aws_session_token": AWS[2], "aws_region": "us-east-1", "base_url": mocks.bedrock.base_url + "/{region}",
                    "models": [BEDROCK]},
    }


@pytest.fixture
def gw(gateway, upstreams):
    return gateway(make_config(providers(upstreams)))


def client(gw, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key=key, max_retries=0, timeout=15)


# ---- the matrix: every provider format answers an Anthropic client ---------------------------------

MATRIX = [GPT, CLAUDE, GEMINI, COMMAND, BEDROCK]


@pytest.mark.parametrize("model", MATRIX)
def test_messages_create_every_provider(gw, model):
    message = client(gw).messages.create(model=model, max_tokens=64, system="Be brief.",
                                         messages=[{"role": "user", "content": "Say hi"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text, message
    if model != GPT:
        assert "Say hi" in text or text.startswith("Hello from"), text  # the mocks echo, or greet
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MATRIX)
def test_messages_stream_every_provider(gw, model):
    with client(gw).messages.stream(model=model, max_tokens=64,
                                    messages=[{"role": "user", "content": "Stream please"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "".join(block.text for block in final.content if block.type == "text")
    assert pieces and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def raw_events(gw, model: str) -> list[tuple[str, dict]]:
    """The SSE events exactly as the gateway sent them."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=15)
    body = json.dumps({"model": model, "max_tokens": 64, "stream": True,
                       "messages": [{"role": "user", "content": "Stream please"}]})
    conn.request("POST", "/v1/messages", body, {"content-type": "application/json", "x-api-key": "k",
                                                "anthropic-version": "2023-06-01"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
    events = []
    for frame in resp.read().decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("model", [GPT, GEMINI])
def test_stream_event_sequence_is_anthropics(gw, model):
    events = raw_events(gw, model)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    for name, data in events:
        assert data["type"] == name
    body = [n for n in names if n.startswith("content_block")]
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] > 0


# ---- pass-through: Anthropic in, Anthropic out -------------------------------------------------------

def test_pass_through_body_and_answer_byte_for_byte(gw, upstreams):
    body = {"model": CLAUDE, "max_tokens": 2048, "system": [{"type": "text", "text": "Be brief.",
                                                             "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi",
                                                       "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
            "metadata": {"user_id": "u-1"}, "service_tier": "auto"}
    raw = json.dumps(body, separators=(",", ":")).encode()
    resp = post(gw.url("/v1/messages"), raw, headers={"content-type": "application/json", "x-api-key": "k",
                                                     "anthropic-version": "2023-06-01",
                                                     "anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert resp.status == 200, resp.text
    upstream = upstreams.anthropic.last()
    assert upstream.body_bytes == raw  # nothing re-encoded: the model was already the upstream's
    assert upstream.headers["x-api-key"] == ANTHROPIC_KEY  # the provider's credentials, not the client's
    assert "interleaved-thinking-2025-05-14" in upstream.headers.get("anthropic-beta", "")
    assert resp.body == upstreams.anthropic.upstream.sent[-1]
    assert resp.headers.get("x-prism-provider") == "anthropic"


def test_pass_through_stream_byte_for_byte(gw, upstreams):
    with client(gw).messages.stream(model=CLAUDE, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                    messages=[{"role": "user", "content": "Think, then answer"}]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature == upstreams.anthropic.signature  # the signature survived
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=15)
    conn.request("POST", "/v1/messages", json.dumps({"model": CLAUDE, "max_tokens": 64, "stream": True,
                                                     "messages": [{"role": "user", "content": "again"}]}),
                 {"content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert conn.getresponse().read() == upstreams.anthropic.upstream.sent[-1]


def test_pass_through_usage_reaches_the_request_log(gw, upstreams):
    upstreams.anthropic.usage = {"input_tokens": 30, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 7}
    client(gw).messages.create(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    line = gw.wait_for_log(r"request id=\S+ .*model=" + CLAUDE + r" .*status=200.*").group(0)
    assert "tokens_in=42" in line, line


# ---- tools round trip ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_tools_round_trip(gw, upstreams, model):
    upstreams.anthropic.tool_calls = [("get_weather", {"city": "Paris"})]
    upstreams.openai.script = []
    sdk = client(gw)
    if model == GPT:
        # The OpenAI-format mock answers text; the tool call comes from a forced tool choice elsewhere.
        first = sdk.messages.create(model=model, max_tokens=64, tools=[WEATHER],
                                    messages=[{"role": "user", "content": "Weather in Paris?"}])
        assert first.content[0].type == "text"
        sent = upstreams.openai.last_chat().body
        assert sent["tools"][0]["function"]["name"] == "get_weather"
        assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
        use = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    else:
        first = sdk.messages.create(model=model, max_tokens=64, tools=[WEATHER],
                                    messages=[{"role": "user", "content": "Weather in Paris?"}])
        use = next(block for block in first.content if block.type == "tool_use")
        assert first.stop_reason == "tool_use" and use.input == {"city": "Paris"}
        use = use.model_dump()
    upstreams.anthropic.tool_calls = []
    second = sdk.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "18°C, sunny"}]}])
    assert second.stop_reason == "end_turn"
    if model == GPT:
        messages = upstreams.openai.last_chat().body["messages"]
        assert messages[1]["tool_calls"][0]["id"] == "toolu_01A"
        assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
        assert messages[2]["role"] == "tool" and messages[2]["tool_call_id"] == "toolu_01A"
        assert "18°C" in json.dumps(messages[2]["content"], ensure_ascii=False)


def test_tool_call_streams_as_input_json_delta(gw, upstreams):
    upstreams.anthropic.tool_calls = [("get_weather", {"city": "Paris", "unit": "c"})]
    # Pass-through: Anthropic's own input_json_delta events, assembled by the SDK.
    with client(gw).messages.stream(model=CLAUDE, max_tokens=64, tools=[WEATHER],
                                    messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    use = next(block for block in final.content if block.type == "tool_use")
    assert use.input == {"city": "Paris", "unit": "c"}


# ---- count_tokens, errors, keys --------------------------------------------------------------------

def test_count_tokens(gw):
    small = client(gw).messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    large = client(gw).messages.count_tokens(model=CLAUDE, system="You are a helpful assistant. " * 40,
                                             messages=[{"role": "user", "content": "Hi " * 400}], tools=[WEATHER])
    assert 0 < small.input_tokens < large.input_tokens
    assert 300 < large.input_tokens < 2000


def test_errors_are_anthropic_errors(gw, upstreams):
    sdk = client(gw)
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk.messages.create(model="no-such-model", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=GPT, max_tokens=16, messages=[])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    upstreams.openai.fail_with(429, "Rate limit reached", type="requests", code="rate_limit_exceeded")
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(model=GPT, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "rate_limit_error"
    upstreams.anthropic.fail_with(529, "overloaded_error", "Overloaded")
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"


def test_missing_max_tokens_is_a_clear_400(gw):
    resp = post(gw.url("/v1/messages"), {"model": GPT, "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 400
    assert resp.json()["type"] == "error" and "max_tokens" in resp.json()["error"]["message"]


def test_client_keys_from_x_api_key(gateway, upstreams):
    gw = gateway(make_config(providers(upstreams), auth={"enabled": True, "keys": [{"key": CLIENT_KEY, "name": "team"}]}))
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(gw, "sk-wrong").messages.create(model=GPT, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "authentication_error"
    message = client(gw, CLIENT_KEY).messages.create(model=GPT, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert message.content[0].text
    # Authorization: Bearer works as well, and the gateway's auth also guards count_tokens.
    bearer = anthropic.Anthropic(base_url=gw.base_url, auth_token=CLIENT_KEY, api_key=None, max_retries=0)
    assert bearer.messages.count_tokens(model=GPT, messages=[{"role": "user", "content": "x"}]).input_tokens > 0
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(gw, "sk-wrong").messages.count_tokens(model=GPT, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    # An older SDK (and curl) sends x-api-key: it is the client key for count_tokens too.
    counted = post(gw.url("/v1/messages/count_tokens"), {"model": GPT, "messages": [{"role": "user", "content": "x"}]},
                   headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert counted.status == 200 and counted.json()["input_tokens"] > 0, counted.text
    line = gw.wait_for_log(r"request id=\S+ key=team .*status=200.*").group(0)
    assert "key=team" in line


def test_ingress_can_be_turned_off(gateway, upstreams):
    gw = gateway(make_config(providers(upstreams), ingress={"anthropic": False}))
    resp = post(gw.url("/v1/messages"), {"model": GPT, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 404 and resp.json()["error"]["code"] == "not_found"


def test_translated_request_carries_images_stops_metadata_and_thinking(gw, upstreams):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    client(gw).messages.create(
        model=GPT, max_tokens=4096, stop_sequences=["END"], metadata={"user_id": "user-7"}, extra_body={"temperature": 0.2},
        thinking={"type": "enabled", "budget_tokens": 2048},
        system=[{"type": "text", "text": "Describe images.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "text", "text": "What is this?"}]}])
    sent = upstreams.openai.last_chat().body
    assert sent["messages"][0]["role"] == "system" and "Describe images." in json.dumps(sent["messages"][0])
    parts = sent["messages"][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"] == "data:image/png;base64," + png
    assert parts[1] == {"type": "text", "text": "What is this?"}
    assert sent["stop"] == ["END"] and sent["user"] == "user-7" and sent["temperature"] == 0.2
    assert sent["max_tokens"] == 4096 and sent["reasoning_effort"] == "low"


def test_quiet_translated_stream_gets_anthropic_pings(gateway, upstreams):
    gw = gateway(make_config(providers(upstreams), server={"stream_keepalive": "200ms"}))
    upstreams.openai.hold_after_chunks = 2
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=15)
    conn.request("POST", "/v1/messages", json.dumps({"model": GPT, "max_tokens": 64, "stream": True,
                                                     "messages": [{"role": "user", "content": "slow"}]}),
                 {"content-type": "application/json"})
    resp = conn.getresponse()
    lines = []
    while sum(line == b"event: ping\n" for line in lines) < 3:  # message_start's ping, then two keep-alives
        lines.append(resp.readline())
    lines.append(resp.readline())  # the last ping's data line
    upstreams.openai.release.set()
    rest = resp.read()
    assert b"event: message_stop" in rest
    for index, line in enumerate(lines):
        if line == b"event: ping\n":
            assert json.loads(lines[index + 1][len(b"data: "):]) == {"type": "ping"}
