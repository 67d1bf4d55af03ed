"""Rate limiting (the `rate_limit` middleware plugin) with the in-memory shared state: global and
per-key request limits, token limits with reservation and reconciliation, OpenAI's headers, and
the 429 answer."""

import concurrent.futures
import json

import pytest

from prism_helpers import SSEStream, assert_openai_error, chat_body, make_config, openai_provider, post

KEY = "sk-prism-dev-limited-1"
OTHER = "sk-prism-dev-other-2"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def limits_config(upstream, *, global_rpm=0, rpm=0, tpm=0, other_rpm=0, **sections):
    keys = [{"name": "dev-key", "key": KEY, "rate_limit_rpm": rpm, "rate_limit_tpm": tpm},
            {"name": "other-key", "key": OTHER, "rate_limit_rpm": other_rpm}]
    return make_config({"mockai": openai_provider(upstream.v1_url)},
                       auth={"enabled": True, "keys": keys},
                       rate_limiting={"enabled": True, "global_rpm": global_rpm}, **sections)


def chat(gw, key=KEY, content="hello", **extra):
    return post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", content, **extra), headers=bearer(key))


def test_per_key_rpm_is_exact_and_429_is_openai_shaped(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, rpm=5))
    answers = [chat(gw) for _ in range(8)]
    statuses = [a.status for a in answers]
    assert statuses == [200] * 5 + [429] * 3, statuses
    # Remaining counts down on every accepted answer.
    assert [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers[:5]] == [4, 3, 2, 1, 0]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "5"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    refused = answers[5]
    err = assert_openai_error(refused, 429, code="rate_limit_exceeded", type="rate_limit_exceeded")
    assert "dev-key" in err["message"] and "5 requests per minute" in err["message"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 62
    # Refused requests never reached the provider.
    assert len(mock_upstream.chat_requests()) == 5


def test_keys_are_limited_separately_and_global_limit_is_shared(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, global_rpm=6, rpm=4, other_rpm=10))
    first = [chat(gw, KEY).status for _ in range(5)]
    assert first == [200] * 4 + [429]
    # other-key has its own 10, but only 2 remain of the global 6.
    second = [chat(gw, OTHER).status for _ in range(4)]
    assert second == [200, 200, 429, 429]
    err = assert_openai_error(chat(gw, OTHER), 429, code="rate_limit_exceeded")
    assert "gateway-wide limit of 6" in err["message"]


def test_concurrent_requests_never_exceed_the_limit(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, global_rpm=12))
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda i: chat(gw, KEY if i % 2 else OTHER, f"q{i}").status, range(40)))
    assert statuses.count(200) == 12, statuses
    assert statuses.count(429) == 28


def test_headers_on_streams_and_the_most_restrictive_limit(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, global_rpm=100, rpm=3))
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True), headers=bearer(KEY))
    assert stream.status == 200
    # The per-key limit (3) is tighter than the global one (100): it is the one reported.
    assert stream.headers["x-ratelimit-limit-requests"] == "3"
    assert stream.headers["x-ratelimit-remaining-requests"] == "2"
    events = []
    while (event := stream.next_event()) is not None:
        events.append(event)
    assert events[-1] == "[DONE]"


def test_token_limit_reserves_an_estimate_and_reconciles_with_usage(gateway, mock_upstream):
    usage = mock_upstream.usage()
    spent = usage["prompt_tokens"] + usage["completion_tokens"]
    # The estimate of chat_body(content="hello"): 5 characters / 4, rounded up (2) + 4 per message.
    estimate = 6
    gw = gateway(limits_config(mock_upstream, tpm=1000))
    first = chat(gw, max_tokens=200)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    # Before the call, the estimate plus the output cap was reserved...
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 1000 - (estimate + 200)
    # ...and once it completed, the reservation became the real usage the upstream reported.
    second = chat(gw)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 1000 - spent - estimate


def test_streamed_usage_is_reconciled_too(gateway, mock_upstream):
    usage = mock_upstream.usage()
    spent = usage["prompt_tokens"] + usage["completion_tokens"]
    gw = gateway(limits_config(mock_upstream, tpm=1000))
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "hello", stream=True, max_tokens=100),
                       headers=bearer(KEY))
    assert int(stream.headers["x-ratelimit-remaining-tokens"]) == 1000 - 106
    while stream.next_event() is not None:
        pass
    after = chat(gw)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == 1000 - spent - 6


def test_a_request_larger_than_the_token_limit_is_refused(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, tpm=100))
    err = assert_openai_error(chat(gw, max_tokens=5000), 429, code="rate_limit_exceeded")
    assert "100 tokens per minute" in err["message"] and "alone" in err["message"]
    assert chat(gw).status == 200  # nothing was counted for the refused one


def test_failed_requests_give_their_tokens_back(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, tpm=1000))
    mock_upstream.fail_with(400, "bad request upstream", type="invalid_request_error")
    assert chat(gw, max_tokens=300).status == 400
    mock_upstream.error = None
    answer = chat(gw)
    assert answer.status == 200
    # Only this request's own estimate is counted: the failed one's 300+ was given back.
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) >= 1000 - 10


def test_rate_limit_disabled_adds_no_headers(gateway, mock_upstream):
    cfg = limits_config(mock_upstream, rpm=1)
    cfg["rate_limiting"]["enabled"] = False
    gw = gateway(cfg)
    answers = [chat(gw) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert "x-ratelimit-limit-requests" not in answers[0].headers


def test_order_in_the_middleware_list_is_respected(gateway, mock_upstream):
    # Explicit list: the limit applies; the log names both plugins.
    gw = gateway(limits_config(mock_upstream, rpm=2, middleware=["auth", "rate_limit"]))
    assert [chat(gw).status for _ in range(3)] == [200, 200, 429]
    # Without auth in front there is no key: only the global limit could apply (none here).
    gw2 = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url)},
                              rate_limiting={"enabled": True, "global_rpm": 2}))
    statuses = [post(gw2.v1 + "/chat/completions", chat_body("gpt-4o-mini")).status for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_invalid_limit_in_config_is_rejected_with_location(run_prism, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("providers:\n  m: {type: mock, models: [x]}\nrate_limiting:\n  enabled: true\n"
                      "  global_rpm: lots\n")
    result = run_prism("validate", "--config", str(config))
    assert result.returncode != 0
    assert "bad.yaml:5:" in result.stderr + result.stdout
    assert "rate_limiting.global_rpm" in result.stderr + result.stdout


def test_absurd_max_tokens_is_refused_not_fatal(gateway, mock_upstream):
    gw = gateway(limits_config(mock_upstream, tpm=1000))
    huge = chat(gw, max_tokens=9223372036854775807)
    assert_openai_error(huge, 429, code="rate_limit_exceeded")
    assert chat(gw).status == 200


def per_config(upstream, limits, rpm=0):
    cfg = limits_config(upstream, rpm=rpm)
    cfg["rate_limiting"].update(limits)
    return cfg


def as_user(gw, user, model="gpt-4o-mini", in_body=False):
    body = chat_body(model, "hello", **({"user": user} if in_body else {}))
    headers = dict(bearer(KEY), **({} if in_body else {"x-prism-user-id": user}))
    return post(gw.v1 + "/chat/completions", body, headers=headers)


def test_per_user_limits_each_end_user_within_one_key(gateway, mock_upstream):
    gw = gateway(per_config(mock_upstream, {"per_user": {"rpm": 2}}, rpm=100))
    assert [as_user(gw, "u1").status for _ in range(2)] == [200, 200]
    refused = as_user(gw, "u1")
    error = assert_openai_error(refused, 429, code="rate_limit_exceeded")
    assert "user 'u1' is limited to 2 requests per minute" in error["message"], error
    # The binding limit is the user's, not the key's 100.
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    # Another user of the same key is not affected; the body's `user` names a user too.
    assert as_user(gw, "u2").status == 200
    assert [as_user(gw, "u3", in_body=True).status for _ in range(3)] == [200, 200, 429]
    # No user named: only the key's limits apply.
    assert chat(gw).status == 200


def test_per_model_limits_and_tokens(gateway, mock_upstream):
    gw = gateway(per_config(mock_upstream, {"per_model": {"gpt-4o": {"rpm": 1}, "gpt-4o-mini": {"tpm": 10_000}}}))
    first = post(gw.v1 + "/chat/completions", chat_body("gpt-4o"), headers=bearer(KEY))
    assert first.status == 200
    error = assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o"), headers=bearer(KEY)), 429,
                                code="rate_limit_exceeded")
    assert "model 'gpt-4o' is limited to 1 requests per minute" in error["message"]
    mini = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", max_tokens=100), headers=bearer(KEY))
    assert mini.status == 200 and mini.headers["x-ratelimit-limit-tokens"] == "10000"
    too_big = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", max_tokens=20_000), headers=bearer(KEY))
    assert "model 'gpt-4o-mini' is limited to 10000 tokens per minute" in \
        assert_openai_error(too_big, 429, code="rate_limit_exceeded")["message"]
