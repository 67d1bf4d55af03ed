"""OpenTelemetry traces: the gateway exports OTLP/HTTP JSON to a real receiver (decoded with the
`opentelemetry-proto` schema): one SERVER span per request with a child per middleware, routing
decision and upstream attempt, GenAI attributes, W3C trace context from the client kept and
forwarded upstream, sampling, the OTEL_* environment, captured content only when asked, the
collector's headers; a dead or hanging collector costs requests nothing and is counted."""

import re
import signal
import socket
import time

import pytest

from otlp_receiver import OTLPReceiver
from prism_helpers import (SSEStream, UPSTREAM_KEY, chat_body, get, make_config, openai_provider, parse_chunks,
                           post, stream_text, to_yaml, wait_until)

MODEL = "gpt-4o-mini"
CLIENT_KEY = "sk-prism-otel-client-0001"
ADMIN = "admin-token-for-otel-tests-01"
SERVER, CLIENT, INTERNAL = 2, 3, 1
ERROR = 2
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver():
    r = OTLPReceiver().start()
    yield r
    r.stop()


def telemetry(receiver, **extra):
    return {"enabled": True, "otlp_endpoint": receiver.endpoint, **extra}


def chat(gw, request_id, model=MODEL, headers=None, **body):
    hdrs = {"x-prism-request-id": request_id, **(headers or {})}
    return post(gw.v1 + "/chat/completions", chat_body(model, **body), headers=hdrs, timeout=20)


def children(spans, root):
    return [s for s in spans if s["parent"] == root["span_id"]]


def attempts(spans):
    return sorted([s for s in spans if s["kind"] == CLIENT], key=lambda s: s["attributes"]["prism.attempt"])


def metric(gw, name, **labels):
    text = get(gw.url("/-/metrics")).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            total += float(m.group(3))
    return total


# ---- the span tree -------------------------------------------------------------------------------

def test_one_trace_per_request_with_middleware_route_and_attempt_spans(gateway, mock_upstream, receiver):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)},
                      auth={"enabled": True, "keys": [{"name": "team-a", "key": CLIENT_KEY, "owner": "ops"}]},
                      telemetry=telemetry(receiver))
    gw = gateway(cfg)
    resp = chat(gw, "otel-tree-1", headers={"Authorization": f"Bearer {CLIENT_KEY}"}, max_tokens=50, temperature=0.2)
    assert resp.status == 200, resp.text
    root, spans = receiver.wait_for_request("otel-tree-1")

    assert root["kind"] == SERVER and root["parent"] == "" and root["name"] == f"chat {MODEL}"
    assert root["scope"] == "prism-gateway" and root["resource"]["service.name"] == "prism-gateway"
    assert len(spans) == 4, [s["name"] for s in spans]
    assert {s["trace_id"] for s in spans} == {root["trace_id"]}
    assert len({s["span_id"] for s in spans}) == 4
    kids = children(spans, root)
    assert [s["name"] for s in sorted(kids, key=lambda s: s["start"])] == \
        ["middleware auth", f"route {MODEL}", f"chat {MODEL}"]
    for span in kids:
        assert root["start"] <= span["start"] <= span["end"] <= root["end"], span
    auth = next(s for s in kids if s["name"] == "middleware auth")
    assert auth["kind"] == INTERNAL and auth["attributes"]["prism.middleware.action"] == "continue"
    route = next(s for s in kids if s["name"].startswith("route"))
    assert route["kind"] == INTERNAL
    assert route["attributes"]["prism.route.candidates"] == ["up"]
    assert route["attributes"]["prism.route.first_choice"] == "up"
    assert route["attributes"]["prism.route.strategy"] == "round-robin"
    (attempt,) = attempts(spans)
    a = attempt["attributes"]
    assert a["gen_ai.system"] == "openai" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == MODEL and a["prism.provider"] == "up"
    assert a["prism.attempt"] == 1 and a["prism.retry"] is False and a["prism.failover"] is False
    assert a["http.response.status_code"] == 200 and attempt["status"] != ERROR

    r = root["attributes"]
    assert r["gen_ai.operation.name"] == "chat" and r["gen_ai.system"] == "openai"
    assert r["gen_ai.request.model"] == MODEL and r["gen_ai.response.model"] == MODEL
    assert r["gen_ai.usage.input_tokens"] == mock_upstream.prompt_tokens == 13
    assert r["gen_ai.usage.output_tokens"] == mock_upstream.completion_tokens == 7
    assert r["gen_ai.response.finish_reasons"] == ["stop"]
    assert r["gen_ai.response.id"] == resp.json()["id"]
    assert r["gen_ai.request.max_tokens"] == 50 and r["gen_ai.request.temperature"] == 0.2
    assert r["http.request.method"] == "POST" and r["url.path"] == "/v1/chat/completions"
    assert r["http.response.status_code"] == 200 and root["status"] != ERROR
    assert r["prism.request_id"] == "otel-tree-1" and r["prism.key"] == "team-a" and r["prism.key.owner"] == "ops"
    assert r["prism.provider"] == "up" and r["prism.stream"] is False
    assert CLIENT_KEY not in str(spans) and UPSTREAM_KEY not in str(spans)
    assert not any(k.startswith("gen_ai.prompt") or k.startswith("gen_ai.completion") for k in r), \
        "content is captured only with capture_content"

    # The attempt's span goes upstream as the parent in traceparent.
    seen = mock_upstream.last_chat().headers["traceparent"]
    assert seen == f"00-{root['trace_id']}-{attempt['span_id']}-01"
    assert receiver.posts[0]["content_type"] == "application/json"


def test_a_stream_has_its_usage_and_finish_reason(gateway, mock_upstream, receiver):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, telemetry=telemetry(receiver)))
    with SSEStream(gw.v1 + "/chat/completions", chat_body(MODEL, stream=True),
                   headers={"x-prism-request-id": "otel-stream-1"}) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done and stream_text(chunks) == mock_upstream.content
    root, spans = receiver.wait_for_request("otel-stream-1")
    r = root["attributes"]
    assert r["prism.stream"] is True and r["gen_ai.response.finish_reasons"] == ["stop"]
    assert r["gen_ai.usage.input_tokens"] == 13 and r["gen_ai.usage.output_tokens"] == 7
    assert r["prism.first_byte_ms"] > 0
    (attempt,) = attempts(spans)
    assert attempt["attributes"]["http.response.status_code"] == 200
    # The attempt lasts until the upstream stream ended, inside the request.
    assert root["start"] <= attempt["start"] <= attempt["end"] <= root["end"]


def test_retries_and_failover_are_separate_attempt_spans(gateway, make_mock, receiver):
    a, b = make_mock(), make_mock()
    a.fail_with(503, "overloaded")
    cfg = make_config({"a": openai_provider(a.v1_url), "b": openai_provider(b.v1_url)},
                      routing={"targets": {MODEL: [{"provider": "a", "priority": 0}, {"provider": "b", "priority": 1}]},
                               "retry": {"enabled": True, "max_retries": 1, "initial_delay": "10ms"}},
                      telemetry=telemetry(receiver))
    gw = gateway(cfg)
    resp = chat(gw, "otel-failover-1")
    assert resp.status == 200 and resp.headers["x-prism-provider"] == "b", resp.text
    root, spans = receiver.wait_for_request("otel-failover-1")
    tries = attempts(spans)
    assert [(s["attributes"]["prism.provider"], s["attributes"]["http.response.status_code"]) for s in tries] == \
        [("a", 503), ("a", 503), ("b", 200)]
    assert [s["attributes"]["prism.retry"] for s in tries] == [False, True, False]
    assert [s["attributes"]["prism.failover"] for s in tries] == [False, False, True]
    assert [s["status"] == ERROR for s in tries] == [True, True, False]
    assert tries[0]["attributes"]["error.type"] == "503"
    assert all(s["parent"] == root["span_id"] for s in tries)
    assert tries[0]["end"] <= tries[1]["start"] and tries[1]["end"] <= tries[2]["start"]
    assert root["attributes"]["prism.provider"] == "b" and root["attributes"]["prism.fallback_used"] is True
    # Each upstream request carried its own attempt's span id.
    sent = [r.headers["traceparent"] for r in a.chat_requests() + b.chat_requests()]
    assert sent == [f"00-{root['trace_id']}-{s['span_id']}-01" for s in tries]


def test_a_race_and_a_fallback_model_are_visible(gateway, make_mock, receiver):
    slow, fast = make_mock(), make_mock()
    slow.hold_response = True
    gw = gateway(make_config({"slow": openai_provider(slow.v1_url), "fast": openai_provider(fast.v1_url)},
                             routing={"default_strategy": "fastest", "fastest": {"race": 2}},
                             telemetry=telemetry(receiver)))
    assert chat(gw, "otel-race").status == 200
    assert slow.disconnected.wait(5)
    slow.release.set()
    root, spans = receiver.wait_for_request("otel-race")
    by_provider = {s["attributes"]["prism.provider"]: s for s in attempts(spans)}
    assert set(by_provider) == {"slow", "fast"}
    assert by_provider["fast"]["attributes"]["http.response.status_code"] == 200
    assert by_provider["slow"]["attributes"]["prism.cancelled"] is True
    assert [s["attributes"].get("prism.race", False) for s in attempts(spans)] == [False, True]
    assert root["attributes"]["prism.routing.strategy"] == "fastest"

    a, b = make_mock(), make_mock()
    a.fail_with(503, "down")
    cfg = make_config({"a": openai_provider(a.v1_url, models=["gpt-4o"]),
                       "b": openai_provider(b.v1_url, models=["claude-sonnet-4-20250514"])},
                      routing={"model_fallbacks": {"gpt-4o": ["claude-sonnet-4-20250514"]}}, telemetry=telemetry(receiver))
    gw = gateway(cfg)
    assert chat(gw, "otel-fallback", model="gpt-4o").status == 200
    root, spans = receiver.wait_for_request("otel-fallback")
    routes = sorted([s for s in spans if s["name"].startswith("route ")], key=lambda s: s["start"])
    assert [s["attributes"]["prism.route.model"] for s in routes] == ["gpt-4o", "claude-sonnet-4-20250514"]
    tries = attempts(spans)
    assert [(s["attributes"]["gen_ai.request.model"], s["attributes"]["prism.failover"]) for s in tries] == \
        [("gpt-4o", False), ("claude-sonnet-4-20250514", True)]
    assert root["attributes"]["gen_ai.request.model"] == "gpt-4o"
    assert root["attributes"]["gen_ai.response.model"] == "claude-sonnet-4-20250514"
    assert root["name"] == "chat gpt-4o" and tries[1]["name"] == "chat claude-sonnet-4-20250514"


def test_a_failed_request_is_an_error_span(gateway, mock_upstream, receiver):
    mock_upstream.fail_with(500, "the model fell over")
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             routing={"failover": {"enabled": False}}, telemetry=telemetry(receiver)))
    resp = chat(gw, "otel-error-1")
    assert resp.status >= 500
    root, spans = receiver.wait_for_request("otel-error-1")
    assert root["status"] == ERROR and root["attributes"]["error.type"]
    assert root["attributes"]["http.response.status_code"] == resp.status
    (attempt,) = attempts(spans)
    assert attempt["status"] == ERROR and attempt["attributes"]["http.response.status_code"] == 500
    # A client error is not the server's: no error status, no route or attempt before the check.
    bad = post(gw.v1 + "/chat/completions", {"messages": []}, headers={"x-prism-request-id": "otel-400"})
    assert bad.status == 400
    root, spans = receiver.wait_for_request("otel-400")
    assert root["status"] != ERROR and root["attributes"]["http.response.status_code"] == 400
    assert root["attributes"]["error.type"] == "missing_model" and len(spans) == 1


def test_a_middleware_answer_ends_the_tree_there(gateway, mock_upstream, receiver):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)},
                      auth={"enabled": True, "keys": [{"name": "k", "key": CLIENT_KEY}]},
                      telemetry=telemetry(receiver))
    gw = gateway(cfg)
    assert chat(gw, "otel-401", headers={"Authorization": "Bearer wrong-key"}).status == 401
    root, spans = receiver.wait_for_request("otel-401")
    (auth,) = [s for s in spans if s["span_id"] != root["span_id"]]
    assert auth["name"] == "middleware auth" and auth["attributes"]["prism.middleware.action"] == "respond"
    assert root["attributes"]["http.response.status_code"] == 401 and "traceparent" not in str(mock_upstream.requests)


# ---- trace context -------------------------------------------------------------------------------

def test_the_clients_traceparent_is_kept_and_forwarded(gateway, mock_upstream, receiver):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, telemetry=telemetry(receiver)))
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    resp = chat(gw, "otel-parent-1", headers={"traceparent": parent, "tracestate": "vendor=abc,other=1"})
    assert resp.status == 200
    root, spans = receiver.wait_for_request("otel-parent-1")
    assert root["trace_id"] == CLIENT_TRACE and root["parent"] == CLIENT_SPAN
    assert all(s["trace_id"] == CLIENT_TRACE for s in spans)
    (attempt,) = attempts(spans)
    upstream = mock_upstream.last_chat().headers
    assert upstream["traceparent"] == f"00-{CLIENT_TRACE}-{attempt['span_id']}-01"
    assert upstream["tracestate"] == "vendor=abc,other=1"

    # A parent that is not sampled: nothing is recorded, the context still goes on unchanged.
    unsampled = f"00-{CLIENT_TRACE[::-1]}-{CLIENT_SPAN}-00"
    assert chat(gw, "otel-parent-2", headers={"traceparent": unsampled}).status == 200
    assert mock_upstream.last_chat().headers["traceparent"] == unsampled
    # An invalid one (upper-case hex) is ignored: a new trace starts here.
    invalid = f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01"
    assert chat(gw, "otel-parent-3", headers={"traceparent": invalid}).status == 200
    root3, _ = receiver.wait_for_request("otel-parent-3")
    assert root3["trace_id"] != CLIENT_TRACE.lower() and root3["parent"] == ""
    assert mock_upstream.last_chat().headers["traceparent"].split("-")[1] == root3["trace_id"]
    time.sleep(1.5)
    assert not [s for s in receiver.spans() if s["attributes"].get("prism.request_id") == "otel-parent-2"]


def test_sample_rate_zero_sends_nothing_but_a_sampled_parent_still_counts(gateway, mock_upstream, receiver):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             telemetry=telemetry(receiver, sample_rate=0)))
    for index in range(5):
        assert chat(gw, f"otel-unsampled-{index}").status == 200
    assert "traceparent" not in mock_upstream.last_chat().headers
    time.sleep(2.5)  # more than two export intervals
    assert receiver.posts == []
    # Parent-based: the client's sampled flag decides.
    resp = chat(gw, "otel-sampled-parent", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert resp.status == 200
    root, _ = receiver.wait_for_request("otel-sampled-parent")
    assert root["trace_id"] == CLIENT_TRACE


def test_telemetry_off_sends_nothing_and_forwards_no_context(gateway, mock_upstream, receiver):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             telemetry={"enabled": False, "otlp_endpoint": receiver.endpoint}))
    assert chat(gw, "otel-off", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}).status == 200
    assert "traceparent" not in mock_upstream.last_chat().headers
    time.sleep(1.5)
    assert receiver.posts == [] and "prism_trace_" not in get(gw.url("/-/metrics")).text


# ---- configuration -------------------------------------------------------------------------------

def test_the_otel_environment_configures_export_and_the_file_wins(gateway, mock_upstream, receiver):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint + "/",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=tenant%20secret%3D1, x-team = ml",
           "OTEL_SERVICE_NAME": "prism-from-env",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.name=ignored-by-OTEL_SERVICE_NAME"}
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}), env=env)
    assert chat(gw, "otel-env-1").status == 200
    root, _ = receiver.wait_for_request("otel-env-1")
    assert root["resource"]["service.name"] == "prism-from-env"
    assert root["resource"]["deployment.environment"] == "test"
    sent = receiver.posts[-1]
    assert sent["path"] == "/v1/traces"
    assert sent["headers"]["x-collector-key"] == "tenant secret=1" and sent["headers"]["x-team"] == "ml"
    assert "tenant secret" not in gw.log()

    # The file's keys win over the environment; the environment's headers still apply.
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)},
                      telemetry={"service_name": "prism-from-file", "headers": {"x-team": "search"}})
    gw2 = gateway(cfg, env={**env, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"})
    assert chat(gw2, "otel-env-2").status == 200
    root, _ = receiver.wait_for_request("otel-env-2")
    assert root["resource"]["service.name"] == "prism-from-file"
    sent = receiver.posts[-1]["headers"]
    assert sent["x-team"] == "search" and sent["x-collector-key"] == "tenant secret=1"

    # OTEL_TRACES_SAMPLER_ARG=0 samples nothing; OTEL_SDK_DISABLED turns the environment's export off.
    for extra in ({"OTEL_TRACES_SAMPLER_ARG": "0"}, {"OTEL_SDK_DISABLED": "true"}):
        before = len(receiver.posts)
        gw3 = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}), env={**env, **extra})
        assert chat(gw3, "otel-env-quiet").status == 200
        time.sleep(1.5)
        assert len(receiver.posts) == before, extra


def test_collector_headers_are_sent_and_never_shown(gateway, mock_upstream, receiver):
    secret = "Bearer collector-secret-7f3a9c2e1d"
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, admin={"token": ADMIN},
                      telemetry=telemetry(receiver, headers={"Authorization": secret, "X-Scope-OrgID": "tenant-1"}))
    gw = gateway(cfg)
    assert chat(gw, "otel-headers").status == 200
    receiver.wait_for_request("otel-headers")
    sent = receiver.posts[-1]["headers"]
    assert sent["authorization"] == secret and sent["x-scope-orgid"] == "tenant-1"
    shown = get(gw.url("/-/config"), headers={"Authorization": f"Bearer {ADMIN}"})
    assert shown.status == 200
    section = shown.json()["telemetry"]
    assert section["headers"]["Authorization"] != secret and "collector-secret" not in shown.text
    assert section["otlp_endpoint"] == receiver.endpoint
    assert "collector-secret" not in gw.log()


def test_a_bad_telemetry_section_is_refused_with_its_place(run_prism, tmp_path):
    cases = {
        "telemetry:\n  sample_rate: 1.5\n": "telemetry.sample_rate",
        "telemetry:\n  otlp_endpoint: \"collector:4317\"\n": "telemetry.otlp_endpoint",
        "telemetry:\n  enabled: yes\n": "telemetry.enabled",
        "telemetry:\n  headers: {\"bad header\": x}\n": "telemetry.headers.bad header",
    }
    for index, (text, path) in enumerate(cases.items()):
        config = tmp_path / f"bad-{index}.yaml"
        config.write_text("providers: {}\n" + text)
        result = run_prism("validate", "--config", str(config))
        assert result.returncode == 1, (text, result.stdout, result.stderr)
        assert re.search(rf"bad-{index}\.yaml:\d+:\d+: error: {re.escape(path)}:", result.stderr), result.stderr
    config = tmp_path / "typo.yaml"
    config.write_text("providers: {}\ntelemetry:\n  enabled: false\n  sample_ratio: 0.5\n")
    result = run_prism("validate", "--config", str(config))
    assert result.returncode == 0 and "telemetry.sample_ratio: unknown key" in result.stderr + result.stdout


# ---- content -------------------------------------------------------------------------------------

def test_content_is_captured_only_when_asked_and_redacted(gateway, mock_upstream, receiver):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, telemetry=telemetry(receiver, capture_content=True))
    gw = gateway(cfg)
    question = f"What is 2+2? My upstream key is {UPSTREAM_KEY}."
    assert chat(gw, "otel-content-1", content=question).status == 200
    root, _ = receiver.wait_for_request("otel-content-1")
    prompt = root["attributes"]["gen_ai.prompt"]
    assert "What is 2+2?" in prompt and UPSTREAM_KEY not in prompt and "[redacted]" in prompt
    assert prompt.startswith("[") and '"role"' in prompt
    assert root["attributes"]["gen_ai.completion"] == mock_upstream.content
    with SSEStream(gw.v1 + "/chat/completions", chat_body(MODEL, "stream it", stream=True),
                   headers={"x-prism-request-id": "otel-content-2"}) as stream:
        assert parse_chunks(stream.read_all())[1]
    root, _ = receiver.wait_for_request("otel-content-2")
    assert root["attributes"]["gen_ai.completion"] == mock_upstream.content
    assert "stream it" in root["attributes"]["gen_ai.prompt"]
    # Cut at 16 KiB.
    assert chat(gw, "otel-content-3", content="x" * 40_000).status == 200
    root, _ = receiver.wait_for_request("otel-content-3")
    assert len(root["attributes"]["gen_ai.prompt"].encode()) <= 16_384 + 10
    assert root["attributes"]["gen_ai.prompt"].endswith("…[cut]")


# ---- a collector that is down --------------------------------------------------------------------

def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_collector_costs_requests_nothing_and_is_counted(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, server={"operational_routes": "public"},
                      telemetry={"enabled": True, "otlp_endpoint": f"http://127.0.0.1:{closed_port()}"})
    gw = gateway(cfg)
    started = time.monotonic()
    for index in range(30):
        resp = chat(gw, f"otel-dead-{index}")
        assert resp.status == 200, resp.text
    assert time.monotonic() - started < 10
    assert wait_until(lambda: metric(gw, "prism_trace_export_failures_total") >= 1, timeout=5)
    assert wait_until(lambda: metric(gw, "prism_trace_spans_dropped_total", reason="export_failed") >= 30 * 3, timeout=5)
    assert metric(gw, "prism_trace_spans_exported_total") == 0
    assert metric(gw, "prism_requests_total", status="200") == 30
    failures = gw.log_lines("trace export to")
    assert len(failures) == 1 and "requests are not affected" in failures[0], gw.log_tail()


def test_a_hanging_collector_does_not_hold_requests(gateway, mock_upstream):
    slow = OTLPReceiver(delay=5).start()  # answers after the exporter's 2 s timeout
    try:
        cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, server={"operational_routes": "public"},
                          telemetry={"enabled": True, "otlp_endpoint": slow.endpoint})
        gw = gateway(cfg)
        assert chat(gw, "otel-slow-0").status == 200
        time.sleep(1.3)  # the first export is now waiting on the collector
        for index in range(20):
            began = time.monotonic()
            assert chat(gw, f"otel-slow-{index + 1}").status == 200
            assert time.monotonic() - began < 1.0
        assert wait_until(lambda: metric(gw, "prism_trace_export_failures_total") >= 1, timeout=6)
    finally:
        slow.stop()


def test_spans_survive_a_reload_that_turns_telemetry_on(gateway, mock_upstream, receiver):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, admin={"token": ADMIN})
    gw = gateway(cfg)
    assert chat(gw, "otel-before-reload").status == 200
    cfg["telemetry"] = telemetry(receiver, service_name="after-reload")
    gw.config_path.write_text(to_yaml(cfg))
    assert post(gw.url("/-/reload"), headers={"Authorization": f"Bearer {ADMIN}"}).status == 200
    assert chat(gw, "otel-after-reload").status == 200
    root, _ = receiver.wait_for_request("otel-after-reload")
    assert root["resource"]["service.name"] == "after-reload"
    assert not [s for s in receiver.spans() if s["attributes"].get("prism.request_id") == "otel-before-reload"]


def test_spans_still_queued_are_sent_at_shutdown(gateway, mock_upstream, receiver):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, telemetry=telemetry(receiver)))
    assert chat(gw, "otel-last-words").status == 200
    gw.send_signal(signal.SIGTERM)  # before the exporter's next tick
    assert gw.wait_exit(15) == 0, gw.log_tail()
    root, spans = receiver.wait_for_request("otel-last-words", timeout=2)
    assert len(spans) == 4
