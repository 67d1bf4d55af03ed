"""Pooled upstream connections. Between requests the gateway leaves an idle upstream socket in its
event loop's epoll set ("parked"), rather than removing it and adding it back for the next
request. These tests cover what can happen to a parked socket: the upstream closes it, resets
it, or writes an answer nobody asked for on it (a `408` before closing). The gateway must not
spin on it, must open a new connection when needed, and every answer must be the one to its own
request."""

import json
import socket
import threading
import time

from prism_helpers import chat_body, make_config, openai_provider, post

ANSWER = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()


class IdleClosingUpstream:
    """A keep-alive HTTP/1.1 upstream that answers one request per connection, then, after
    `linger` seconds, ends the connection idle in the gateway's pool: `how` is "close" (FIN),
    "reset" (RST) or "408" (an unsolicited `408 Request Timeout`, then FIN)."""

    def __init__(self, how: str, linger: float = 0.05, host: str = "127.0.0.1") -> None:
        self.how, self.linger = how, linger
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                         + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)
            time.sleep(self.linger)
            if self.how == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            elif self.how == "408":
                conn.sendall(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    def stop(self) -> None:
        self.listener.close()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def test_an_upstream_that_ends_idle_connections_is_reconnected_without_spinning(gateway):
    for how in ("close", "reset", "408"):
        upstream = IdleClosingUpstream(how)
        try:
            gw = gateway(make_config({"up": openai_provider(f"http://127.0.0.1:{upstream.port}/v1",
                                                            models=["gpt-4o-mini"])}))
            for _ in range(8):
                started = time.monotonic()
                answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
                assert answer.status == 200, (how, answer.text)
                assert answer.json()["choices"][0]["message"]["content"] == "pong"
                assert time.monotonic() - started < 2, how
                time.sleep(0.15)  # the upstream has ended the pooled connection meanwhile
            # Each request found its pooled connection gone and opened a new one.
            assert upstream.connections == 8, (how, upstream.connections)
            # An ended socket left watched for readability would wake a loop without end.
            before = cpu_seconds(gw.proc.pid)
            time.sleep(1.0)
            assert cpu_seconds(gw.proc.pid) - before < 0.2, how
            gw.stop()
        finally:
            upstream.stop()


def test_an_upstream_named_by_host_name_is_reached_every_time(gateway):
    """A name goes through libcurl's resolver, whose socket pair is watched and then closed
    without the close callback; the connection's socket often gets the same number next. A
    parked resolver socket would leave that number marked as watched, and the connection's
    socket would never join the epoll set: the request would wait for its timeout."""
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, 80)
    except OSError:
        import pytest
        pytest.skip(f"this machine's host name {name!r} does not resolve")
    upstream = IdleClosingUpstream("close", host="0.0.0.0")
    try:
        gw = gateway(make_config({"up": openai_provider(f"http://{name}:{upstream.port}/v1",
                                                        models=["gpt-4o-mini"], default_timeout="5s")}))
        for _ in range(3):
            started = time.monotonic()
            answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
            assert answer.status == 200, answer.text
            assert time.monotonic() - started < 2
            time.sleep(0.15)  # the upstream ends each connection after its answer
        gw.stop()
    finally:
        upstream.stop()
