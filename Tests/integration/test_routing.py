"""Routing and resilience through the real binary: retries, failover, circuit breaker, fallbacks,
strategies, health. Each test scripts mock providers (a run of 503s, hangs, resets, 429s) and
checks what the client got and what every upstream saw."""
import threading
import time

from prism_helpers import (SSEStream, chat_body, get, make_config, openai_provider, parse_chunks, post,
                           stream_text, wait_until)

MODEL = "gpt-4o-mini"


def two_providers(a, b, *, routing=None, server=None, **extra_a):
    """Providers a (preferred: priority 0) and b (priority 1) both serving MODEL."""
    routing = dict(routing or {})
    routing.setdefault("targets", {MODEL: [{"provider": "a", "priority": 0}, {"provider": "b", "priority": 1}]})
    return make_config({"a": openai_provider(a.v1_url, **extra_a), "b": openai_provider(b.v1_url)},
                       routing=routing, server=server)


def chat(gw, model=MODEL, headers=None, timeout=20):
    return post(gw.url("/v1/chat/completions"), chat_body(model), headers=headers, timeout=timeout)


# ---- retry and failover ---------------------------------------------------------------------------

def test_retry_same_provider_until_it_answers(gateway, mock_upstream):
    mock_upstream.script = [{"status": 503}, {"status": 503}, "ok"]
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)},
                             routing={"retry": {"enabled": True, "max_retries": 2, "initial_delay": "20ms"}}))
    resp = chat(gw)
    assert resp.status == 200, resp.text
    assert len(mock_upstream.chat_requests()) == 3
    assert resp.headers.get("x-prism-provider") == "a"
    assert "x-prism-fallback-used" not in resp.headers, "a retry on the same provider is not a failover"


def test_retries_are_bounded(gateway, mock_upstream):
    mock_upstream.fail_with(503, "still down")
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)},
                             routing={"retry": {"enabled": True, "max_retries": 2, "initial_delay": "10ms"}}))
    resp = chat(gw)
    assert resp.status == 503, resp.text
    assert "still down" in resp.json()["error"]["message"]
    assert len(mock_upstream.chat_requests()) == 3  # the first try and two retries


def test_failover_to_the_next_provider_on_503(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "overloaded")
    gw = gateway(two_providers(a, b))
    resp = chat(gw)
    assert resp.status == 200, resp.text
    assert resp.headers.get("x-prism-provider") == "b"
    assert resp.headers.get("x-prism-fallback-used") == "true"
    assert resp.headers.get("x-prism-routing-strategy")
    assert len(a.chat_requests()) == 1 and len(b.chat_requests()) == 1


def test_failover_on_timeout_within_the_deadline(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.delay = 5.0
    gw = gateway(two_providers(a, b, default_timeout="500ms"))
    started = time.monotonic()
    resp = chat(gw)
    elapsed = time.monotonic() - started
    assert resp.status == 200, resp.text
    assert resp.headers.get("x-prism-provider") == "b"
    assert elapsed < 3.0, f"took {elapsed:.2f}s: the hung provider was not abandoned at its timeout"


def test_failover_on_connection_reset(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.script = [{"reset": True}]
    gw = gateway(two_providers(a, b))
    resp = chat(gw)
    assert resp.status == 200, resp.text
    assert resp.headers.get("x-prism-provider") == "b"


def test_client_errors_are_not_failed_over(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(400, "bad parameter")
    gw = gateway(two_providers(a, b))
    resp = chat(gw)
    assert resp.status == 400, resp.text
    assert "bad parameter" in resp.json()["error"]["message"]
    assert b.chat_requests() == []


def test_failover_disabled_answers_with_the_first_failure(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "down")
    gw = gateway(two_providers(a, b, routing={"failover": {"enabled": False}}))
    assert chat(gw).status == 503
    assert b.chat_requests() == []


def test_retry_after_is_honoured_and_capped(gateway, mock_upstream):
    mock_upstream.script = [{"status": 429, "headers": {"Retry-After": "1"}}, "ok"]
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)},
                             routing={"retry": {"enabled": True, "initial_delay": "10ms", "max_delay": "5s"}}))
    started = time.monotonic()
    assert chat(gw).status == 200
    assert time.monotonic() - started >= 0.95, "Retry-After: 1 was not waited for"

    mock_upstream.script = [{"status": 429, "headers": {"Retry-After": "30"}}, "ok"]
    gw2 = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)},
                              routing={"retry": {"enabled": True, "initial_delay": "10ms", "max_delay": "300ms"}}))
    started = time.monotonic()
    assert chat(gw2).status == 200
    assert time.monotonic() - started < 2.0, "Retry-After was not capped by max_delay"


def test_retries_and_failover_share_one_deadline(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.delay = b.delay = 5.0
    gw = gateway(two_providers(a, b, server={"default_request_timeout": "1s"},
                               routing={"retry": {"enabled": True, "max_retries": 5, "initial_delay": "10ms"}}))
    started = time.monotonic()
    resp = chat(gw)
    elapsed = time.monotonic() - started
    assert resp.status == 504, resp.text
    assert elapsed < 2.5, f"{elapsed:.2f}s: retries ran past server.default_request_timeout"


def test_a_stream_fails_over_before_its_first_byte(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "busy")
    gw = gateway(two_providers(a, b))
    with SSEStream(gw.url("/v1/chat/completions"), chat_body(MODEL, stream=True)) as s:
        assert s.status == 200
        assert s.headers.get("x-prism-provider") == "b"
        chunks, done = parse_chunks(s.read_all())
    assert done and stream_text(chunks) == b.content


# ---- circuit breaker ------------------------------------------------------------------------------

def health_of(gw, name):
    report = get(gw.url("/-/health/providers")).json()
    return next(p for p in report["providers"] if p["name"] == name)


def test_circuit_opens_skips_then_probes_and_closes(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "down")
    gw = gateway(two_providers(a, b, routing={
        "circuit_breaker": {"failure_threshold": 2, "success_threshold": 1, "cooldown": "1s"}}))
    for _ in range(2):
        assert chat(gw).headers.get("x-prism-provider") == "b"
    assert health_of(gw, "a")["state"] == "open"
    opened = time.monotonic()
    # While open, a is skipped entirely: it sees no request.
    assert chat(gw).headers.get("x-prism-provider") == "b"
    assert len(a.chat_requests()) == 2
    a.error = None  # a recovers
    time.sleep(max(0, 1.05 - (time.monotonic() - opened)))
    resp = chat(gw)  # the half-open probe goes to a and closes the circuit
    assert resp.headers.get("x-prism-provider") == "a", resp.headers
    assert health_of(gw, "a")["state"] == "closed"
    assert chat(gw).headers.get("x-prism-provider") == "a"


def test_a_failed_probe_reopens_the_circuit(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "down")
    gw = gateway(two_providers(a, b, routing={
        "circuit_breaker": {"failure_threshold": 1, "success_threshold": 1, "cooldown": "500ms"}}))
    chat(gw)
    assert health_of(gw, "a")["state"] == "open"
    time.sleep(0.55)
    assert chat(gw).headers.get("x-prism-provider") == "b"  # probe to a failed, b answered
    assert len(a.chat_requests()) == 2
    assert health_of(gw, "a")["state"] == "open"


def test_every_circuit_open_answers_503_at_once(gateway, mock_upstream):
    mock_upstream.fail_with(503, "down")
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)},
                             routing={"circuit_breaker": {"failure_threshold": 1, "cooldown": "30s"}}))
    assert chat(gw).status == 503
    started = time.monotonic()
    resp = chat(gw)
    assert time.monotonic() - started < 0.5
    assert resp.status == 503
    assert resp.json()["error"]["code"] == "service_unavailable"
    assert "circuit" in resp.json()["error"]["message"]
    assert len(mock_upstream.chat_requests()) == 1


def test_health_endpoint_reports_every_provider(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(two_providers(a, b))
    chat(gw)
    report = get(gw.url("/-/health/providers")).json()
    names = {p["name"] for p in report["providers"]}
    assert names == {"a", "b"}
    entry = health_of(gw, "a")
    for key in ["state", "latency_ms", "error_rate", "in_flight", "requests", "failures"]:
        assert key in entry, entry
    assert entry["requests"] == 1 and entry["latency_ms"] > 0


# ---- candidates: fallbacks, aliases, lock ----------------------------------------------------------

def test_model_fallbacks_continue_with_another_model(gateway, make_mock):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "down")
    cfg = make_config({"a": openai_provider(a.v1_url, models=["gpt-4o"]),
                       "b": openai_provider(b.v1_url, models=["claude-sonnet-4-20250514"])},
                      routing={"model_fallbacks": {"gpt-4o": ["claude-sonnet-4-20250514"]}})
    gw = gateway(cfg)
    resp = chat(gw, model="gpt-4o")
    assert resp.status == 200, resp.text
    assert resp.headers.get("x-prism-model-used") == "claude-sonnet-4-20250514"
    assert resp.headers.get("x-prism-fallback-used") == "true"
    assert b.last_chat().body["model"] == "claude-sonnet-4-20250514"


def test_model_map_alias(gateway, mock_upstream):
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)}, model_map={"my-fast-model": MODEL}))
    resp = chat(gw, model="my-fast-model")
    assert resp.status == 200, resp.text
    assert mock_upstream.last_chat().body["model"] == MODEL


def test_provider_lock_header(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url), "b": openai_provider(b.v1_url)}))
    for _ in range(4):
        assert chat(gw, headers={"x-prism-provider-lock": "b"}).headers.get("x-prism-provider") == "b"
    assert a.chat_requests() == []
    assert chat(gw, headers={"x-prism-provider-lock": "nope"}).status == 404


def test_targets_with_model_override(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url, models=[]), "b": openai_provider(b.v1_url, models=[])},
                             routing={"targets": {"pool": [{"provider": "a", "model_override": "gpt-4o", "priority": 0},
                                                           {"provider": "b", "model_override": "gpt-4o-azure"}]}}))
    assert chat(gw, model="pool").status == 200
    assert a.last_chat().body["model"] == "gpt-4o"


# ---- strategies ---------------------------------------------------------------------------------

def test_round_robin_alternates(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url), "b": openai_provider(b.v1_url)}))
    used = [chat(gw).headers.get("x-prism-provider") for _ in range(10)]
    assert used.count("a") == 5 and used.count("b") == 5, used


def test_weighted_splits_traffic_as_configured(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url), "b": openai_provider(b.v1_url)},
                             routing={"default_strategy": "weighted", "weights": {"a": 70, "b": 30}}))
    n = 400
    used = [chat(gw).headers.get("x-prism-provider") for _ in range(n)]
    share = used.count("a") / n
    # Binomial(400, 0.7): 3.5 standard deviations is ±0.08.
    assert abs(share - 0.7) < 0.08, f"a got {share:.3f} of the traffic, expected 0.70"


def test_least_latency_moves_traffic_to_the_faster_provider(gateway, make_mock):
    slow, fast = make_mock(), make_mock()
    slow.delay = 0.08
    gw = gateway(make_config({"slow": openai_provider(slow.v1_url), "fast": openai_provider(fast.v1_url)},
                             routing={"default_strategy": "least-latency"}))
    for _ in range(6):  # both get measured
        chat(gw)
    used = [chat(gw).headers.get("x-prism-provider") for _ in range(40)]
    assert used.count("fast") >= 32, used


def test_fastest_races_and_cancels_the_loser(gateway, make_mock):
    slow, fast = make_mock(), make_mock()
    slow.hold_response = True
    gw = gateway(make_config({"slow": openai_provider(slow.v1_url), "fast": openai_provider(fast.v1_url)},
                             routing={"default_strategy": "fastest", "fastest": {"race": 2}}))
    started = time.monotonic()
    resp = chat(gw)
    assert resp.status == 200, resp.text
    assert resp.headers.get("x-prism-provider") == "fast"
    assert time.monotonic() - started < 2
    assert slow.holding.wait(5), "the race never reached the slow provider"
    assert slow.disconnected.wait(5), "the losing attempt was not cancelled"
    slow.release.set()


def test_cost_optimized_prefers_the_cheapest(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url), "b": openai_provider(b.v1_url)},
                             routing={"default_strategy": "cost-optimized",
                                      "prices": {f"a/{MODEL}": {"input": 5, "output": 15},
                                                 f"b/{MODEL}": {"input": 0.15, "output": 0.6}}}))
    used = {chat(gw).headers.get("x-prism-provider") for _ in range(6)}
    assert used == {"b"}


def test_adaptive_avoids_a_failing_provider(gateway, make_mock):
    bad, good = make_mock(), make_mock()
    bad.fail_with(500, "flaky")
    gw = gateway(make_config({"bad": openai_provider(bad.v1_url), "good": openai_provider(good.v1_url)},
                             routing={"default_strategy": "adaptive",
                                      "circuit_breaker": {"enabled": False}}))
    results = [chat(gw) for _ in range(30)]
    assert all(r.status == 200 for r in results)  # failover hides the failures
    # The learned error rate steers first attempts away from `bad`.
    late_first_tries = len(bad.chat_requests())
    assert late_first_tries < 15, f"bad was tried first {late_first_tries} times in 30"
