"""The official OpenAI Python SDK against Prism's `bedrock` provider (Plugins/bedrock,
provider-bedrock.so), proxied to a mock Bedrock runtime (mock_bedrock.py) that speaks Converse,
ConverseStream (binary event-stream frames with CRCs, split across chunks) and InvokeModel, and
verifies every request's SigV4 signature with botocore's signer.

Run with PRISM_PLUGINS_DIR pointing at a directory holding dist/plugins/*.so and provider-bedrock.so."""

import base64
import json
import struct

import openai
import pytest

from mock_bedrock import BedrockMock
from prism_helpers import make_config

PLUGIN = "provider-bedrock.so"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=="
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
CLAUDE_PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
FAST_RETRY = {"retry": {"enabled": True, "max_retries": 2, "initial_delay": "10ms", "max_delay": "50ms"}}


@pytest.fixture
def plugins_dir(make_plugins_dir, dist_plugins_dir):
    if not (dist_plugins_dir / PLUGIN).is_file():
        pytest.fail(f"{PLUGIN} is not in {dist_plugins_dir}: build PrismProviderBedrock and install it there",
                    pytrace=False)
    return make_plugins_dir([dist_plugins_dir / PLUGIN])


@pytest.fixture
def mock():
    upstream = BedrockMock(KEY_ID, SECRET, TOKEN).start()
    yield upstream
    upstream.stop()


def section(mock: BedrockMock, **overrides) -> dict:
    provider = {"api_format": "bedrock", "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
                "aws_session_token": TOKEN, "aws_region": "us-east-1", "regions": ["us-east-1", "us-west-2"],
                "base_url": mock.base_url + "/{region}", "models": [CLAUDE, TITAN]}
    provider.update(overrides)
    return {k: v for k, v in provider.items() if v is not None}


@pytest.fixture
def start(gateway, plugins_dir, mock):
    """start(routing=None, env=None, **provider overrides) -> an OpenAI client on a fresh gateway."""
    def run(routing=None, env=None, **overrides) -> openai.OpenAI:
        sections = {"routing": routing} if routing else {}
        gw = gateway(make_config({"bedrock": section(mock, **overrides)}, **sections), plugins_dir=plugins_dir, env=env)
        return openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15)
    return run


def assert_all_signed(mock: BedrockMock) -> None:
    assert mock.verified, "the mock received no request"
    for region, path, ok, reason in mock.verified:
        assert ok, f"{path} ({region}): {reason}"


def test_chat_system_multi_turn(start, mock):
    client = start()
    resp = client.chat.completions.create(
        model=CLAUDE, temperature=0.2, top_p=0.9, max_tokens=256, stop=["END"],
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Say hello again."},
                  {"role": "user", "content": "Please."}])
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hello from Bedrock in us-east-1!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == CLAUDE
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (25, 9, 34)
    request = mock.recorded()[-1]
    assert request.path == f"/us-east-1{CLAUDE_PATH}/converse"
    assert request.body == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]},
                     {"role": "assistant", "content": [{"text": "Hello."}]},
                     {"role": "user", "content": [{"text": "Say hello again."}, {"text": "Please."}]}],
        "system": [{"text": "Be terse."}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}}
    assert request.headers["x-amz-security-token"] == TOKEN
    assert_all_signed(mock)


def test_stream_text_with_usage(start, mock):
    client = start()
    chunks = list(client.chat.completions.create(model=CLAUDE, stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Bedrock in us-east-1!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 34
    assert len({c.id for c in chunks}) == 1
    assert mock.recorded()[-1].path == f"/us-east-1{CLAUDE_PATH}/converse-stream"
    assert mock.recorded()[-1].headers["accept"] == "application/vnd.amazon.eventstream"
    assert_all_signed(mock)


def test_tool_calls_and_results(start, mock):
    mock.tool_call = ("get_weather", {"city": "Paris", "unit": "c"})
    client = start()
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == \
        ("tooluse_Xy1ZpQrStUvWx0123456789a", "get_weather", '{"city":"Paris","unit":"c"}')
    assert mock.recorded()[-1].body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather for a city.",
                                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
        "toolChoice": {"auto": {}}}

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "21C and sunny"}]
    resp = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_TOOL])
    assert resp.choices[0].message.content == "Hello from Bedrock in us-east-1!"
    sent = mock.recorded()[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"text": "Let me look that up."},
        {"toolUse": {"toolUseId": call.id, "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}}]}
    assert sent[2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": call.id, "content": [{"text": "21C and sunny"}]}}]}
    assert_all_signed(mock)


def test_tool_calls_streamed(start, mock):
    mock.tool_call = ("get_weather", {"city": "Paris"})
    client = start()
    stream = client.chat.completions.create(model=CLAUDE, stream=True, tools=[WEATHER_TOOL], tool_choice="required",
                                            messages=[{"role": "user", "content": "Weather in Paris?"}])
    text, calls, finish = "", {}, None
    for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": call.id, "name": call.function.name, "arguments": ""})
            entry["arguments"] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == "Let me look that up."
    assert calls == {0: {"id": "tooluse_Xy1ZpQrStUvWx0123456789a", "name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert finish == "tool_calls"
    assert mock.recorded()[-1].body["toolConfig"]["toolChoice"] == {"any": {}}
    assert_all_signed(mock)


@pytest.mark.parametrize("streaming", [False, True])
def test_response_format_json(start, mock, streaming):
    client = start()
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    kwargs = dict(model=CLAUDE, messages=[{"role": "user", "content": "Greet me as JSON"}],
                  response_format={"type": "json_schema", "json_schema": {"name": "greeting", "schema": schema}})
    if streaming:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    else:
        resp = client.chat.completions.create(**kwargs)
        content = resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop" and not resp.choices[0].message.tool_calls
    assert json.loads(content) == {"answer": "Hello from Bedrock in us-east-1!"}
    assert mock.recorded()[-1].body["toolConfig"]["toolChoice"] == {"tool": {"name": "json_response"}}


def test_embeddings_float_and_base64(start, mock):
    client = start()
    resp = client.embeddings.create(model=TITAN, input="hello bedrock world", dimensions=256, encoding_format="float")
    assert len(resp.data) == 1 and len(resp.data[0].embedding) == 256
    assert resp.data[0].embedding[:3] == [0.125, 0.25, 0.375]
    assert resp.usage.prompt_tokens == 3
    request = mock.recorded()[-1]
    assert request.path == "/us-east-1/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert request.body == {"inputText": "hello bedrock world", "dimensions": 256, "normalize": True}
    # The SDK's default: base64 on the wire, decoded by the SDK.
    resp = client.embeddings.create(model=TITAN, input="hi", dimensions=256)
    assert resp.data[0].embedding[:2] == [0.125, 0.25]
    assert_all_signed(mock)


def test_embeddings_array_is_refused(start, mock):
    client = start()
    with pytest.raises(openai.BadRequestError) as error:
        client.embeddings.create(model=TITAN, input=["one", "two"])
    assert "one text per request" in error.value.message
    assert not mock.recorded(), "no upstream call for a refused request"


@pytest.mark.parametrize("failure", [(429, "ThrottlingException", "Too many requests, please wait before trying again."),
                                     (503, "ServiceUnavailableException", "Bedrock is unable to process your request.")])
@pytest.mark.parametrize("streaming", [False, True])
def test_cross_region_retry(start, mock, failure, streaming):
    mock.fail_regions = {"us-east-1": failure}
    client = start(routing=FAST_RETRY)
    messages = [{"role": "user", "content": "Hi"}]
    if streaming:
        text = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model=CLAUDE, messages=messages, stream=True) if c.choices)
    else:
        text = client.chat.completions.create(model=CLAUDE, messages=messages).choices[0].message.content
    assert text == "Hello from Bedrock in us-west-2!"
    action = "converse-stream" if streaming else "converse"
    # Each attempt went to its own region, signed for that region (credential scope checked by the mock).
    assert [(region, path, ok) for region, path, ok, _ in mock.verified] == [
        ("us-east-1", f"/us-east-1{CLAUDE_PATH}/{action}", True),
        ("us-west-2", f"/us-west-2{CLAUDE_PATH}/{action}", True)]
    scopes = [r.headers["authorization"].split("Credential=")[1].split(",")[0] for r in mock.recorded()]
    assert [s.split("/")[2] for s in scopes] == ["us-east-1", "us-west-2"]


def test_throttling_without_retry_reaches_the_client(start, mock):
    mock.fail_regions = {"us-east-1": (429, "ThrottlingException", "Too many requests, please wait before trying again.")}
    client = start(routing={"failover": {"enabled": False}})
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    assert error.value.body["type"] == "rate_limit_error"
    assert "Too many requests" in error.value.message and "ThrottlingException" in error.value.message
    assert len(mock.recorded()) == 1


def test_signature_mismatch_is_an_auth_error(start, mock):
    client = start(aws_secret_access_key="wrong-secret-key")
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    assert error.value.status_code == 502
    assert error.value.body["code"] == "provider_auth_error"
    assert "signature we calculated does not match" in error.value.message
    assert "wrong-secret-key" not in error.value.message
    region, _, ok, reason = mock.verified[-1]
    assert not ok and "signature mismatch" in reason


def test_credentials_from_environment(start, mock):
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN, "AWS_REGION": "us-west-2"}
    client = start(env=env, aws_access_key_id=None, aws_secret_access_key=None, aws_session_token=None,
                   aws_region=None, regions=None)
    resp = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    assert resp.choices[0].message.content == "Hello from Bedrock in us-west-2!"
    assert_all_signed(mock)


def test_validation_error_is_a_bad_request(start, mock):
    mock.fail_regions = {"us-east-1": (400, "ValidationException", "The model returned the following errors: max_tokens too large")}
    client = start()
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    assert "max_tokens too large" in error.value.message


def test_stream_exception_after_first_byte(start, mock):
    mock.stream_exception = ("throttlingException", "Too many tokens, please wait before trying again.")
    client = start()
    received = ""
    with pytest.raises(openai.APIError) as error:
        for chunk in client.chat.completions.create(model=CLAUDE, stream=True, messages=[{"role": "user", "content": "Hi"}]):
            received += chunk.choices[0].delta.content or ""
    assert received == "Hello "
    assert "Too many tokens" in error.value.message and "throttlingException" in error.value.message


def test_remote_image_url_is_refused(start, mock):
    client = start()
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "data URLs" in error.value.message
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13)).decode()
    client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])
    assert mock.recorded()[-1].body["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": png}}}


def test_reasoning_round_trip_and_cache_points(start, mock):
    """Claude on Bedrock through the SDK: reasoning_effort, top_k and anthropic-beta become
    additionalModelRequestFields; reasoningContent comes back as reasoning_content and
    thinking_blocks, and goes back first in the assistant turn; cache_control becomes cachePoint."""
    mock.tool_call = ("get_weather", {"city": "Paris"})
    client = start()
    messages = [{"role": "system", "content": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "Weather in Paris?"}]
    resp = client.chat.completions.create(model=CLAUDE, reasoning_effort="medium", max_tokens=500, messages=messages,
                                          tools=[WEATHER_TOOL], extra_body={"top_k": 30},
                                          extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    message = resp.choices[0].message
    assert message.model_extra["reasoning_content"] == mock.reasoning_text
    assert message.model_extra["thinking_blocks"] == [
        {"type": "thinking", "thinking": mock.reasoning_text, "signature": mock.signature}]
    sent = mock.recorded()[-1].body
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 30,
                                                    "anthropic_beta": ["interleaved-thinking-2025-05-14"]}
    assert sent["inferenceConfig"] == {"maxTokens": 2548}
    assert sent["system"] == [{"text": "Rules."}, {"cachePoint": {"type": "default"}}]

    call = message.tool_calls[0]
    resp = client.chat.completions.create(
        model=CLAUDE, reasoning_effort="medium", max_tokens=500, tools=[WEATHER_TOOL],
        messages=messages + [message.model_dump(exclude_none=True),
                             {"role": "tool", "tool_call_id": call.id, "content": "21C"}])
    assert resp.choices[0].message.content == "Hello from Bedrock in us-east-1!"
    assistant = mock.recorded()[-1].body["messages"][1]["content"]
    assert assistant[0] == {"reasoningContent": {"reasoningText": {"text": mock.reasoning_text, "signature": mock.signature}}}
    assert "toolUse" in assistant[-1]

    chunks = list(client.chat.completions.create(model=CLAUDE, stream=True, reasoning_effort="low",
                                                 messages=[{"role": "user", "content": "Hi"}]))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == mock.reasoning_text
    assert [b for d in deltas for b in d.model_extra.get("thinking_blocks") or []] == [
        {"type": "thinking", "thinking": mock.reasoning_text, "signature": mock.signature}]
    assert "".join(d.content or "" for d in deltas) == "Hello from Bedrock in us-east-1!"
    assert_all_signed(mock)
