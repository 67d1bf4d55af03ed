"""Hostile and careless input through the real binary: the gateway fails closed, never silently
open, and never passes a wrong answer on as a right one."""

import json
import os
import re
import signal
import socket as socketlib
import subprocess
import time

import pytest

from conftest import as_production, clean_env, open_to_gateway
from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config, openai_provider,
                           parse_chunks, post, wait_until)

KEY = "sk-prism-hostile-client-key-01"
SWITCHES = ["auth", "rate_limiting", "cache"]


def config_text(section, value, extra=""):
    keys = f'\n  keys:\n    - {{name: "k", key: "{KEY}"}}' if section == "auth" else ""
    return (f"server:\n  host: 127.0.0.1\nproviders:\n  mock: {{type: mock, models: [m]}}\n"
            f"{section}:\n  enabled: {value}{keys}\n{extra}")


@pytest.mark.parametrize("section", SWITCHES)
@pytest.mark.parametrize("value", ["1", "y", "yes", "on", '"yes please"', '"enabled"', "0", "no", "[true]"])
def test_a_switch_that_is_not_true_or_false_is_refused(run_prism, tmp_path, section, value):
    path = tmp_path / "c.yaml"
    path.write_text(config_text(section, value))
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1, f"{section}.enabled: {value} was accepted:\n{result.stdout}{result.stderr}"
    assert f"{section}.enabled" in result.stderr and f"{path}:6:" in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["1", '"yes please"', "yes"])
def test_the_gateway_does_not_start_on_an_unclear_auth_switch(gateway, value):
    gw = gateway(config_text("auth", value), wait_ready=False)
    assert gw.wait_exit(10) == 1, f"the gateway started with auth.enabled: {value}"
    assert "auth.enabled" in gw.log()


@pytest.mark.parametrize("value", ['"true"', "True", "${AUTH_ON}", '"${AUTH_ON}"'])
def test_quoted_and_expanded_true_turns_auth_on(gateway, value):
    gw = gateway(config_text("auth", value), env={"AUTH_ON": "true"})
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("m")), 401)
    answer = post(gw.v1 + "/chat/completions", chat_body("m"), headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status == 200, answer.text


def test_a_plugin_refuses_an_unclear_switch_given_through_the_middleware_list(gateway):
    # `middleware: [{name, config}]` hands the section to the plugin as it is: it checks too.
    text = ("server:\n  host: 127.0.0.1\nproviders:\n  mock: {type: mock, models: [m]}\n"
            f"middleware:\n  - name: auth\n    config: {{enabled: \"yes please\", keys: [{{key: \"{KEY}\"}}]}}\n")
    gw = gateway(text, wait_ready=False)
    assert gw.wait_exit(10) == 1, "the gateway started with auth's switch unreadable"
    assert "auth.enabled: expected true or false" in gw.log(), gw.log_tail()


# ---- what a client writes never becomes a log line, a label or a URL of its own ----------------


@pytest.mark.parametrize("model", ["m\r\nX-Injected: 1", "m\nlevel=critical", "m\u0000", "m\u001b[31m",
                                   "az/..", "az/../../admin", "m?api-version=1", "m#x", "a\\b", "x" * 300])
def test_a_model_name_that_is_not_a_name_is_400_before_any_upstream(gateway, mock_upstream, model):
    gw = gateway(make_config({"az": openai_provider(mock_upstream.v1_url)}))
    answer = post(gw.v1 + "/chat/completions", chat_body(model))
    error = assert_openai_error(answer, 400, code="invalid_model")
    assert error["param"] == "model"
    assert mock_upstream.chat_requests() == [], "the upstream was called (and would have billed)"
    assert get(gw.url("/healthz")).status == 200


def test_a_model_with_a_newline_cannot_forge_a_text_log_line(gateway):
    gw = gateway(config_text("auth", "true"))
    forged = "m\n2026-01-01T00:00:00.000Z critical prism: forged"
    for headers in ({}, {"Authorization": f"Bearer {KEY}"}):
        # Refused before auth even looks at it (the text log escapes control characters as well).
        assert_openai_error(post(gw.v1 + "/chat/completions", chat_body(forged), headers=headers),
                            400, code="invalid_model")
    gw.wait_for_log(r"request id=.*status=400")
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in gw.log().splitlines()), gw.log_tail()


def test_made_up_model_names_do_not_grow_the_metrics(gateway):
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {"mock": {"type": "mock", "models": ["m"]}}})
    for i in range(60):
        assert_openai_error(post(gw.v1 + "/chat/completions", chat_body(f"made-up-{i}")), 404)
    assert post(gw.v1 + "/chat/completions", chat_body("m")).status == 200
    metrics = get(gw.url("/-/metrics")).text
    models = set(re.findall(r'prism_requests_total\{[^}]*model="([^"]*)"', metrics))
    assert models == {"m", "unknown"}, models


# ---- a 200 that is not an answer is not passed on as one -----------------------------------------

@pytest.mark.parametrize("raw,content_type", [
    (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    (b'{"error": {"message": "quota exceeded", "type": "insufficient_quota"}}', "application/json"),
    (b'{"id": "x", "object": "chat.completion"}', "application/json"),
    (b'{"id": "x", "choices": {"0": {}}}', "application/json"),
    (b'{"id": "x", "choices": []} trailing', "application/json"),
    (b"", "application/json"),
])
def test_a_200_without_a_completion_is_a_502_and_not_cached(gateway, mock_upstream, raw, content_type):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             cache={"enabled": True, "default_ttl": "5m"}))
    mock_upstream.script = [{"raw": raw, "content_type": content_type}]
    first = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "same question"))
    assert_openai_error(first, 502, code="provider_error")
    # Not cached: the same request goes upstream again and gets the real answer.
    second = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "same question"))
    assert second.status == 200, second.text
    assert second.headers.get("x-prism-cache") == "miss"
    assert len(mock_upstream.chat_requests()) == 2


# ---- with auth on, nothing answers a stranger but the probes --------------------------------------

ADMIN = "admin-token-hostile-0123456789"
OPERATIONAL = ["/-/metrics", "/-/health/providers", "/-/health/state"]


def secured(**server):
    return {"server": {"host": "127.0.0.1", **server},
            "providers": {"mock": {"type": "mock", "models": ["m", "m2"]}},
            "auth": {"enabled": True, "keys": [{"name": "k", "key": KEY}]}}


def test_the_model_list_needs_a_client_key_when_auth_is_on(gateway):
    gw = gateway(secured())
    assert_openai_error(get(gw.v1 + "/models"), 401, code="invalid_api_key")
    assert_openai_error(get(gw.v1 + "/models", headers={"Authorization": "Bearer sk-wrong"}), 401)
    listing = get(gw.v1 + "/models", headers={"Authorization": f"Bearer {KEY}"})
    assert listing.status == 200
    assert {m["id"] for m in listing.json()["data"]} == {"m", "m2"}
    assert listing.headers.get("x-prism-request-id")


def test_operational_routes_need_the_admin_token_when_auth_is_on(gateway):
    gw = gateway({**secured(), "admin": {"token": ADMIN}})
    for path in OPERATIONAL:
        assert_openai_error(get(gw.url(path)), 401)
        assert_openai_error(get(gw.url(path), headers={"Authorization": f"Bearer {KEY}"}), 403)
        assert get(gw.url(path), headers={"Authorization": f"Bearer {ADMIN}"}).status == 200, path
    for probe in ("/healthz", "/livez", "/readyz"):
        assert get(gw.url(probe)).status == 200, probe


def test_without_an_admin_token_the_operational_routes_say_how_to_open_them(gateway):
    gw = gateway(secured())
    for path in OPERATIONAL:
        error = assert_openai_error(get(gw.url(path)), 403, code="operational_route_protected")
        assert "server.operational_routes: public" in error["message"]


def test_operational_routes_public_opens_them_and_admin_closes_them_without_auth(gateway):
    opened = gateway(secured(operational_routes="public"))
    for path in OPERATIONAL:
        assert get(opened.url(path)).status == 200, path
    closed = gateway({"server": {"host": "127.0.0.1", "operational_routes": "admin"},
                      "providers": {"mock": {"type": "mock", "models": ["m"]}}, "admin": {"token": ADMIN}})
    for path in OPERATIONAL:
        assert_openai_error(get(closed.url(path)), 401)
    assert get(closed.v1 + "/models").status == 200  # no auth: the list is open


def test_operational_routes_value_is_checked(run_prism, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  operational_routes: everyone\nproviders:\n  m: {type: mock, models: [m]}\n")
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1 and "server.operational_routes" in result.stderr, result.stderr


def test_a_provider_lock_never_sends_a_model_to_a_provider_that_does_not_serve_it(gateway, make_mock):
    a, b = make_mock(), make_mock()
    gw = gateway(make_config({"a": openai_provider(a.v1_url, models=["gpt-4o-mini"]),
                              "b": openai_provider(b.v1_url, models=["gpt-4o"])},
                             auth={"enabled": True, "keys": [{"name": "k", "key": KEY, "models": ["gpt-4o-mini"]}]}))
    auth = {"Authorization": f"Bearer {KEY}", "x-prism-provider-lock": "b"}
    error = assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"), headers=auth),
                                404, code="model_not_found")
    assert "does not serve" in error["message"]
    assert b.chat_requests() == [] and a.chat_requests() == []
    auth["x-prism-provider-lock"] = "a"
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"), headers=auth).status == 200


# ---- secrets are masked by where they stand, not only by their names ------------------------------

def test_url_credentials_and_provider_headers_never_leave_the_process(gateway, mock_upstream):
    url = mock_upstream.v1_url.replace("http://", "http://proxyuser:url-password-9f8e7d@")
    header_secret = "team-header-secret-4c3b2a"
    gw = gateway({**make_config({"up": openai_provider(url, headers={"X-Team": header_secret})},
                                level="debug"),
                  "admin": {"token": ADMIN}})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for path in ("/-/config", "/-/providers"):
        shown = get(gw.url(path), headers=admin)
        assert shown.status == 200, shown.text
        assert "url-password-9f8e7d" not in shown.text and "proxyuser" not in shown.text, shown.text
        assert header_secret not in shown.text, shown.text
    # An upstream that echoes what it was sent: the client and the log see neither secret.
    mock_upstream.error = (401, {"error": {"message": f"bad team {header_secret} for proxyuser:url-password-9f8e7d",
                                           "type": "invalid_request_error"}})
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert answer.status >= 400
    assert header_secret not in answer.text and "url-password-9f8e7d" not in answer.text, answer.text
    gw.wait_for_log(r"request id=")
    assert header_secret not in gw.log() and "url-password-9f8e7d" not in gw.log(), gw.log_tail()


def test_an_admin_created_key_is_redacted_from_debug_body_logs(gateway, mock_upstream):
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)}, level="debug")
    cfg["logging"] = {"level": "debug", "include_bodies": True}
    gw = gateway({**cfg, "admin": {"token": ADMIN}})
    raw = post(gw.url("/-/keys"), {"name": "leaky"}, headers={"Authorization": f"Bearer {ADMIN}"}).json()["key"]
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", f"my key is {raw}")).status == 200
    gw.wait_for_log(r"request id=")
    assert raw not in gw.log(), gw.log_tail()


# ---- a config file cannot exhaust the gateway ---------------------------------------------------


ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
       f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)]
    + ["providers: {m: {type: mock, models: [m]}}", ""])


def test_an_alias_bomb_is_refused_quickly(run_prism, tmp_path):
    assert len(ALIAS_BOMB) < 600
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    t0 = time.monotonic()
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1, result.stdout
    assert "expands to more than" in result.stderr, result.stderr
    assert time.monotonic() - t0 < 3


def test_many_mapping_keys_load_in_linear_time(run_prism, tmp_path):
    path = tmp_path / "wide.yaml"
    lines = ["providers:", "  m: {type: mock, models: [m]}", "model_map:"]
    lines += [f"  alias-{i}: m" for i in range(40_000)]
    path.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    result = run_prism("validate", "--config", str(path), timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 5, f"40,000 keys took {elapsed:.1f}s"


def test_an_oversized_config_a_directory_and_a_second_document_are_errors(run_prism, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("providers: {m: {type: mock, models: [m]}}\n" + "# padding\n" * 500_000)
    result = run_prism("validate", "--config", str(big))
    assert result.returncode == 1 and "larger than 4 MiB" in result.stderr, result.stderr
    directory = tmp_path / "conf.d"
    directory.mkdir()
    result = run_prism("validate", "--config", str(directory))
    assert result.returncode == 1 and "not a regular file" in result.stderr, result.stderr
    two = tmp_path / "two.yaml"
    two.write_text("providers: {m: {type: mock, models: [m]}}\n---\nserver: {port: 1}\n")
    result = run_prism("validate", "--config", str(two))
    assert result.returncode == 1 and "second YAML document" in result.stderr, result.stderr
    assert f"{two}:2:1" in result.stderr, result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_validate_stops_on_a_signal(prism_bin, tmp_path, sig):
    open_to_gateway(tmp_path)
    fifo = tmp_path / "never-written.yaml"
    os.mkfifo(fifo, 0o666)
    os.chmod(fifo, 0o666)
    proc = subprocess.Popen(as_production([str(prism_bin), "validate", "--config", str(fifo)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    try:
        time.sleep(0.3)
        assert proc.poll() is None
        proc.send_signal(sig)
        assert proc.wait(timeout=3) == -sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_file_watcher_refuses_an_alias_bomb_and_keeps_serving(gateway):
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {"mock": {"type": "mock", "models": ["m"]}}})
    rss_before = int(open(f"/proc/{gw.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
    gw.config_path.write_text(ALIAS_BOMB)
    gw.wait_for_log(r"expands to more than", timeout=10)
    assert post(gw.v1 + "/chat/completions", chat_body("m")).status == 200
    rss_after = int(open(f"/proc/{gw.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
    assert rss_after - rss_before < 20 * 1024, f"RSS grew from {rss_before} to {rss_after} KiB"


# ---- HTTP as clients really speak it --------------------------------------------------------------


def raw_exchange(port, data, read_for=2.0):
    """Sends `data` on a fresh connection and reads until the server closes (or `read_for` passes)."""
    s = socketlib.create_connection(("127.0.0.1", port), timeout=read_for)
    try:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socketlib.timeout:
                return b"".join(chunks), False
            if not chunk:
                return b"".join(chunks), True  # closed by the server
            chunks.append(chunk)
        return b"".join(chunks), False
    finally:
        s.close()


def mock_gateway(gateway, **server):
    return gateway({"server": {"host": "127.0.0.1", **server},
                    "providers": {"mock": {"type": "mock", "models": ["m"]}}})


def test_connection_close_is_honoured(gateway):
    gw = mock_gateway(gateway)
    reply, closed = raw_exchange(gw.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and b"connection: close" in reply.lower(), reply
    assert closed, "the connection stayed open after Connection: close"


def test_http_1_0_gets_http_1_0_and_a_close_delimited_stream(gateway):
    gw = mock_gateway(gateway)
    reply, closed = raw_exchange(gw.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200") and closed, reply
    body = json.dumps(chat_body("m", "old client", stream=True)).encode()
    request = (b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    reply, closed = raw_exchange(gw.port, request, read_for=5)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and closed, head
    assert b"transfer-encoding" not in head.lower(), head
    assert payload.startswith(b"data: {"), payload[:200]  # SSE bytes, no chunk-size lines
    assert payload.rstrip().endswith(b"data: [DONE]"), payload[-200:]


def test_a_parse_error_is_an_openai_error_and_oversized_headers_are_431(gateway):
    gw = mock_gateway(gateway)
    reply, closed = raw_exchange(gw.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and closed, reply
    assert json.loads(payload)["error"]["code"] == "malformed_request"
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    reply, closed = raw_exchange(gw.port, huge)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431") and closed, reply[:300]
    assert json.loads(payload)["error"]["code"] == "headers_too_large"


def test_a_413_is_seen_by_a_client_still_sending_its_body(gateway):
    gw = mock_gateway(gateway, max_request_body_size=1000)
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        sent_error = None
        for _ in range(50):  # 50 x 16 KiB after the limit: the old code reset the connection here
            try:
                s.sendall(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
            except OSError as err:
                sent_error = err
                break
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socketlib.timeout, ConnectionResetError) as err:
                pytest.fail(f"reading the 413 failed with {err!r} (sending: {sent_error!r}); got {reply!r}")
            if not chunk:
                break
            reply += chunk
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"request_too_large" in reply


def test_pipelined_requests_are_answered_in_order(gateway):
    gw = mock_gateway(gateway)
    body = json.dumps(chat_body("m", "pipelined")).encode()
    chat = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    # Three requests in one write, the last asking to close: three answers, in order, then the close.
    reply, closed = raw_exchange(gw.port, chat + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                                 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_for=5)
    assert closed, reply[-300:]
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
    assert statuses == [b"200", b"404", b"200"], reply[:600]
    assert reply.index(b"chat.completion") < reply.index(b"not_found") < reply.index(b'{"status":"ok"}')


def test_a_client_waiting_for_100_continue_gets_it_at_once(gateway):
    # curl sends `Expect: 100-continue` past 1 MiB and waits a second for it before its body.
    gw = mock_gateway(gateway)
    body = json.dumps(chat_body("m", "x" * 2000)).encode()
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nExpect: 100-continue\r\nContent-Length: " + str(len(body)).encode()
                  + b"\r\n\r\n")
        s.settimeout(0.5)
        interim = s.recv(4096)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        s.settimeout(5)
        s.sendall(body)
        reply = s.makefile("rb").read()  # to the close the answer asked for
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert b"chat.completion" in reply


# ---- slow clients and exhausted descriptors -------------------------------------------------------

def test_a_header_block_trickled_byte_by_byte_is_cut_at_header_timeout(gateway):
    gw = mock_gateway(gateway, header_timeout="1s", idle_timeout="30s")
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        t0 = time.monotonic()
        reply = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)  # each byte well inside idle_timeout
            if time.monotonic() - t0 > 4:
                break
        s.settimeout(2)
        try:
            while chunk := s.recv(4096):
                reply += chunk
        except (socketlib.timeout, ConnectionResetError):
            pass
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"header_timeout" in reply
    assert elapsed < 4, f"cut only after {elapsed:.1f}s"


def test_the_idle_deadline_counts_from_each_answer_and_never_during_a_request(gateway, mock_upstream):
    """The HTTP handler tells the connection's deadlines of each head and answer: a request slower
    than idle_timeout and header_timeout is answered (its head met the header deadline), a
    keep-alive connection reused inside idle_timeout stays open, and one left idle past it is
    closed."""
    mock_upstream.delay = 3  # longer than idle_timeout and header_timeout
    gw = gateway({"server": {"host": "127.0.0.1", "idle_timeout": "2s", "header_timeout": "1s"},
                  "providers": {"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}})
    body = json.dumps(chat_body("gpt-4o-mini")).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        def answer() -> bytes:
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(65536)
                assert chunk, f"the connection closed before the answer: {reply!r}"
                reply += chunk
            head, _, rest = reply.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            while len(rest) < length:
                chunk = s.recv(65536)
                assert chunk, "the connection closed inside the answer"
                rest += chunk
            return head
        s.sendall(request)
        assert answer().startswith(b"HTTP/1.1 200")  # 3 s in the upstream: neither idle nor late
        mock_upstream.delay = 0
        for _ in range(3):
            time.sleep(0.8)  # idle, but well inside idle_timeout since the last answer
            s.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
        time.sleep(3)
        s.settimeout(3)
        assert s.recv(1) == b"", "the connection outlived idle_timeout after its last answer"
    finally:
        s.close()


def test_read_timeout_is_a_pause_not_a_deadline_for_the_body(gateway):
    gw = mock_gateway(gateway, read_timeout="1s", body_timeout="10s")
    body = json.dumps(chat_body("m", "x" * 4000)).encode()
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
        # 2.4 s in all, never more than 0.3 s between two pieces: longer than read_timeout, fine.
        for i in range(0, len(body), len(body) // 8 + 1):
            s.sendall(body[i:i + len(body) // 8 + 1])
            time.sleep(0.3)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    # A pause longer than read_timeout is a 408.
    s = socketlib.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":")
        t0 = time.monotonic()
        reply = s.recv(65536)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"read_timeout" in reply, reply[:300]
    assert 0.8 < time.monotonic() - t0 < 3


def test_out_of_descriptors_the_gateway_backs_off_logs_and_recovers(gateway, prism_bin, tmp_path):
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {"mock": {"type": "mock", "models": ["m"]}}},
                 wrapper=["prlimit", "--nofile=96:96"])
    held = []
    try:
        for _ in range(120):
            try:
                held.append(socketlib.create_connection(("127.0.0.1", gw.port), timeout=2))
            except OSError:
                break
        gw.wait_for_log(r"accept failed .*pausing new connections", timeout=5)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds():
            fields = open(f"/proc/{gw.proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks
        before = cpu_seconds()
        time.sleep(2)
        spent = cpu_seconds() - before
        assert spent < 0.5, f"{spent:.2f} s of CPU in 2 s while out of descriptors: the accept loop spins"
    finally:
        for s in held:
            s.close()
    assert wait_until(lambda: get(gw.url("/healthz"), timeout=1).status == 200, 3), "no recovery"


# ---- a stream that is cut, stalls or outlives shutdown ends with an error the client can read -----

def final_error(events):
    chunks, done = parse_chunks(events)
    assert done, "the stream did not end with [DONE]"
    assert chunks and "error" in chunks[-1], f"no final error event: {chunks[-2:]}"
    return chunks[-1]["error"]


def test_a_stream_that_ends_without_done_is_reported_not_passed_as_complete(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}))
    mock_upstream.omit_done = True
    with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True)) as stream:
        error = final_error(stream.read_all())
    assert "without data: [DONE]" in error["message"]
    gw.wait_for_log(r"request id=.*status=502")


def test_a_stalled_stream_ends_at_stream_idle_timeout(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url, default_timeout="60s")},
                             server={"stream_idle_timeout": "1s"}))
    mock_upstream.hold_after_chunks = 2  # then silence, never released during the test
    t0 = time.monotonic()
    with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True), timeout=10) as stream:
        error = final_error(stream.read_all())
    elapsed = time.monotonic() - t0
    assert "stream_idle_timeout" in error["message"], error
    assert error["type"] == "timeout_error"
    assert 0.9 < elapsed < 3, f"the stall was noticed after {elapsed:.1f}s"
    assert mock_upstream.disconnected.wait(3), "the stalled upstream transfer was not cancelled"


def test_a_buffered_answer_past_max_response_body_size_is_a_502_not_a_cut(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             server={"max_response_body_size": 65536}))
    mock_upstream.script = [{"raw": b'{"choices": [], "padding": "' + b"x" * 500_000 + b'"}',
                             "content_type": "application/json"}]
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    error = assert_openai_error(answer, 502, code="provider_error")
    assert "max_response_body_size" in error["message"], error
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")).status == 200


def test_shutdown_timeout_ends_streams_with_an_error_event_and_a_log_line(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url, default_timeout="60s")},
                             server={"shutdown_timeout": "1s"}))
    mock_upstream.hold_after_chunks = 2  # never released
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True), timeout=10)
    try:
        first = stream.next_event()
        assert first and mock_upstream.holding.wait(5)
        gw.send_signal(signal.SIGTERM)
        error = final_error([first] + stream.read_all())
    finally:
        stream.close()
    assert error["code"] == "shutting_down", error
    assert gw.wait_exit(5) == 0, gw.log_tail()
    assert re.search(r"request id=.*status=503", gw.log()), gw.log_tail()


@pytest.mark.parametrize("stream", [False, True])
def test_a_200_that_is_no_answer_fails_over_to_the_next_provider(gateway, make_mock, stream):
    first, second = make_mock(), make_mock()
    gw = gateway(make_config({"first": openai_provider(first.v1_url), "second": openai_provider(second.v1_url)},
                             routing={"default_strategy": "round-robin",
                                      "targets": {"pool": [{"provider": "first", "model_override": "gpt-4o-mini",
                                                            "priority": 0},
                                                           {"provider": "second", "model_override": "gpt-4o-mini",
                                                            "priority": 1}]},
                                      "failover": {"enabled": True}}))
    first.script = [{"raw": b"<html>captive portal</html>", "content_type": "text/html"}] * 4
    if stream:
        with SSEStream(gw.v1 + "/chat/completions", chat_body("pool", stream=True)) as s:
            assert s.status == 200
            assert s.headers["x-prism-provider"] == "second"
            chunks, done = parse_chunks(s.read_all())
        assert done and "error" not in chunks[-1]
    else:
        answer = post(gw.v1 + "/chat/completions", chat_body("pool"))
        assert answer.status == 200, answer.text
        assert answer.headers["x-prism-provider"] == "second"
    assert len(first.chat_requests()) == 1 and len(second.chat_requests()) == 1


def test_a_stream_request_answered_with_a_page_is_a_502_not_an_empty_stream(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}))
    mock_upstream.script = [{"raw": b"<html>502 Bad Gateway</html>", "content_type": "text/html"}]
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True))
    error = assert_openai_error(answer, 502, code="provider_error")
    assert "text/html" in error["message"]


def test_reloads_do_not_grow_memory(gateway):
    gw = gateway({**secured(), "admin": {"token": ADMIN}})
    admin = {"Authorization": f"Bearer {ADMIN}"}

    def rss_kib():
        return int(open(f"/proc/{gw.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
    for _ in range(50):  # warm-up: allocator pools, first-use tables
        assert post(gw.url("/-/reload"), headers=admin).status == 200
    growths = []
    for _ in range(2):
        time.sleep(1)
        before = rss_kib()
        for _ in range(300):
            assert post(gw.url("/-/reload"), headers=admin).status == 200
        time.sleep(2)
        growths.append(rss_kib() - before)
    # Each reload used to keep ~5 KiB (fresh libffi host tables per instance): 1.5 MiB per batch,
    # in both. The heap also grows now and then by a step of a few hundred KiB that stays (malloc
    # extending an arena), in one batch or the other: a leak is growth in both.
    assert min(growths) < 300, f"RSS grew {growths} KiB over two batches of 300 reloads"


# ---- review follow-ups ------------------------------------------------------------------------------

def test_repeated_200s_that_are_no_answer_open_the_circuit(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             routing={"circuit_breaker": {"enabled": True, "failure_threshold": 3}}))
    mock_upstream.script = [{"raw": b"<html>portal</html>", "content_type": "text/html"}] * 3
    for _ in range(3):
        assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")), 502)
    report = get(gw.url("/-/health/providers")).json()
    state = json.dumps(report)
    assert '"state": "open"' in state or '"state":"open"' in state, report


def test_auth_through_the_middleware_list_protects_the_operational_routes(gateway):
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {"mock": {"type": "mock", "models": ["m"]}},
                  "middleware": [{"name": "auth", "config": {"enabled": True, "keys": [{"key": KEY}]}}]})
    assert_openai_error(get(gw.url("/-/metrics")), 403, code="operational_route_protected")
    assert_openai_error(get(gw.v1 + "/models"), 401)


@pytest.mark.parametrize("key", ["read_timeout", "header_timeout", "body_timeout", "stream_idle_timeout"])
def test_a_zero_timeout_that_would_cut_every_request_is_refused(run_prism, tmp_path, key):
    path = tmp_path / "c.yaml"
    path.write_text(f"server:\n  {key}: 0s\nproviders:\n  m: {{type: mock, models: [m]}}\n")
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1 and f"server.{key}" in result.stderr and "more than 0" in result.stderr, result.stderr


def test_ordinary_header_values_are_not_redacted_from_messages(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url,
                                                    headers={"anthropic-version": "2023-06-01",
                                                             "x-accept": "application/json"})}))
    mock_upstream.script = [{"raw": b"<html>oops</html>", "content_type": "application/json"}]
    error = assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")), 502)
    assert "application/json" in error["message"], error
