"""/v1/models: configured models plus models discovered at startup from ollama/vllm providers,
and discovered models are routable."""

import pytest

from prism_helpers import (SSEStream, chat_body, free_port, get, make_config, openai_provider,
                           parse_chunks, post, stream_text, wait_until)

DISCOVERED = ["llama3.2:3b", "qwen2.5:0.5b-instruct"]


@pytest.fixture(params=["base_url-without-v1", "base_url-with-v1"])
def setup(request, gateway, make_mock):
    cloud, local = make_mock(), make_mock()
    local.models = list(DISCOVERED)
    local.owned_by = "library"
    local_url = local.base_url if request.param == "base_url-without-v1" else local.v1_url
    cfg = make_config({
        "cloud": openai_provider(cloud.v1_url, models=["gpt-4o-mini", "gpt-4o"]),
        "ollama": {"type": "ollama", "api_format": "openai", "base_url": local_url},
    })
    gw = gateway(cfg)
    return gw, cloud, local


def model_ids(gw):
    body = get(gw.url("/v1/models")).json()
    assert body["object"] == "list"
    return {m["id"]: m for m in body["data"]}


def test_models_lists_configured_and_discovered(setup):
    gw, cloud, local = setup
    assert wait_until(lambda: set(DISCOVERED) <= set(model_ids(gw)), timeout=5), model_ids(gw)
    models = model_ids(gw)
    for mid in ["gpt-4o-mini", "gpt-4o"]:
        assert models[mid]["owned_by"] == "cloud"
    for mid in DISCOVERED:
        assert models[mid]["owned_by"] == "ollama"
        assert models[mid]["object"] == "model"
        assert isinstance(models[mid]["created"], int)
    # Discovery asked the local provider, not the cloud one.
    assert [r.path for r in local.recorded("/models")] and not cloud.recorded("/models")
    assert local.recorded("/models")[0].path == "/v1/models"
    assert local.recorded("/models")[0].method == "GET"


@pytest.mark.parametrize("model", DISCOVERED)
def test_discovered_models_are_routable(setup, model):
    gw, cloud, local = setup
    assert wait_until(lambda: model in model_ids(gw), timeout=5)
    resp = post(gw.url("/v1/chat/completions"), chat_body(model))
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == local.content
    assert resp.headers.get("x-prism-provider") == "ollama"
    assert local.last_chat().body["model"] == model
    assert local.last_chat().path == "/v1/chat/completions"
    assert not cloud.chat_requests()


def test_discovered_model_stream(setup):
    gw, cloud, local = setup
    assert wait_until(lambda: DISCOVERED[0] in model_ids(gw), timeout=5)
    with SSEStream(gw.url("/v1/chat/completions"), chat_body(DISCOVERED[0], stream=True)) as s:
        assert s.status == 200
        chunks, done = parse_chunks(s.read_all())
    assert done and stream_text(chunks) == local.content


def test_provider_slash_model_on_ollama(setup):
    gw, cloud, local = setup
    resp = post(gw.url("/v1/chat/completions"), chat_body("ollama/phi3:mini"))
    assert resp.status == 200, resp.text
    assert local.last_chat().body["model"] == "phi3:mini"


def test_configured_models_still_route_to_their_provider(setup):
    gw, cloud, local = setup
    assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o")).status == 200
    assert cloud.last_chat().body["model"] == "gpt-4o"
    assert not local.chat_requests()


def test_discovery_failure_does_not_stop_the_gateway(gateway, make_mock):
    """An unreachable ollama at startup (the seed config's situation without a local ollama): the
    gateway still starts and serves its other models."""
    cloud = make_mock()
    cfg = make_config({
        "cloud": openai_provider(cloud.v1_url, models=["gpt-4o"]),
        "ollama": {"type": "ollama", "api_format": "openai",
                   "base_url": f"http://127.0.0.1:{free_port()}"},
    })
    gw = gateway(cfg)
    assert "gpt-4o" in model_ids(gw)
    assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o")).status == 200
