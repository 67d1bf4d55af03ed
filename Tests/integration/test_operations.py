"""Operations: Prometheus metrics at /-/metrics, hot reload (POST /-/reload, SIGHUP, the config file
changing) with in-flight streams finishing on their configuration, GET /-/config with secrets
masked, and JSON logs."""

import json
import re
import shutil
import signal
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config, openai_provider,
                           parse_chunks, post, stream_text, to_yaml, wait_until)

ADMIN = "admin-token-for-tests-0001"
UPSTREAM_SECRET = "sk-upstream-secret-ops-9f8e7d6c"
CLIENT_KEY = "sk-prism-ops-client-key-1234"


def admin(token=ADMIN):
    return {"Authorization": f"Bearer {token}"}


def metrics(gw):
    resp = get(gw.url("/-/metrics"))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    return families


def sample(families, family, name=None, **labels):
    """The value of the one sample of `family` (named `name`, default the family's counter/gauge
    sample) whose labels include `labels`; 0 when absent."""
    fam = families.get(family)
    if fam is None:
        return 0
    for s in fam.samples:
        if name is not None and s.name != name:
            continue
        if name is None and s.name not in (family, family + "_total"):
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


# ---- metrics ---------------------------------------------------------------------------------------

def test_metrics_are_prometheus_text_with_the_documented_families(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)},
                      cache={"enabled": True},
                      auth={"enabled": True, "keys": [{"name": "c", "key": CLIENT_KEY, "rate_limit_rpm": 4}]},
                      rate_limiting={"enabled": True},
                      server={"operational_routes": "public"})  # a scraper without the admin token
    gw = gateway(cfg)
    key = {"Authorization": f"Bearer {CLIENT_KEY}"}
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "one"), headers=key).status == 200
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "one"), headers=key).status == 200  # hit
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "two", stream=True), headers=key)
    while stream.next_event() is not None:
        pass
    mock_upstream.fail_with(500, "boom")
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "three"), headers=key).status >= 500
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "four"), headers=key).status == 429

    families = metrics(gw)
    requests = families["prism_requests"]
    assert requests.type == "counter"
    assert sample(families, "prism_requests", "prism_requests_total", model="gpt-4o-mini", provider="up", status="200") == 2
    assert sample(families, "prism_requests", "prism_requests_total", model="gpt-4o-mini", provider="-", status="200") == 1
    assert sample(families, "prism_requests", "prism_requests_total", model="gpt-4o-mini", status="429") == 1
    duration = families["prism_request_duration_seconds"]
    assert duration.type == "histogram"
    assert sample(families, "prism_request_duration_seconds", "prism_request_duration_seconds_count",
                  model="gpt-4o-mini", provider="up") >= 2
    assert sample(families, "prism_time_to_first_token_seconds", "prism_time_to_first_token_seconds_count",
                  model="gpt-4o-mini", provider="up") >= 1
    usage = mock_upstream.usage()
    assert sample(families, "prism_tokens", "prism_tokens_total", type="input") == 2 * usage["prompt_tokens"]
    assert sample(families, "prism_tokens", "prism_tokens_total", type="output") == 2 * usage["completion_tokens"]
    assert sample(families, "prism_provider_errors", "prism_provider_errors_total", provider="up", reason="500") >= 1
    assert families["prism_circuit_breaker_state"].type == "gauge"
    assert sample(families, "prism_circuit_breaker_state", provider="up") in (0, 1, 2)
    # Recorded by the cache and rate-limit plugins through the host's metrics service.
    assert sample(families, "prism_cache_hits", "prism_cache_hits_total", api="chat.completions") == 1
    assert sample(families, "prism_cache_misses", "prism_cache_misses_total", api="chat.completions") >= 2
    assert sample(families, "prism_rate_limit_exceeded", "prism_rate_limit_exceeded_total", limit="key_requests") == 1


def test_circuit_breaker_state_gauge_opens(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)},
                      routing={"retry": {"enabled": False},
                               "circuit_breaker": {"enabled": True, "failure_threshold": 2, "cooldown": "60s"}})
    gw = gateway(cfg)
    mock_upstream.fail_with(503, "down")
    for _ in range(3):
        post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert sample(metrics(gw), "prism_circuit_breaker_state", provider="up") == 1


# ---- reload ----------------------------------------------------------------------------------------

def write_config(gw, cfg):
    gw.config_path.write_text(to_yaml(cfg))


def test_post_reload_applies_a_valid_config_and_rejects_an_invalid_one(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}, admin={"token": ADMIN})
    gw = gateway(cfg)
    # A model outside the openai type's families (gpt-*, o*, ...) is served only once listed.
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("llama-3.3-70b")), 404, code="model_not_found")
    cfg["providers"]["up"]["models"] = ["gpt-4o-mini", "llama-3.3-70b"]
    write_config(gw, cfg)
    resp = post(gw.url("/-/reload"), headers=admin())
    assert resp.status == 200, resp.text
    assert resp.json()["status"] == "reloaded"
    assert post(gw.v1 + "/chat/completions", chat_body("llama-3.3-70b")).status == 200
    # Invalid: the old configuration stays, the error names file:line:col.
    broken = dict(cfg, server=dict(cfg["server"], port="not-a-port"))
    write_config(gw, broken)
    bad = post(gw.url("/-/reload"), headers=admin())
    err = assert_openai_error(bad, 400, code="invalid_config")
    assert re.search(re.escape(str(gw.config_path)) + r":\d+:\d+: error: server.port", err["message"]), err
    gw.wait_for_log(r"reload \(POST /-/reload\) rejected.*:\d+:\d+: error: server\.port")
    assert post(gw.v1 + "/chat/completions", chat_body("llama-3.3-70b")).status == 200


def test_sighup_and_file_changes_reload(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])})
    gw = gateway(cfg)
    cfg["providers"]["up"]["models"] = ["gpt-4o-mini", "model-b"]
    write_config(gw, cfg)
    # The watcher notices the file (polls once a second).
    assert wait_until(lambda: post(gw.v1 + "/chat/completions", chat_body("model-b")).status == 200, 6)
    gw.wait_for_log(r"configuration reloaded \(config file changed\)")
    gw.send_signal(signal.SIGHUP)
    gw.wait_for_log(r"configuration reloaded \(SIGHUP\)")
    # A broken file is refused and logged with its location; the gateway keeps serving.
    gw.config_path.write_text("providers:\n  up: [unclosed\n")
    gw.wait_for_log(r"rejected, the running configuration stays: .*:\d+:\d+", timeout=6)
    assert post(gw.v1 + "/chat/completions", chat_body("model-b")).status == 200


def test_streams_in_flight_finish_on_the_configuration_they_started_with(gateway, mock_upstream, make_mock):
    second = make_mock()
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}, admin={"token": ADMIN})
    gw = gateway(cfg)
    mock_upstream.hold_after_chunks = 2
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True))
    first_events = [stream.next_event(), stream.next_event()]
    assert mock_upstream.holding.wait(5)
    # The new configuration sends gpt-4o-mini elsewhere.
    cfg["providers"] = {"other": openai_provider(second.v1_url, models=["gpt-4o-mini"])}
    write_config(gw, cfg)
    assert post(gw.url("/-/reload"), headers=admin()).status == 200
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")).headers["x-prism-provider"] == "other"
    mock_upstream.release.set()
    events = first_events
    while (event := stream.next_event()) is not None:
        events.append(event)
    chunks, done = parse_chunks(events)
    assert done and stream_text(chunks) == mock_upstream.content
    assert stream.headers["x-prism-provider"] == "up"


def test_reload_picks_up_new_plugin_files(gateway, make_plugins_dir, c_plugins, mock_upstream):
    plugins = make_plugins_dir()
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, admin={"token": ADMIN})
    gw = gateway(cfg, plugins_dir=plugins)
    shutil.copyfile(c_plugins / "c-example-provider.so", plugins / "c-example-provider.so")
    (plugins / "c-example-provider.so").chmod(0o755)
    cfg["providers"]["cprov"] = {"api_format": "c-example", "base_url": mock_upstream.base_url, "models": ["c-model"]}
    write_config(gw, cfg)
    assert post(gw.url("/-/reload"), headers=admin()).status == 200
    resp = post(gw.v1 + "/chat/completions", chat_body("c-model"))
    assert resp.status == 200 and resp.headers["x-prism-provider"] == "cprov"


def test_config_route_masks_every_secret(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url, api_key=UPSTREAM_SECRET,
                                             headers={"x-api-key": "header-secret-value-42"})},
                      auth={"enabled": True, "keys": [{"name": "c", "key": CLIENT_KEY}]},
                      admin={"token": ADMIN},
                      redis={"enabled": False, "password": "redis-password-xyz"})
    gw = gateway(cfg)
    resp = get(gw.url("/-/config"), headers=admin())
    assert resp.status == 200
    for secret in (UPSTREAM_SECRET, CLIENT_KEY, ADMIN, "redis-password-xyz", "header-secret-value-42"):
        assert secret not in resp.text
    document = resp.json()
    assert document["providers"]["up"]["api_key"] == UPSTREAM_SECRET[:3] + "…" + UPSTREAM_SECRET[-4:]
    assert document["providers"]["up"]["base_url"] == mock_upstream.v1_url
    assert document["auth"]["keys"][0]["key"].endswith(CLIENT_KEY[-4:])


def test_redis_address_with_credentials_is_refused(run_prism, tmp_path):
    config = tmp_path / "redis.yaml"
    config.write_text('providers:\n  m: {type: mock, models: [x]}\nredis:\n  address: "redis://:hunter22@127.0.0.1:6379"\n')
    result = run_prism("validate", "--config", str(config))
    assert result.returncode != 0
    assert "redis.address" in result.stderr and "redis.password" in result.stderr


# ---- logs ------------------------------------------------------------------------------------------

def test_json_logs_carry_the_request_facts(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url, api_key=UPSTREAM_SECRET)},
                      auth={"enabled": True, "keys": [{"name": "client-a", "key": CLIENT_KEY}]},
                      cache={"enabled": True})
    cfg["logging"] = {"level": "info", "format": "json"}
    gw = gateway(cfg)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "log me"), headers=headers)
    post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "log me"), headers=headers)
    # The request line is written just after the answer: wait for both.
    assert wait_until(lambda: gw.log().count('"message":"request"') == 2, 5), gw.log_tail()
    lines = [line for line in gw.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    requests = [r for r in records if r.get("message") == "request"]
    assert len(requests) == 2, lines
    # Each line is written just after its answer, by the loop that served it: the two connections
    # may sit on different loops, so the second request's line can come first.
    assert sorted(r["cache"] for r in requests) == ["hit", "miss"], requests
    first, second = sorted(requests, key=lambda r: r["cache"] != "miss")
    for record in requests:
        assert re.match(r"req-[0-9a-f]+", record["request_id"])
        assert record["key"] == "client-a" and record["model"] == "gpt-4o-mini"
        assert record["status"] == 200 and isinstance(record["latency_ms"], (int, float))
        assert record["fallback"] is False and "request_body" not in record
    assert first["provider"] == "up" and first["cache"] == "miss"
    assert first["tokens_in"] == mock_upstream.usage()["prompt_tokens"]
    assert second["cache"] == "hit"
    log = gw.log()
    assert UPSTREAM_SECRET not in log and CLIENT_KEY not in log


def test_bodies_are_logged_only_at_debug_with_include_bodies(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)})
    cfg["logging"] = {"level": "debug", "format": "json", "include_bodies": True}
    gw = gateway(cfg)
    post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "a body worth logging"))
    gw.wait_for_log(r'"message":"request"')
    requests = [json.loads(l) for l in gw.log().splitlines() if '"message":"request"' in l]
    assert requests and "a body worth logging" in requests[0]["request_body"]
    assert mock_upstream.content in requests[0]["response_body"]
    cfg["logging"] = {"level": "debug", "format": "json"}
    gw2 = gateway(cfg)
    post(gw2.v1 + "/chat/completions", chat_body("gpt-4o-mini", "not this one"))
    gw2.wait_for_log(r'"message":"request"')
    assert "not this one" not in gw2.log()
