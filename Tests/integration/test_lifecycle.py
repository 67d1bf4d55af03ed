"""SIGTERM: stop accepting, let in-flight requests finish (up to server.shutdown_timeout), exit 0."""

import http.client
import signal
import socket
import threading
import time

import pytest

from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config,
                           openai_provider, parse_chunks, post, stream_text)

SHUTDOWN_TIMEOUT = 10


@pytest.fixture
def gw(gateway, mock_upstream):
    cfg = make_config({"mockai": openai_provider(mock_upstream.v1_url, default_timeout="30s")},
                      server={"shutdown_timeout": f"{SHUTDOWN_TIMEOUT}s"})
    return gateway(cfg)


def in_background(fn):
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as err:  # noqa: BLE001 - reported by the test
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def wait_until_draining(gw, timeout=3.0):
    """Polls with new connections until one is refused or answered 503. Returns what happened."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            resp = get(gw.url("/v1/models"), timeout=2)
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            return "refused"
        except socket.timeout:
            pytest.fail("a new connection after SIGTERM hung instead of being refused or answered 503")
        if resp.status == 503:
            assert_openai_error(resp, 503, code="service_unavailable")
            return "503"
        seen.append(resp.status)
        time.sleep(0.05)
    pytest.fail(f"new requests were still served {timeout}s after SIGTERM (statuses {seen[-5:]})")


def test_sigterm_lets_in_flight_request_finish(gw, mock_upstream):
    mock_upstream.hold_response = True
    thread, box = in_background(lambda: post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"),
                                             timeout=SHUTDOWN_TIMEOUT + 5))
    assert mock_upstream.holding.wait(5), "the request never reached the upstream"

    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    wait_until_draining(gw)
    assert gw.proc.poll() is None, "the gateway exited with a request in flight"

    mock_upstream.release.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    resp = box["result"]
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == mock_upstream.content

    code = gw.wait_exit(SHUTDOWN_TIMEOUT + 2 - (time.monotonic() - t0))
    assert code == 0, f"exit code {code}; log:\n{gw.log_tail()}"


def test_sigterm_lets_in_flight_stream_finish(gw, mock_upstream):
    mock_upstream.hold_after_chunks = 2
    stream = SSEStream(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True), timeout=10)
    try:
        first = stream.next_event()
        assert first and mock_upstream.holding.wait(5)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        wait_until_draining(gw)
        mock_upstream.release.set()
        chunks, done = parse_chunks([first] + stream.read_all())
    finally:
        stream.close()
    assert done
    assert stream_text(chunks) == mock_upstream.content
    code = gw.wait_exit(SHUTDOWN_TIMEOUT + 2 - (time.monotonic() - t0))
    assert code == 0, f"exit code {code}; log:\n{gw.log_tail()}"


def test_idle_sigterm_exits_promptly(gw):
    assert get(gw.url("/healthz")).status == 200
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    code = gw.wait_exit(3)
    assert code == 0, f"exit code {code} after {time.monotonic() - t0:.1f}s; log:\n{gw.log_tail()}"


def test_shutdown_timeout_bounds_the_drain(gateway, mock_upstream):
    cfg = make_config({"mockai": openai_provider(mock_upstream.v1_url, default_timeout="60s")},
                      server={"shutdown_timeout": "1s"})
    gw = gateway(cfg)
    mock_upstream.hold_response = True  # never released during the test
    thread, box = in_background(lambda: post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"),
                                             timeout=15))
    assert mock_upstream.holding.wait(5)
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    code = gw.wait_exit(4)
    elapsed = time.monotonic() - t0
    assert code is not None, "the gateway did not exit within shutdown_timeout (1s) + 3s"
    assert code >= 0, f"the gateway died by signal {-code}"
    assert elapsed >= 0.8, f"exited after {elapsed:.2f}s, before shutdown_timeout with a request in flight"
    thread.join(timeout=5)
