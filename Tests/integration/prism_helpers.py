"""Small helpers shared by the integration tests: HTTP with explicit timeouts, an SSE reader,
a YAML writer (no PyYAML needed) and OpenAI error assertions."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

# First-party plugins in dist/plugins: file -> (kind, component name).
FIRST_PARTY_PLUGINS = {
    "provider-openai.so": ("provider", "openai"),
    "provider-mock.so": ("provider", "mock"),
    "middleware-auth.so": ("middleware", "auth"),
    "middleware-rate-limit.so": ("middleware", "rate_limit"),
    "middleware-cache.so": ("middleware", "cache"),
    "router-round-robin.so": ("router", "round-robin"),
    "router-strategies.so": ("router", "weighted"),
}
# Broken fixtures built by scripts/build-c-plugins.sh into <dir>/broken/<name>.so.
BROKEN_FIXTURES = ["missing-entry", "wrong-major", "short-descriptor", "null-required-function",
                   "short-vtable"]

# Every network operation in the suite is bounded; these are the defaults.
HTTP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP ----------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise AssertionError(f"response is not JSON (status {self.status}): {self.body[:500]!r}") from err


def _split(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname or "127.0.0.1", parts.port or 80, path


def request(method: str, url: str, body: Any = None, headers: Optional[dict] = None,
            timeout: float = HTTP_TIMEOUT) -> Response:
    """One HTTP request on a fresh connection. `body` may be bytes, str, or a JSON-able object."""
    host, port, path = _split(url)
    hdrs = dict(headers or {})
    data: Optional[bytes]
    if body is None:
        data = None
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


def get(url: str, **kw: Any) -> Response:
    return request("GET", url, **kw)


def post(url: str, body: Any = None, **kw: Any) -> Response:
    return request("POST", url, body=body, **kw)


def chat_body(model: str, content: str = "Say hello.", stream: bool = False, **extra: Any) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


# ---- SSE -----------------------------------------------------------------------------------------

class SSEStream:
    """A streaming POST read event by event with http.client (handles chunked encoding).

    `next_event()` returns the `data` of the next event (joined lines), or None at EOF.
    `abort()` tears the TCP connection down at once (shutdown + close).
    """

    def __init__(self, url: str, body: Any, headers: Optional[dict] = None,
                 timeout: float = HTTP_TIMEOUT) -> None:
        host, port, path = _split(url)
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        self.conn.request("POST", path, body=json.dumps(body).encode(), headers=hdrs)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.sock = self.conn.sock

    def next_event(self) -> Optional[str]:
        data_lines: list[str] = []
        seen_field = False
        while True:
            raw = self.response.readline()
            if not raw:
                return "\n".join(data_lines) if seen_field else None
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if seen_field:
                    return "\n".join(data_lines)
                continue
            if line.startswith(":"):
                continue  # comment / keep-alive
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            seen_field = True
            if name == "data":
                data_lines.append(value)

    def events(self) -> Iterator[str]:
        while True:
            ev = self.next_event()
            if ev is None:
                return
            yield ev

    def read_all(self) -> list[str]:
        return list(self.events())

    def read_body(self) -> bytes:
        return self.response.read()

    def abort(self) -> None:
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        try:
            self.response.close()
        finally:
            self.conn.close()

    def __enter__(self) -> "SSEStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_chunks(events: list[str]) -> tuple[list[dict], bool]:
    """JSON chunks of an OpenAI stream and whether it ended with [DONE] as the last event."""
    chunks = []
    done = False
    for i, ev in enumerate(events):
        if ev == "[DONE]":
            assert i == len(events) - 1, f"events after [DONE]: {events[i + 1:]}"
            done = True
            break
        chunks.append(json.loads(ev))
    return chunks, done


def stream_text(chunks: list[dict]) -> str:
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                out.append(piece)
    return "".join(out)


# ---- OpenAI errors -------------------------------------------------------------------------------

def assert_openai_error(resp: Response, status: int, code: Optional[str] = None,
                        type: Optional[str] = None) -> dict:
    """The response is `status` with body {"error": {message, type, param, code}}; returns error."""
    assert resp.status == status, f"expected {status}, got {resp.status}: {resp.text[:1000]}"
    ctype = resp.headers.get("content-type", "")
    assert "application/json" in ctype, f"error content-type is {ctype!r}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    missing = {"message", "type", "param", "code"} - set(err)
    assert not missing, f"error object lacks {sorted(missing)}: {err}"
    assert isinstance(err["message"], str) and err["message"], err
    if code is not None:
        assert err["code"] == code, f"code {err['code']!r} != {code!r}: {err}"
    if type is not None:
        assert err["type"] == type, f"type {err['type']!r} != {type!r}: {err}"
    return err


# ---- YAML ----------------------------------------------------------------------------------------

def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # JSON string escapes are valid inside YAML double quotes.
    return json.dumps(str(value))


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts/lists/scalars. Strings are always double-quoted."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        for k, v in value.items():
            key = str(k)
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", key):
                key = json.dumps(key)  # `*`, `:`, spaces...: quoted, as a person writes them
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{key}: {'{}' if isinstance(v, dict) else '[]'}\n")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(v)}\n")
        return "".join(lines)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[indent + 2:]}")
            elif isinstance(item, list) and item:
                lines.append(f"{pad}-\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}\n")
        return "".join(lines)
    return pad + _yaml_scalar(value) + "\n"


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ---- config builders -----------------------------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-test-key-0001"
MOCK_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]


def openai_provider(base_url: str, models: Optional[list] = None, api_key: str = UPSTREAM_KEY,
                    **extra: Any) -> dict:
    section: dict = {"api_key": api_key, "api_format": "openai", "base_url": base_url,
                     "models": list(MOCK_MODELS if models is None else models)}
    section.update(extra)
    return section


def make_config(providers: dict, *, server: Optional[dict] = None, auth: Optional[dict] = None,
                level: str = "info", **sections: Any) -> dict:
    cfg: dict = {"server": {"host": "127.0.0.1", **(server or {})}, "providers": providers}
    if auth is not None:
        cfg["auth"] = auth
    cfg["logging"] = {"level": level}
    cfg.update(sections)
    return cfg
