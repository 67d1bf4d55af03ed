"""A replay upstream for golden tests and native-format mocks: a loopback HTTP/1.1 server that
records every request and answers it from a script, in whatever wire format the script spells.

A reply is a dict (the "upstream_response" of a golden fixture, see Tests/golden/README.md):

- ``status`` (default 200) and ``headers`` (default: a JSON or event-stream content type);
- ``body``: a JSON value, sent as JSON; or ``body_text``: sent as is;
- ``sse``: a list of events, each ``{"event"?: name, "data": JSON value or string, "id"?: str}``,
  ``{"comment": text}`` or ``{"raw": text}`` (exact bytes); sent chunked, one event per chunk,
  lines ended by ``sse_line_ending`` (default ``"\\n"``);
- ``ndjson``: a list of JSON values, one per line (chunked);
- ``eventstream``: a list of AWS event-stream frames (``application/vnd.amazon.eventstream``, as
  Bedrock's ConverseStream sends), each ``{"headers": {name: string value}, "payload": JSON value
  or string, "corrupt_crc"?: true}``; the encoded bytes are sent chunked, one frame per chunk, or
  in chunks of ``eventstream_chunk_size`` bytes that split frames anywhere;
- ``abort``: true to cut the connection after the events (no terminating chunk).

``ReplayUpstream(reply=...)`` answers every request with that reply; ``ReplayUpstream(responder=f)``
calls ``f(recorded_request)`` for each request and sends the reply it returns (dynamic mocks).
"""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest


@dataclass
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict  # lower-case names -> last value
    body_bytes: bytes
    body: Any  # parsed JSON, or None
    time: float = field(default_factory=time.monotonic)


Responder = Callable[[RecordedRequest], dict]


class ReplayUpstream:
    def __init__(self, reply: Optional[dict] = None, responder: Optional[Responder] = None,
                 host: str = "127.0.0.1") -> None:
        self.reply = reply
        self.responder = responder
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        # The body bytes of every answer sent (without HTTP chunk framing), in order: what a
        # pass-through must deliver to its client byte for byte.
        self.sent: list[bytes] = []
        self.server = http.server.ThreadingHTTPServer((host, 0), _Handler)
        self.server.daemon_threads = True
        self.server.replay = self  # type: ignore[attr-defined]
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"replay-upstream-{self.port}", daemon=True)

    def start(self) -> "ReplayUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def recorded(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)

    def last(self) -> RecordedRequest:
        items = self.recorded()
        assert items, "the upstream received no request"
        return items[-1]

    def reply_for(self, request: RecordedRequest) -> dict:
        if self.responder is not None:
            return self.responder(request)
        if self.reply is not None:
            return self.reply
        return {"status": 500, "body": {"message": "replay upstream: no reply scripted"}}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "replay-upstream/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        replay: ReplayUpstream = self.server.replay  # type: ignore[attr-defined]
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                  raw, body)
        with replay.lock:
            replay.requests.append(request)
        def record(sent: bytes) -> None:
            with replay.lock:
                replay.sent.append(sent)
        try:
            send_reply(self, replay.reply_for(request), record)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


def _sse_bytes(item: dict, eol: str) -> bytes:
    if "raw" in item:
        return item["raw"].encode()
    if "comment" in item:
        return f":{item['comment']}{eol}{eol}".encode()
    lines = []
    if item.get("event") is not None:
        lines.append(f"event: {item['event']}")
    if item.get("id") is not None:
        lines.append(f"id: {item['id']}")
    data = item.get("data")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines += [f"data: {line}" for line in text.split("\n")]
    return (eol.join(lines) + eol + eol).encode()


def encode_event_frame(headers: dict, payload: Any, corrupt_crc: bool = False) -> bytes:
    """One AWS event-stream frame: prelude (total and headers length, CRC-32 of both), string
    headers (type 7), payload, CRC-32 of everything before it. `corrupt_crc` flips the last CRC."""
    header_bytes = b"".join(struct.pack(">B", len(name.encode())) + name.encode() + b"\x07"
                            + struct.pack(">H", len(value.encode())) + value.encode()
                            for name, value in headers.items())
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", len(header_bytes) + len(body) + 16, len(header_bytes))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + header_bytes + body
    crc = zlib.crc32(message) ^ (0xFFFFFFFF if corrupt_crc else 0)
    return message + struct.pack(">I", crc)


def _eventstream_chunks(reply: dict) -> list[bytes]:
    frames = [encode_event_frame(f.get("headers") or {}, f.get("payload", {}), bool(f.get("corrupt_crc")))
              for f in reply["eventstream"]]
    size = reply.get("eventstream_chunk_size")
    if not size:
        return frames
    data = b"".join(frames)
    return [data[i:i + size] for i in range(0, len(data), size)]


def send_reply(handler: http.server.BaseHTTPRequestHandler, reply: dict,
               record: Optional[Callable[[bytes], None]] = None) -> bytes:
    """Sends the scripted answer; returns its body bytes as sent (without chunk framing).

    ``record`` gets those bytes before the first is written: a test that reads them once its
    client has the answer must never find them missing (recording after the write raced it)."""
    status = int(reply.get("status", 200))
    headers = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
    events: Optional[list[bytes]] = None
    if "eventstream" in reply:
        events = _eventstream_chunks(reply)
        headers.setdefault("content-type", "application/vnd.amazon.eventstream")
    elif "sse" in reply:
        eol = reply.get("sse_line_ending", "\n")
        events = [_sse_bytes(item, eol) for item in reply["sse"]]
        headers.setdefault("content-type", "text/event-stream")
    elif "ndjson" in reply:
        events = [(json.dumps(item) + "\n").encode() for item in reply["ndjson"]]
        headers.setdefault("content-type", "application/x-ndjson")
    handler.send_response(status)
    if events is None:
        if "body_text" in reply:
            data = reply["body_text"].encode()
        else:
            data = json.dumps(reply.get("body", {})).encode()
            headers.setdefault("content-type", "application/json")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if record is not None:
            record(data)
        handler.wfile.write(data)
        handler.wfile.flush()
        return data
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    if record is not None:
        record(b"".join(events))
    handler.wfile.flush()
    for event in events:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        handler.wfile.flush()
    if reply.get("abort"):
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return b"".join(events)
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
    return b"".join(events)


@pytest.fixture
def replay_upstream():
    """replay_upstream(reply=None, responder=None) -> a started ReplayUpstream, stopped after the test."""
    started: list[ReplayUpstream] = []

    def make(reply: Optional[dict] = None, responder: Optional[Responder] = None) -> ReplayUpstream:
        upstream = ReplayUpstream(reply=reply, responder=responder).start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        upstream.stop()
