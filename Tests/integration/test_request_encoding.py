"""Compressed request bodies (`Content-Encoding: gzip`, `deflate`, `zstd`) and agent-sized ones:
decoded before anything reads them, bounded by server.max_request_body_size after decoding (a
small bomb is a 413, not a large allocation), refused clearly when unknown or corrupt; a quiet
stream gets keep-alives."""

from __future__ import annotations

import gzip
import json
import zlib

import zstandard

from prism_helpers import SSEStream, chat_body, make_config, openai_provider, post


def encoded(body: dict | bytes, coding: str) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if coding == "gzip":
        return gzip.compress(raw)
    if coding == "deflate":
        return zlib.compress(raw)
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    raise ValueError(coding)


def test_compressed_bodies_are_decoded(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)}))
    for coding in ("gzip", "deflate", "zstd"):
        body = chat_body("gpt-4o-mini", content=f"compressed with {coding}")
        resp = post(gw.url("/v1/chat/completions"), encoded(body, coding),
                    headers={"content-type": "application/json", "content-encoding": coding})
        assert resp.status == 200, (coding, resp.text)
        assert mock_upstream.last_chat().body["messages"][0]["content"] == f"compressed with {coding}"
        assert "content-encoding" not in mock_upstream.last_chat().headers


def test_raw_deflate_and_stacked_codings(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)}))
    raw = json.dumps(chat_body("gpt-4o-mini", content="raw")).encode()
    compressor = zlib.compressobj(wbits=-15)
    resp = post(gw.url("/v1/chat/completions"), compressor.compress(raw) + compressor.flush(),
                headers={"content-type": "application/json", "content-encoding": "deflate"})
    assert resp.status == 200, resp.text
    stacked = zstandard.ZstdCompressor().compress(gzip.compress(raw))
    resp = post(gw.url("/v1/chat/completions"), stacked,
                headers={"content-type": "application/json", "content-encoding": "gzip, zstd"})
    assert resp.status == 200, resp.text


def test_a_decompression_bomb_is_a_413(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)},
                             server={"max_request_body_size": 1_000_000}))
    bomb = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"A" * 50_000_000 + b'"}]}'
    for coding in ("gzip", "zstd"):
        payload = encoded(bomb, coding)
        assert len(payload) < 200_000
        resp = post(gw.url("/v1/chat/completions"), payload,
                    headers={"content-type": "application/json", "content-encoding": coding})
        assert resp.status == 413, resp.text
        assert resp.json()["error"]["code"] == "request_too_large"
    assert mock_upstream.chat_requests() == []


def test_unknown_and_corrupt_encodings(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)}))
    resp = post(gw.url("/v1/chat/completions"), b"xx", headers={"content-type": "application/json",
                                                                "content-encoding": "br"})
    assert resp.status == 415 and resp.json()["error"]["code"] == "unsupported_content_encoding"
    for coding in ("gzip", "zstd"):
        resp = post(gw.url("/v1/chat/completions"), b"not compressed at all",
                    headers={"content-type": "application/json", "content-encoding": coding})
        assert resp.status == 400 and resp.json()["error"]["code"] == "invalid_content_encoding"
    truncated = encoded(chat_body("gpt-4o-mini"), "gzip")[:-12]
    resp = post(gw.url("/v1/chat/completions"), truncated,
                headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert resp.status == 400, resp.text
    assert mock_upstream.chat_requests() == []


def test_agent_sized_bodies_pass_by_default(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)}))
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 4000}
               for i in range(4001)]
    body = json.dumps({"model": "gpt-4o-mini", "messages": history}).encode()
    assert 16_000_000 < len(body) < 32_000_000
    resp = post(gw.url("/v1/chat/completions"), body, headers={"content-type": "application/json"}, timeout=60)
    assert resp.status == 200, resp.text[:300]
    assert mock_upstream.last_chat().body_bytes == body  # every byte, in order


def test_quiet_streams_get_keep_alives(gateway, mock_upstream):
    gw = gateway(make_config({"openai": openai_provider(mock_upstream.v1_url)}, server={"stream_keepalive": "200ms"}))
    mock_upstream.hold_after_chunks = 2
    with SSEStream(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True)) as stream:
        lines = []
        while sum(line.startswith(b": keep-alive") for line in lines) < 2:
            lines.append(stream.response.readline())
        mock_upstream.release.set()
        rest = stream.read_body()
    assert b"data: [DONE]" in rest
