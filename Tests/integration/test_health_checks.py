"""Active health checks (routing.health_check): a provider whose circuit opened is probed (its
models list) as soon as the cooldown has passed, without waiting for client traffic; with an
interval every provider is probed; the results are in /-/health/providers and the metrics."""

import time

from prism_helpers import chat_body, free_port, get, make_config, openai_provider, post, wait_until


def health_of(gw, name):
    for entry in get(gw.url("/-/health/providers")).json()["providers"]:
        if entry["name"] == name:
            return entry
    raise AssertionError(f"no provider {name}")


def model_list_requests(mock):
    return [r for r in mock.requests if r.method == "GET" and r.path.endswith("/models")]


def test_an_open_circuit_recovers_by_probing_without_client_traffic(gateway, make_mock):
    a = make_mock()
    a.fail_with(503, "down")
    gw = gateway(make_config({"a": openai_provider(a.v1_url, models=["m-a"])}, routing={
        "circuit_breaker": {"failure_threshold": 2, "success_threshold": 1, "cooldown": "1s"}}))
    for _ in range(2):
        assert post(gw.v1 + "/chat/completions", chat_body("m-a")).status == 503
    assert health_of(gw, "a")["state"] == "open"
    a.error = None  # the provider recovers; no client sends anything
    assert wait_until(lambda: health_of(gw, "a")["state"] == "closed", timeout=5), health_of(gw, "a")
    entry = health_of(gw, "a")
    assert entry["last_probe"]["ok"] is True and entry["last_probe"]["probes"] >= 1, entry
    assert model_list_requests(a), "the probe is the provider's models list"
    assert len(a.chat_requests()) == 2, "no chat request was spent on recovery"
    assert post(gw.v1 + "/chat/completions", chat_body("m-a")).status == 200
    metrics = get(gw.url("/-/metrics")).text
    assert 'prism_health_probes_total{provider="a",result="ok"}' in metrics, metrics[-2000:]


def test_a_failing_probe_keeps_the_circuit_open(gateway):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = gateway(make_config({"gone": openai_provider(dead, models=["m"])}, routing={
        "circuit_breaker": {"failure_threshold": 1, "success_threshold": 1, "cooldown": "1s"}}))
    assert post(gw.v1 + "/chat/completions", chat_body("m")).status == 502
    assert health_of(gw, "gone")["state"] == "open"
    assert wait_until(lambda: health_of(gw, "gone").get("last_probe", {}).get("ok") is False, timeout=5)
    assert health_of(gw, "gone")["state"] == "open"
    assert "prism_health_probes_total{provider=\"gone\",result=\"failed\"}" in get(gw.url("/-/metrics")).text


def test_an_interval_probes_every_provider_and_opens_a_dead_ones_circuit(gateway, mock_upstream):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url, models=["m"]),
                              "gone": openai_provider(dead, models=["m"])}, routing={
        "health_check": {"interval": "500ms", "timeout": "1s"},
        "circuit_breaker": {"failure_threshold": 2, "success_threshold": 1, "cooldown": "30s"}}))
    assert wait_until(lambda: health_of(gw, "up").get("last_probe", {}).get("probes", 0) >= 2, timeout=6)
    assert health_of(gw, "up")["state"] == "closed"
    # Without a single client request the dead provider's circuit opens, so no client waits on it.
    assert wait_until(lambda: health_of(gw, "gone")["state"] == "open", timeout=8), health_of(gw, "gone")
    started = time.monotonic()
    for _ in range(3):
        answer = post(gw.v1 + "/chat/completions", chat_body("m"))
        assert answer.status == 200 and answer.headers["x-prism-provider"] == "up"
    assert time.monotonic() - started < 3


def test_a_provider_without_a_models_list_is_not_probed_and_says_so(gateway, make_mock):
    anthropic = make_mock()
    gw = gateway(make_config({"claude": {"api_format": "anthropic", "api_key": "k", "base_url": anthropic.base_url,
                                         "models": ["claude-x"]}},
                             routing={"health_check": {"interval": "500ms"}}))
    assert wait_until(lambda: "last_probe" in health_of(gw, "claude"), timeout=5)
    probe = health_of(gw, "claude")["last_probe"]
    assert probe["ok"] is None and "recovers from client traffic" in probe["error"], probe
    assert anthropic.requests == []


def test_health_checks_can_be_turned_off(gateway, make_mock):
    a = make_mock()
    a.fail_with(503, "down")
    gw = gateway(make_config({"a": openai_provider(a.v1_url, models=["m-a"])}, routing={
        "health_check": {"enabled": False},
        "circuit_breaker": {"failure_threshold": 1, "success_threshold": 1, "cooldown": "1s"}}))
    assert post(gw.v1 + "/chat/completions", chat_body("m-a")).status == 503
    a.error = None
    time.sleep(1.6)
    assert health_of(gw, "a")["state"] == "open" and "last_probe" not in health_of(gw, "a")
    assert model_list_requests(a) == []
