"""Health endpoints, the embedded default config, unknown routes."""

import os

import pytest

from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, parse_chunks, post,
                           request, stream_text)


@pytest.fixture
def default_gateway(gateway, tmp_path):
    """The gateway with no --config, no $PRISM_CONFIG, from an empty working directory."""
    cwd = tmp_path / "empty-cwd"
    cwd.mkdir()
    return gateway(None, cwd=cwd, args=["--host", "127.0.0.1"])


@pytest.fixture
def default_model(default_gateway):
    models = get(default_gateway.url("/v1/models")).json()["data"]
    assert models, "the embedded default config lists no models"
    return models[0]["id"]


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_endpoints(default_gateway, path):
    resp = get(default_gateway.url(path))
    assert resp.status == 200
    assert "application/json" in resp.headers.get("content-type", "")
    assert resp.json() == {"status": "ok"}


def test_default_config_lists_models(default_gateway):
    resp = get(default_gateway.url("/v1/models"))
    assert resp.status == 200
    body = resp.json()
    assert body["object"] == "list"
    assert body["data"], body
    for model in body["data"]:
        assert isinstance(model["id"], str) and model["id"]
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert isinstance(model["owned_by"], str) and model["owned_by"]


def test_default_config_chat(default_gateway, default_model):
    resp = post(default_gateway.url("/v1/chat/completions"), chat_body(default_model))
    assert resp.status == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert isinstance(body["id"], str) and body["id"]
    assert isinstance(body["created"], int)
    assert isinstance(body["model"], str) and body["model"]
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert resp.headers.get("x-prism-request-id")


def test_default_config_stream(default_gateway, default_model):
    with SSEStream(default_gateway.url("/v1/chat/completions"),
                   chat_body(default_model, stream=True)) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        chunks, done = parse_chunks(stream.read_all())
    assert done, "stream did not end with data: [DONE]"
    assert chunks
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert stream_text(chunks)
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason")]
    assert finishes == ["stop"]


def test_request_ids_are_generated_and_unique(default_gateway, default_model):
    ids = {post(default_gateway.url("/v1/chat/completions"), chat_body(default_model))
           .headers.get("x-prism-request-id") for _ in range(3)}
    assert None not in ids and "" not in ids
    assert len(ids) == 3


def test_default_plugins_dir_is_beside_the_binary(gateway, prism_bin, dist_plugins_dir, tmp_path):
    if os.path.realpath(dist_plugins_dir) != os.path.realpath(prism_bin.parent / "plugins"):
        pytest.skip("PRISM_PLUGINS_DIR is not <dir of PRISM_BIN>/plugins")
    gw = gateway(None, cwd=tmp_path, args=["--host", "127.0.0.1"], pass_plugins_dir=False)
    model = get(gw.url("/v1/models")).json()["data"][0]["id"]
    assert post(gw.url("/v1/chat/completions"), chat_body(model)).status == 200


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("GET", "/v1/nope"),
                                         ("POST", "/v1/completions-typo")])
def test_unknown_route_is_404_json(default_gateway, method, path):
    resp = request(method, default_gateway.url(path), body=b"{}" if method == "POST" else None)
    assert_openai_error(resp, 404, code="not_found")
