"""Client authentication (auth.enabled) and secrets hygiene: no client key or provider key in
logs or responses."""

import re
import signal

import pytest

from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config,
                           openai_provider, post)

PROVIDER = "mockai"
UPSTREAM_SECRET = "sk-upstream-secret-ABC-7f3e9d"
FULL_KEY = "sk-prism-secret-XYZ-full-41c2"
MINI_KEY = "sk-prism-secret-XYZ-mini-93ad"
WRONG_KEY = "sk-prism-secret-XYZ-wrong-55be"
SECRETS = [UPSTREAM_SECRET, FULL_KEY, MINI_KEY, WRONG_KEY]

AUTH = {
    "enabled": True,
    "keys": [
        {"name": "full-key", "key": FULL_KEY, "owner": "team-alpha"},
        {"name": "mini-key", "key": MINI_KEY, "owner": "team-beta", "models": ["gpt-4o-mini"]},
    ],
}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["auth-section-only", "middleware-listed"])
def gw(request, gateway, mock_upstream):
    """auth.enabled alone must enforce keys (the seed config has no `middleware:` list); listing
    `middleware: [auth]` explicitly must behave the same."""
    extra = {"middleware": ["auth"]} if request.param == "middleware-listed" else {}
    cfg = make_config({PROVIDER: openai_provider(mock_upstream.v1_url, api_key=UPSTREAM_SECRET)},
                      auth=AUTH, level="debug", **extra)
    return gateway(cfg)


def chat(gw, model="gpt-4o-mini", headers=None, **kw):
    return post(gw.url("/v1/chat/completions"), chat_body(model, **kw), headers=headers)


def test_missing_key_is_401(gw, mock_upstream):
    assert_openai_error(chat(gw), 401, code="invalid_api_key", type="authentication_error")
    assert not mock_upstream.chat_requests()


@pytest.mark.parametrize("header", [f"Bearer {WRONG_KEY}", "Bearer", f"Bearer {FULL_KEY}x",
                                    f"Bearer {FULL_KEY[:-1]}", f"Bearer {FULL_KEY.upper()}"])
def test_bad_key_is_401(gw, mock_upstream, header):
    resp = chat(gw, headers={"Authorization": header})
    assert_openai_error(resp, 401, code="invalid_api_key", type="authentication_error")
    assert not mock_upstream.chat_requests()


def test_valid_keys(gw, mock_upstream):
    resp = chat(gw, "gpt-4o", headers=bearer(FULL_KEY))
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == mock_upstream.content
    resp = chat(gw, "gpt-4o-mini", headers=bearer(MINI_KEY))
    assert resp.status == 200, resp.text
    # The client's key is not forwarded: the upstream sees the provider's key.
    for req in mock_upstream.chat_requests():
        assert req.headers.get("authorization") == f"Bearer {UPSTREAM_SECRET}"


def test_valid_key_stream(gw, mock_upstream):
    with SSEStream(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True),
                   headers=bearer(MINI_KEY)) as s:
        assert s.status == 200
        events = s.read_all()
    assert events[-1] == "[DONE]"


def test_model_restriction_is_403(gw, mock_upstream):
    resp = chat(gw, "gpt-4o", headers=bearer(MINI_KEY))
    assert_openai_error(resp, 403, code="model_not_allowed", type="permission_error")
    resp = chat(gw, "mockai/gpt-4o", headers=bearer(MINI_KEY))
    assert_openai_error(resp, 403, code="model_not_allowed", type="permission_error")
    assert not mock_upstream.chat_requests()
    # The unrestricted key may use it.
    assert chat(gw, "gpt-4o", headers=bearer(FULL_KEY)).status == 200


def test_model_restriction_applies_to_embeddings(gw, mock_upstream):
    resp = post(gw.url("/v1/embeddings"), {"model": "text-embedding-3-small", "input": "x"},
                headers=bearer(MINI_KEY))
    assert_openai_error(resp, 403, code="model_not_allowed")
    resp = post(gw.url("/v1/embeddings"), {"model": "text-embedding-3-small", "input": "x"},
                headers=bearer(FULL_KEY))
    assert resp.status == 200, resp.text


def test_health_needs_no_key(gw):
    for path in ["/healthz", "/livez", "/readyz"]:
        assert get(gw.url(path)).status == 200


def test_request_log_names_key_and_owner(gw):
    chat(gw, "gpt-4o-mini", headers={**bearer(MINI_KEY), "x-prism-request-id": "itest-auth-mini"})
    chat(gw, "gpt-4o", headers={**bearer(FULL_KEY), "x-prism-request-id": "itest-auth-full"})
    chat(gw, "gpt-4o", headers={"x-prism-request-id": "itest-auth-none"})
    gw.wait_for_log(r"request id=itest-auth-mini key=mini-key owner=team-beta model=gpt-4o-mini "
                    r"provider=mockai status=200 ")
    gw.wait_for_log(r"request id=itest-auth-full key=full-key owner=team-alpha model=gpt-4o "
                    r"provider=mockai status=200 ")
    gw.wait_for_log(r"request id=itest-auth-none key=- owner=- .*status=401 ")


def test_no_secret_in_logs_or_responses(gw, mock_upstream):
    responses = [
        chat(gw, headers=bearer(FULL_KEY)),
        chat(gw, headers=bearer(MINI_KEY)),
        chat(gw, "gpt-4o", headers=bearer(MINI_KEY)),  # 403
        chat(gw, headers=bearer(WRONG_KEY)),  # 401
        chat(gw, headers={"Authorization": f"Basic {WRONG_KEY}"}),  # 401
        chat(gw, headers=bearer(FULL_KEY), model="no-such-model"),  # 404
        post(gw.url("/v1/embeddings"), {"model": "text-embedding-3-small", "input": "x"},
             headers=bearer(FULL_KEY)),
        get(gw.url("/v1/models"), headers=bearer(FULL_KEY)),
    ]
    mock_upstream.fail_with(500, "upstream trouble")
    responses.append(chat(gw, headers=bearer(FULL_KEY)))  # 502
    mock_upstream.error = None
    with SSEStream(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True),
                   headers=bearer(FULL_KEY)) as s:
        stream_body = s.read_body()
    assert [r.status for r in responses] == [200, 200, 403, 401, 401, 404, 200, 200, 502]

    # Everything the upstream saw was authorized with the provider key, never a client key.
    for req in mock_upstream.recorded():
        if req.method == "POST":
            assert req.headers.get("authorization") == f"Bearer {UPSTREAM_SECRET}"
        for secret in [FULL_KEY, MINI_KEY, WRONG_KEY]:
            assert secret not in repr(req.headers) and secret.encode() not in req.body_bytes

    for resp in responses:
        blob = resp.body.decode(errors="replace") + repr(resp.headers)
        for secret in SECRETS:
            assert secret not in blob, f"secret {secret} in a response: {blob[:500]}"
    for secret in SECRETS:
        assert secret.encode() not in stream_body

    # Stop the gateway so that every log line is flushed, then search the whole log (debug level).
    gw.send_signal(signal.SIGTERM)
    assert gw.wait_exit(15) is not None, "gateway did not exit after SIGTERM"
    log = gw.log()
    assert re.search(r"request id=", log), "no request log lines at all"
    for secret in SECRETS:
        assert secret not in log, f"secret {secret} appears in the log"


def test_upstream_error_echoing_the_provider_key_is_redacted(gw, mock_upstream):
    """"No provider api_key ever appears in responses", even when the upstream's error message
    (which Prism relays in its 502) quotes the key back."""
    mock_upstream.fail_with(401, f"Incorrect API key provided: {UPSTREAM_SECRET}.",
                            type="invalid_request_error", code="invalid_api_key")
    resp = chat(gw, headers=bearer(FULL_KEY))
    assert resp.status >= 400
    assert UPSTREAM_SECRET not in resp.text
    gw.send_signal(signal.SIGTERM)
    assert gw.wait_exit(15) is not None
    assert UPSTREAM_SECRET not in gw.log()


def test_auth_disabled_needs_no_key(gateway, mock_upstream):
    cfg = make_config({PROVIDER: openai_provider(mock_upstream.v1_url, api_key=UPSTREAM_SECRET)},
                      auth={**AUTH, "enabled": False})
    gw = gateway(cfg)
    resp = chat(gw, "gpt-4o")
    assert resp.status == 200, resp.text
    # A key restricted to other models does not matter either when auth is off.
    assert chat(gw, "gpt-4o", headers=bearer(MINI_KEY)).status == 200
    assert mock_upstream.last_chat().headers.get("authorization") == f"Bearer {UPSTREAM_SECRET}"


def test_no_auth_section_needs_no_key(gateway, mock_upstream):
    gw = gateway(make_config({PROVIDER: openai_provider(mock_upstream.v1_url)}))
    assert chat(gw).status == 200
