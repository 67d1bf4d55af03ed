"""Self-checks of the mock upstream, straight from the official OpenAI SDK (no gateway).

If these fail, the gateway tests cannot be trusted; they need no binary."""

import socket
import threading
import time

import openai
import pytest

from prism_helpers import SSEStream, chat_body, get, parse_chunks, post, stream_text


MSGS = [{"role": "user", "content": "x"}]


def sdk(mock, **kw):
    return openai.OpenAI(base_url=mock.v1_url, api_key="sk-direct", max_retries=0, timeout=10, **kw)


def test_non_stream(mock_upstream):
    resp = sdk(mock_upstream).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == mock_upstream.content
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (13, 7, 20)
    req = mock_upstream.last_chat()
    assert req.body["messages"] == [{"role": "user", "content": "hi"}]
    assert req.headers["authorization"] == "Bearer sk-direct"


def test_stream_without_usage(mock_upstream):
    chunks = list(sdk(mock_upstream).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == mock_upstream.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)


def test_stream_with_usage(mock_upstream):
    chunks = list(sdk(mock_upstream).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 20
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_raw_stream_wire_format(mock_upstream):
    with SSEStream(mock_upstream.v1_url + "/chat/completions",
                   chat_body("gpt-4o", stream=True, stream_options={"include_usage": True})) as s:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["transfer-encoding"] == "chunked"
        events = s.read_all()
    chunks, done = parse_chunks(events)
    assert done
    assert "usage" in chunks[0] and chunks[0]["usage"] is None
    assert stream_text(chunks) == mock_upstream.content


def test_errors(mock_upstream):
    mock_upstream.fail_with(500, "The server had an error while processing your request.")
    with pytest.raises(openai.InternalServerError) as info:
        sdk(mock_upstream).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert info.value.status_code == 500
    assert "The server had an error" in str(info.value)
    mock_upstream.fail_with(429, "Rate limit reached", type="requests", code="rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError):
        sdk(mock_upstream).chat.completions.create(model="gpt-4o", messages=MSGS)


def test_required_key(mock_upstream):
    mock_upstream.require_api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError):
        sdk(mock_upstream).models.list()
    assert [m.id for m in openai.OpenAI(base_url=mock_upstream.v1_url, api_key="sk-right",
                                        max_retries=0, timeout=10).models.list()] == mock_upstream.models


def test_invalid_url(mock_upstream):
    resp = post(mock_upstream.base_url + "/chat/completions", chat_body("gpt-4o"), timeout=5)
    assert resp.status == 404
    assert resp.json()["error"]["message"].startswith("Invalid URL")


def test_models_and_embeddings(mock_upstream):
    client = sdk(mock_upstream)
    assert [m.id for m in client.models.list()] == mock_upstream.models
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # base64 on the wire
    assert mock_upstream.recorded("/embeddings")[-1].body["encoding_format"] == "base64"
    assert [d.embedding for d in emb.data] == [mock_upstream.embedding_for(i, 8) for i in range(2)]
    emb = client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float",
                                   dimensions=4)
    assert emb.data[0].embedding == mock_upstream.embedding_for(0, 4)
    assert emb.usage.prompt_tokens == 1


def test_delay(mock_upstream):
    mock_upstream.delay = 0.5
    t0 = time.monotonic()
    assert post(mock_upstream.v1_url + "/chat/completions", chat_body("gpt-4o"), timeout=5).status == 200
    assert time.monotonic() - t0 >= 0.5


def test_slow_stream_and_disconnect(mock_upstream):
    mock_upstream.hold_after_chunks = 2
    s = SSEStream(mock_upstream.v1_url + "/chat/completions", chat_body("gpt-4o", stream=True), timeout=5)
    first = s.next_event()
    assert '"role": "assistant"' in first
    s.next_event()
    assert mock_upstream.holding.wait(2)
    assert not mock_upstream.stream_finished.is_set()
    s.abort()
    assert mock_upstream.disconnected.wait(2)


def test_slow_stream_release(mock_upstream):
    mock_upstream.hold_after_chunks = 1
    s = SSEStream(mock_upstream.v1_url + "/chat/completions", chat_body("gpt-4o", stream=True), timeout=5)
    s.next_event()
    assert mock_upstream.holding.wait(2)
    threading.Timer(0.1, mock_upstream.release.set).start()
    chunks, done = parse_chunks([s.next_event()] + s.read_all())
    s.close()
    assert done and mock_upstream.stream_finished.wait(2)
    assert stream_text(chunks) == mock_upstream.content


def test_die_mid_stream(mock_upstream):
    mock_upstream.die_after_chunks = 2
    sock = socket.create_connection((mock_upstream.host, mock_upstream.port), timeout=5)
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}'
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    raw = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        raw += data
    sock.close()
    assert raw.count(b"data: {") == 2
    assert b"[DONE]" not in raw
    assert not raw.endswith(b"0\r\n\r\n")
    assert not mock_upstream.stream_finished.is_set()


def test_disconnect_during_delay(mock_upstream):
    mock_upstream.delay = 30
    sock = socket.create_connection((mock_upstream.host, mock_upstream.port), timeout=5)
    body = b'{"model":"gpt-4o","messages":[]}'
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert mock_upstream.request_received.wait(2)
    sock.close()
    assert mock_upstream.disconnected.wait(2)


def test_get_models_path(mock_upstream):
    assert get(mock_upstream.v1_url + "/models", timeout=5).json()["object"] == "list"
