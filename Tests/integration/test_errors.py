"""OpenAI-style errors: client mistakes, size limits, upstream failures and timeouts."""

import json
import time

import pytest

from prism_helpers import (assert_openai_error, chat_body, free_port, make_config, openai_provider,
                           post, request)

PROVIDER = "mockai"


@pytest.fixture
def gw(gateway, mock_upstream):
    return gateway(make_config({PROVIDER: openai_provider(mock_upstream.v1_url)}))


def chat_url(gw):
    return gw.url("/v1/chat/completions")


@pytest.mark.parametrize("body", [b'{"model": "gpt-4o-mini", "messages": [', b"not json at all",
                                  b"", b"[1, 2"])
def test_invalid_json(gw, mock_upstream, body):
    resp = post(chat_url(gw), body, headers={"Content-Type": "application/json"})
    assert_openai_error(resp, 400, code="invalid_json", type="invalid_request_error")
    assert not mock_upstream.chat_requests()


def test_missing_model(gw, mock_upstream):
    resp = post(chat_url(gw), {"messages": [{"role": "user", "content": "hi"}]})
    assert_openai_error(resp, 400, code="missing_model", type="invalid_request_error")
    assert not mock_upstream.chat_requests()


def test_missing_messages(gw, mock_upstream):
    resp = post(chat_url(gw), {"model": "gpt-4o-mini"})
    assert_openai_error(resp, 400, code="missing_messages", type="invalid_request_error")
    assert not mock_upstream.chat_requests()


@pytest.mark.parametrize("model", ["no-such-model", "nosuchprovider/gpt-4o"])
def test_unknown_model(gw, mock_upstream, model):
    resp = post(chat_url(gw), chat_body(model))
    err = assert_openai_error(resp, 404, code="model_not_found", type="invalid_request_error")
    assert "models" in err["message"], err["message"]
    assert "provider/model" in err["message"], err["message"]
    assert not mock_upstream.chat_requests()


def test_unknown_model_stream_is_a_json_error(gw):
    resp = post(chat_url(gw), chat_body("no-such-model", stream=True))
    assert_openai_error(resp, 404, code="model_not_found")


def test_unknown_route(gw):
    assert_openai_error(request("GET", gw.url("/v1/does-not-exist")), 404, code="not_found")


def test_wrong_method(gw):
    assert_openai_error(request("GET", chat_url(gw)), 405, code="method_not_allowed")


def test_body_size_limit(gateway, mock_upstream):
    gw = gateway(make_config({PROVIDER: openai_provider(mock_upstream.v1_url)},
                             server={"max_request_body_size": 1024}))
    small = chat_body("gpt-4o-mini", content="x" * 600)
    assert len(json.dumps(small)) < 1024
    assert post(chat_url(gw), small).status == 200

    big = chat_body("gpt-4o-mini", content="x" * 4096)
    resp = post(chat_url(gw), big)
    assert_openai_error(resp, 413, code="request_too_large")
    assert len(mock_upstream.chat_requests()) == 1


def test_upstream_500_is_502_provider_error(gw, mock_upstream):
    mock_upstream.fail_with(500, "The server had an error while processing your request. Sorry about that!")
    resp = post(chat_url(gw), chat_body("gpt-4o-mini"))
    err = assert_openai_error(resp, 502, code="provider_error", type="provider_error")
    assert "500" in err["message"], err["message"]
    assert "The server had an error while processing your request" in err["message"], err["message"]
    assert mock_upstream.chat_requests()


def test_upstream_500_on_stream_before_first_byte(gw, mock_upstream):
    mock_upstream.fail_with(500, "Upstream exploded before streaming")
    resp = post(chat_url(gw), chat_body("gpt-4o-mini", stream=True))
    err = assert_openai_error(resp, 502, code="provider_error")
    assert "Upstream exploded before streaming" in err["message"]


def test_upstream_timeout_is_504(gateway, mock_upstream):
    gw = gateway(make_config({PROVIDER: openai_provider(mock_upstream.v1_url, default_timeout="1s")}))
    mock_upstream.delay = 10
    t0 = time.monotonic()
    resp = post(chat_url(gw), chat_body("gpt-4o-mini"), timeout=10)
    elapsed = time.monotonic() - t0
    assert_openai_error(resp, 504, code="timeout", type="timeout_error")
    assert 0.8 <= elapsed < 3.0, f"504 after {elapsed:.2f}s with default_timeout 1s"
    # The gateway gave up on the upstream connection too.
    assert mock_upstream.disconnected.wait(5)


def test_connection_refused_is_502(gateway):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = gateway(make_config({PROVIDER: openai_provider(dead)}))
    t0 = time.monotonic()
    resp = post(chat_url(gw), chat_body("gpt-4o-mini"))
    assert_openai_error(resp, 502, type="provider_error")
    assert time.monotonic() - t0 < 5


def test_embeddings_errors(gw, mock_upstream):
    assert_openai_error(post(gw.url("/v1/embeddings"), b"{", headers={"Content-Type": "application/json"}),
                        400, code="invalid_json")
    assert_openai_error(post(gw.url("/v1/embeddings"), {"input": "x"}), 400, code="missing_model")
    assert_openai_error(post(gw.url("/v1/embeddings"), {"model": "nope", "input": "x"}), 404,
                        code="model_not_found")
    mock_upstream.fail_with(500, "embedding backend down")
    err = assert_openai_error(post(gw.url("/v1/embeddings"),
                                   {"model": "text-embedding-3-small", "input": "x"}), 502,
                              code="provider_error")
    assert "embedding backend down" in err["message"]


def test_gateway_keeps_serving_after_errors(gw, mock_upstream):
    post(chat_url(gw), b"{", headers={"Content-Type": "application/json"})
    post(chat_url(gw), chat_body("no-such-model"))
    resp = post(chat_url(gw), chat_body("gpt-4o-mini"))
    assert resp.status == 200
    assert resp.json()["choices"][0]["message"]["content"] == mock_upstream.content
