"""The official OpenAI Python SDK against Prism, proxied to the mock upstream through the
`openai` provider plugin (api_format: openai)."""

import re
from dataclasses import dataclass

import openai
import pytest

from mock_upstream import MockUpstream
from prism_helpers import UPSTREAM_KEY, SSEStream, chat_body, make_config, openai_provider

PROVIDER = "mockai"
MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}]


@dataclass
class Env:
    gw: object
    mock: MockUpstream
    client: openai.OpenAI


@pytest.fixture(params=["base_url-with-v1", "base_url-without-v1"])
def env(request, gateway, mock_upstream):
    base = mock_upstream.v1_url if request.param == "base_url-with-v1" else mock_upstream.base_url
    gw = gateway(make_config({PROVIDER: openai_provider(base)}))
    client = openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15)
    return Env(gw, mock_upstream, client)


def test_chat_non_stream(env):
    resp = env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == env.mock.content
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (13, 7, 20)

    upstream = env.mock.last_chat()
    assert upstream.method == "POST"
    assert upstream.path == "/v1/chat/completions"
    assert upstream.body["model"] == "gpt-4o-mini"
    assert upstream.body["messages"] == MESSAGES
    assert not upstream.body.get("stream")
    assert upstream.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert "application/json" in upstream.headers.get("content-type", "")


def test_chat_stream_without_include_usage(env):
    chunks = list(env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == env.mock.content
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    # The usage-only chunk Prism asked for on its own behalf must not reach this client.
    assert all(c.choices for c in chunks), "a usage-only chunk (choices: []) was forwarded"
    assert all(c.usage is None for c in chunks)

    upstream = env.mock.last_chat().body
    assert upstream["stream"] is True
    assert upstream.get("stream_options", {}).get("include_usage") is True


def test_chat_stream_with_include_usage(env):
    chunks = list(env.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == 1
    assert chunks[-1] is usage_chunks[0], "the usage chunk must be the last one"
    usage = usage_chunks[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (13, 7, 20)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == env.mock.content
    assert env.mock.last_chat().body["stream_options"]["include_usage"] is True


def test_stream_usage_is_captured_for_the_request_log(env):
    """The usage-only chunk is consumed, not lost: the request log carries its token counts."""
    rid = "itest-stream-usage-1"
    list(env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            extra_headers={"x-prism-request-id": rid}))
    m = env.gw.wait_for_log(rf"request id={re.escape(rid)} .*tokens_in=(\d+) tokens_out=(\d+)")
    assert (m.group(1), m.group(2)) == ("13", "7")


@pytest.mark.parametrize("model,upstream_model", [("mockai/gpt-4o", "gpt-4o"),
                                                  ("mockai/gpt-4.1-nano", "gpt-4.1-nano")])
def test_provider_slash_model(env, model, upstream_model):
    resp = env.client.chat.completions.create(model=model, messages=MESSAGES)
    assert resp.choices[0].message.content == env.mock.content
    assert env.mock.last_chat().body["model"] == upstream_model


def test_provider_slash_model_stream(env):
    chunks = list(env.client.chat.completions.create(model="mockai/gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == env.mock.content
    assert env.mock.last_chat().body["model"] == "gpt-4o"


def test_response_headers(env):
    raw = env.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-prism-request-id": "itest-req-42"})
    assert raw.headers.get("x-prism-request-id") == "itest-req-42"
    assert raw.headers.get("x-prism-provider") == PROVIDER
    assert raw.headers.get("x-prism-model-used") == "gpt-4o-mini"
    latency = raw.headers.get("x-prism-latency-ms")
    assert latency is not None and re.fullmatch(r"\d+(\.\d+)?", latency), latency
    assert raw.parse().choices[0].message.content == env.mock.content
    env.gw.wait_for_log(r"request id=itest-req-42 .*model=gpt-4o-mini provider=mockai status=200")


def test_generated_request_id_matches_log(env):
    raw = env.client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    rid = raw.headers.get("x-prism-request-id")
    assert rid
    env.gw.wait_for_log(rf"request id={re.escape(rid)} key=- owner=- model=gpt-4o provider=mockai "
                        rf"status=200 latency_ms=\S+ tokens_in=13 tokens_out=7")


def test_stream_response_headers(env):
    with SSEStream(env.gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True),
                   headers={"x-prism-request-id": "itest-stream-7"}) as s:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers.get("x-prism-request-id") == "itest-stream-7"
        assert s.headers.get("x-prism-provider") == PROVIDER
        s.read_all()


def test_upstream_reported_model_is_returned(env):
    env.mock.response_model = "gpt-4o-mini-2024-07-18"
    resp = env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.model == "gpt-4o-mini-2024-07-18"
    chunks = list(env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert {c.model for c in chunks} == {"gpt-4o-mini-2024-07-18"}


def test_embeddings_default_base64(env):
    # The SDK asks for encoding_format=base64 unless told otherwise, and decodes it.
    resp = env.client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert [d.index for d in resp.data] == [0, 1]
    assert [d.embedding for d in resp.data] == [MockUpstream.embedding_for(i, 8) for i in range(2)]
    assert resp.model == "text-embedding-3-small"
    assert resp.usage.prompt_tokens == 2
    upstream = env.mock.recorded("/embeddings")[-1]
    assert upstream.path == "/v1/embeddings"
    assert upstream.body["input"] == ["hello", "world"]
    assert upstream.body["encoding_format"] == "base64"
    assert upstream.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"


def test_embeddings_float(env):
    resp = env.client.embeddings.create(model="text-embedding-3-small", input="hello",
                                        encoding_format="float", dimensions=4)
    assert resp.data[0].embedding == MockUpstream.embedding_for(0, 4)
    assert env.mock.recorded("/embeddings")[-1].body["dimensions"] == 4


def test_models_list(env):
    models = {m.id: m for m in env.client.models.list()}
    for mid in ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]:
        assert mid in models, sorted(models)
        assert models[mid].owned_by == PROVIDER
        assert models[mid].object == "model"


def test_unknown_model_raises_not_found(env):
    with pytest.raises(openai.NotFoundError) as info:
        env.client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert not env.mock.chat_requests()
