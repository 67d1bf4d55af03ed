"""The official OpenAI Python SDK against Prism's `azure` provider (Plugins/azure,
provider-azure.so), proxied to a mock Azure OpenAI resource: classic deployment routes
/openai/deployments/{deployment}/…?api-version=…, `api-key` or Entra ID Bearer auth, content-filter
annotations and Azure's error envelope."""

import json
from dataclasses import dataclass

import openai
import pytest

from mock_azure import AzureMock
from prism_helpers import SSEStream, chat_body, make_config, parse_chunks

PLUGIN = "provider-azure.so"
KEY = "azure-key-0001"
TOKEN = "eyJ0eXAiOi.entra-token"
MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}]


@dataclass
class Env:
    auth: str
    gw: object
    mock: AzureMock
    client: openai.OpenAI


@pytest.fixture
def plugins_dir(make_plugins_dir, dist_plugins_dir):
    if not (dist_plugins_dir / PLUGIN).is_file():
        pytest.fail(f"{PLUGIN} is not in {dist_plugins_dir}: build PrismProviderAzure and install it there",
                    pytrace=False)
    return make_plugins_dir([dist_plugins_dir / PLUGIN])


def azure_section(base_url: str, auth: str = "api-key", **extra) -> dict:
    section = {"api_format": "azure", "api_key": KEY if auth == "api-key" else TOKEN, "base_url": base_url,
               "models": ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]}
    if auth == "bearer":
        section["auth_type"] = "bearer"
    section.update(extra)
    return section


@pytest.fixture
def start(gateway, _mocks, plugins_dir):
    def make(auth: str = "api-key", **extra) -> Env:
        mock = AzureMock().start()
        _mocks.append(mock)
        mock.require_key, mock.require_bearer = KEY, TOKEN
        gw = gateway(make_config({"azure": azure_section(mock.base_url, auth, **extra)}), plugins_dir=plugins_dir)
        client = openai.OpenAI(base_url=gw.v1, api_key="sk-client-unused", max_retries=0, timeout=15)
        return Env(auth, gw, mock, client)
    return make


@pytest.fixture(params=["api-key", "bearer"])
def env(request, start):
    return start(request.param)


def test_chat_non_stream(env):
    resp = env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.3, user="u-1")
    assert resp.choices[0].message.content == env.mock.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o-2024-08-06"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (13, 7)
    up = env.mock.last_chat()
    assert up.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    if env.auth == "api-key":
        assert up.headers.get("api-key") == KEY and "authorization" not in up.headers
    else:
        assert up.headers.get("authorization") == f"Bearer {TOKEN}" and "api-key" not in up.headers
    assert up.body == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.3, "user": "u-1"}


def test_stream_drops_the_annotation_only_chunk(env):
    chunks = list(env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks), "Azure's choices-less prompt_filter chunk must not reach the client"
    assert all(c.id for c in chunks) and {c.model for c in chunks} == {"gpt-4o-2024-08-06"}
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == env.mock.content
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    assert env.mock.last_chat().body["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage(env):
    chunks = list(env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}))
    assert not chunks[-1].choices and chunks[-1].usage.total_tokens == 20
    assert all(c.choices for c in chunks[:-1])


def test_deployment_mapping_and_api_version(start):
    env = start("api-key", api_version="2025-01-01-preview",
                deployments={"gpt-4o": "prod-gpt4o", "text-embedding-3-small": "embed-prod"})
    env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert env.mock.last_chat().path == "/openai/deployments/prod-gpt4o/chat/completions?api-version=2025-01-01-preview"
    env.client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert env.mock.recorded("/embeddings")[-1].path == \
        "/openai/deployments/embed-prod/embeddings?api-version=2025-01-01-preview"
    # An unmapped model uses its own name as the deployment; Azure's 404 becomes a 404 for the client.
    with pytest.raises(openai.NotFoundError) as info:
        env.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "does not exist" in info.value.message
    assert env.mock.last_chat().path.startswith("/openai/deployments/gpt-4o-mini/chat/completions?")


def test_base_url_with_openai_suffix(start, gateway, plugins_dir):
    env = start()
    gw = gateway(make_config({"azure": azure_section(env.mock.base_url + "/openai/")}), plugins_dir=plugins_dir)
    client = openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0, timeout=15)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert env.mock.last_chat().path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"


def test_tools_pass_through(env):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    messages = MESSAGES + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]
    env.client.chat.completions.create(model="gpt-4o", messages=messages, tools=[tool], tool_choice="required")
    body = env.mock.last_chat().body
    assert body["tools"] == [tool] and body["tool_choice"] == "required" and body["messages"] == messages


def test_content_filter_finish_reason_passes_through(env):
    env.mock.finish_reason = "content_filter"
    resp = env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.choices[0].finish_reason == "content_filter"
    chunks = list(env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["content_filter"]


@pytest.mark.parametrize("status,code,exc,client_code", [
    (429, "429", openai.RateLimitError, "rate_limit_exceeded"),
    (400, "content_filter", openai.BadRequestError, "content_filter"),
    (400, "BadRequest", openai.BadRequestError, "provider_error"),
    (503, "ServiceUnavailable", openai.InternalServerError, "provider_overloaded"),
])
def test_errors(env, status, code, exc, client_code):
    env.mock.azure_error(status, code, f"mock azure {code}")
    for stream in (False, True):
        with pytest.raises(exc) as info:
            result = env.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)
            list(result) if stream else None
        assert info.value.code == client_code
        assert f"mock azure {code}" in info.value.message


def test_bad_key_is_a_gateway_fault(start, gateway, plugins_dir):
    env = start()
    gw = gateway(make_config({"azure": azure_section(env.mock.base_url, api_key="wrong")}), plugins_dir=plugins_dir)
    client = openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0, timeout=15)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.code == "provider_auth_error"


def test_embeddings(env):
    resp = env.client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.embedding for d in resp.data] == [AzureMock.embedding_for(i, 8) for i in range(2)]
    resp = env.client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=4,
                                        encoding_format="float")
    assert resp.data[0].embedding == AzureMock.embedding_for(0, 4)
    up = env.mock.recorded("/embeddings")[-1]
    assert up.path == "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    assert up.body == {"model": "text-embedding-3-small", "input": "a", "dimensions": 4, "encoding_format": "float"}


def test_raw_stream_is_openai_shaped(env):
    with SSEStream(env.gw.v1 + "/chat/completions", chat_body("gpt-4o", stream=True)) as s:
        assert s.status == 200
        chunks, done = parse_chunks(s.read_all())
    assert done
    assert all(c["object"] == "chat.completion.chunk" and c["choices"] for c in chunks)
    assert "prompt_filter_results" not in json.dumps(chunks)
