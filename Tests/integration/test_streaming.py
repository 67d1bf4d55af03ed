"""Streaming behaviour seen on the wire: chunks forwarded as they arrive, client disconnects
cancel the upstream, upstream failures after the first byte end with an error event."""

import json
import socket
import threading

import openai
import pytest

from prism_helpers import (SSEStream, chat_body, make_config, openai_provider, parse_chunks, post,
                           stream_text)

PROVIDER = "mockai"
FIRST_EVENT_TIMEOUT = 5.0


@pytest.fixture
def gw(gateway, mock_upstream):
    return gateway(make_config({PROVIDER: openai_provider(mock_upstream.v1_url)}))


def open_stream(gw, **extra):
    return SSEStream(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True, **extra),
                     timeout=FIRST_EVENT_TIMEOUT)


def first_event(stream, mock):
    try:
        event = stream.next_event()
    except socket.timeout:
        pytest.fail(f"no SSE event from the gateway within {FIRST_EVENT_TIMEOUT}s while the upstream "
                    f"had sent its first chunks and was waiting (holding={mock.holding.is_set()}): "
                    f"the gateway buffers the stream")
    assert event is not None, "the stream ended before its first event"
    return event


def test_first_chunk_is_forwarded_before_upstream_finishes(gw, mock_upstream):
    mock_upstream.hold_after_chunks = 2  # role chunk + first content chunk, then wait for release
    with open_stream(gw) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = first_event(stream, mock_upstream)
        assert mock_upstream.holding.wait(5)  # the upstream is blocked mid-stream ...
        assert not mock_upstream.stream_finished.is_set(), "upstream finished before the first event"
        first = json.loads(event)
        assert first["object"] == "chat.completion.chunk"

        mock_upstream.release.set()
        rest = stream.read_all()
    chunks, done = parse_chunks([event] + rest)
    assert done
    assert stream_text(chunks) == mock_upstream.content
    assert mock_upstream.stream_finished.wait(2)  # the mock sets it after its last write: no race


def test_client_disconnect_cancels_upstream(gw, mock_upstream):
    mock_upstream.hold_after_chunks = 2
    stream = open_stream(gw)
    try:
        assert stream.status == 200
        first_event(stream, mock_upstream)
        assert mock_upstream.holding.wait(2)
    finally:
        stream.abort()
    assert mock_upstream.disconnected.wait(5), \
        "the upstream connection stayed open 5 s after the client went away"
    assert not mock_upstream.stream_finished.is_set()

    # The gateway is still fine.
    mock_upstream.hold_after_chunks = None
    resp = post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"))
    assert resp.status == 200


def test_upstream_dies_mid_stream(gw, mock_upstream):
    mock_upstream.die_after_chunks = 2  # role chunk + "Hello", then the socket closes, no [DONE]
    with open_stream(gw) as stream:
        assert stream.status == 200
        events = stream.read_all()
    assert len(events) == 4, f"expected 2 chunks, an error event and [DONE]; got {events}"
    chunks = [json.loads(e) for e in events[:2]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert stream_text(chunks) == mock_upstream.content_pieces[0]
    error = json.loads(events[2])
    assert set(error) == {"error"}, error
    assert {"message", "type", "param", "code"} <= set(error["error"]), error
    assert error["error"]["message"]
    assert events[3] == "[DONE]"


def test_upstream_dies_mid_stream_sdk_raises(gw, mock_upstream):
    mock_upstream.die_after_chunks = 2
    client = openai.OpenAI(base_url=gw.v1, api_key="sk-unused", max_retries=0, timeout=10)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True):
            received.append(chunk)
    assert "".join(ch.delta.content or "" for c in received for ch in c.choices) == "Hello"


def test_sse_framing(gw, mock_upstream):
    """Each event is exactly `data: <json>\\n\\n`; the stream ends with `data: [DONE]\\n\\n`."""
    with open_stream(gw) as stream:
        raw = stream.read_body().decode()
    assert raw.endswith("data: [DONE]\n\n"), raw[-200:]
    pieces = raw.split("\n\n")
    assert pieces[-1] == ""
    datas = []
    for piece in pieces[:-1]:
        lines = [line for line in piece.split("\n") if not line.startswith(":")]
        if not lines:
            continue  # a comment-only keep-alive
        assert len(lines) == 1 and lines[0].startswith("data: "), piece
        datas.append(lines[0][len("data: "):])
    chunks, done = parse_chunks(datas)
    assert done and stream_text(chunks) == mock_upstream.content


def test_concurrent_streams(gw, mock_upstream):
    results: dict = {}

    def run(i):
        try:
            with open_stream(gw) as stream:
                results[i] = parse_chunks(stream.read_all())
        except Exception as err:  # noqa: BLE001 - reported below
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 8, results
    for i, res in results.items():
        assert not isinstance(res, Exception), f"stream {i}: {res!r}"
        chunks, done = res
        assert done and stream_text(chunks) == mock_upstream.content, i
    assert len(mock_upstream.chat_requests()) == 8


def test_a_client_that_stops_reading_is_cut_off_after_write_timeout(gateway, mock_upstream):
    """server.write_timeout: a stalled reader does not hold a stream (and its upstream) forever."""
    import socket as socket_module
    import time as time_module
    from prism_helpers import make_config, openai_provider
    # A long stream (8 MB) the client never reads: the socket buffers fill, then the gateway's queue.
    mock_upstream.content_pieces = ["x" * 4000] * 2000
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, server={"write_timeout": "1s"}))
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    client = socket_module.create_connection(("127.0.0.1", gw.port), timeout=10)
    client.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    started = time_module.monotonic()
    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        # The request ends as "client gone" (499) once the connection was unwritable for 1 s.
        gw.wait_for_log(r"status=499", timeout=8)
        assert time_module.monotonic() - started < 6
    finally:
        client.close()


def test_a_slow_reader_gets_every_byte_once(gateway, mock_upstream):
    """Backpressure pauses the upstream transfer while the client reads slowly; when it goes on,
    nothing may be lost or sent twice (libcurl delivers the chunk that met the pause again)."""
    import time as time_module
    # ~6 MB of numbered pieces: more than the client's and the gateway's socket buffers hold.
    pieces = [f"<{index:05d}>" + "y" * 2000 for index in range(3000)]
    mock_upstream.content_pieces = pieces
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}))
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    client = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    received = bytearray()
    try:
        while True:
            data = client.recv(16384)
            if not data:
                break
            received += data
            if received.endswith(b"\r\n0\r\n\r\n"):
                break
            time_module.sleep(0.002)  # a slow reader: the gateway's socket fills and the transfer pauses
    finally:
        client.close()
    head, _, payload = bytes(received).partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    # The answer is chunked: undo the chunk framing, then read the events.
    events, rest = bytearray(), payload
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        events += rest[:size]
        rest = rest[size + 2:]
    datas = [line[6:] for line in bytes(events).decode().split("\n") if line.startswith("data: ")]
    chunks, done = parse_chunks(datas)
    assert done
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk.get("choices"))
    assert text == "".join(pieces), f"{len(text)} characters received, {len(''.join(pieces))} sent"
