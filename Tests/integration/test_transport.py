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
