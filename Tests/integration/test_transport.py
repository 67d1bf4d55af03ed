"""Transport behaviour the provider config controls: max_concurrent admission and keep-alive reuse."""
import os
import threading

from prism_helpers import chat_body, make_config, openai_provider, post, wait_until


def test_max_concurrent_queues_requests_beyond_the_limit(gateway, mock_upstream):
    gw = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url, max_concurrent=1)}))
    mock_upstream.hold_response = True
    results = []

    def call():
        results.append(post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"), timeout=20))

    clients = [threading.Thread(target=call) for _ in range(2)]
    for client in clients:
        client.start()
    assert mock_upstream.holding.wait(5), "the first request never reached the upstream"
    # With max_concurrent 1 the second request waits inside the gateway, not at the upstream.
    assert not wait_until(lambda: len(mock_upstream.chat_requests()) > 1, timeout=1.0)
    mock_upstream.hold_response = False
    mock_upstream.release.set()
    for client in clients:
        client.join(20)
    assert [r.status for r in results] == [200, 200]
    assert len(mock_upstream.chat_requests()) == 2


def test_requests_without_a_limit_run_concurrently(gateway, mock_upstream):
    gw = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url)}))
    mock_upstream.hold_response = True
    results = []
    clients = [threading.Thread(target=lambda: results.append(
        post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"), timeout=20))) for _ in range(3)]
    for client in clients:
        client.start()
    assert wait_until(lambda: len(mock_upstream.chat_requests()) == 3, timeout=5)
    mock_upstream.hold_response = False
    mock_upstream.release.set()
    for client in clients:
        client.join(20)
    assert [r.status for r in results] == [200, 200, 200]


def test_upstream_connections_are_kept_alive(gateway, mock_upstream):
    gw = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url)}))
    for _ in range(5):
        assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini")).status == 200
    ports = {request.client_port for request in mock_upstream.chat_requests()}
    # Each event loop keeps its own connection pool (a request's transfer runs on its client
    # connection's loop), and client connections are dealt to the loops in turn: at most one
    # upstream connection per loop, each reused.
    loops = os.cpu_count() or 1
    assert len(ports) <= min(loops, 4), f"expected reused upstream connections (one per loop), saw client ports {ports}"


def test_a_large_body_is_sent_again_whole_when_a_kept_alive_connection_fails(gateway, mock_upstream):
    """A body past 64 KiB is read by libcurl through a callback, not from a copy. When a kept-alive
    upstream connection turns out dead after the request went out (the upstream read it and closed
    without answering), libcurl resends on a fresh connection and must rewind that body; retries
    are off, so only that rewind can save the request."""
    import http.client
    import json

    gw = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url)}))
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=15)  # one client connection: one loop

    def send(body: bytes) -> int:
        connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status

    assert send(json.dumps(chat_body("gpt-4o-mini")).encode()) == 200  # the upstream connection now pooled
    large = json.dumps(chat_body("gpt-4o-mini", "0123456789abcdef" * 20_000)).encode()
    mock_upstream.script = [{"reset": True}]
    assert send(large) == 200
    requests = mock_upstream.chat_requests()
    assert len(requests) == 3, "expected the reset request to be sent again"
    assert requests[1].body_bytes == large and requests[2].body_bytes == large
    assert requests[1].client_port != requests[2].client_port  # the second time on a fresh connection
    assert requests[0].client_port == requests[1].client_port  # the first time on the kept-alive one


def test_an_outbound_proxy_from_the_environment_is_used(gateway, tmp_path):
    """http_proxy in the gateway's environment sends upstream requests through that proxy (the
    transport says "no proxy" to libcurl only when the environment names none)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            seen.append((self.path, json.loads(body)["model"]))
            answer = json.dumps({"id": "chatcmpl-proxy", "object": "chat.completion", "created": 1,
                                 "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "via the proxy"}}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        # The upstream's name resolves nowhere: only the proxy can answer for it.
        gw = gateway(make_config({"far": openai_provider("http://upstream.invalid/v1")}),
                     env={"http_proxy": f"http://127.0.0.1:{proxy.server_address[1]}",
                          "NO_PROXY": None, "no_proxy": None})
        resp = post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"), timeout=20)
        assert resp.status == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "via the proxy"
        assert seen == [("http://upstream.invalid/v1/chat/completions", "gpt-4o-mini")]
    finally:
        proxy.shutdown()
