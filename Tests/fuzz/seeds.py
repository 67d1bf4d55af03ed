#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs, from the repository's real inputs, into OUT/<target>/.

    python3 Tests/fuzz/seeds.py OUT

scripts/fuzz.sh --reseed merges them (libFuzzer -merge=1: only inputs that add coverage are kept)
into the committed corpus, Tests/fuzz/corpus/<target>/. Sources:

  config               config/**/*.yaml, deploy/config.yaml, the ```yaml blocks of README.md and
                       docs/, the YAML strings of the Swift config tests, and a few hand-written
                       documents (anchors and aliases, an alias bomb, ${VAR} expansion)
  http                 raw HTTP/1.x requests as clients (and attackers) send them
  translate-<provider> Tests/golden/<provider>/*.json: the client request (mode 0), the upstream
                       answer (modes 1 and 2) and the upstream stream, encoded the way the replay
                       upstream sends it: SSE, NDJSON or AWS event-stream frames (mode 3)
  sse                  every golden SSE and NDJSON stream, with LF and CRLF line endings
"""

import glob
import hashlib
import json
import os
import re
import struct
import sys
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The translate target's status table (Tests/fuzz/Sources/translate/main.swift).
STATUSES = [400, 401, 403, 404, 408, 413, 422, 429, 498, 500, 502, 503, 504, 529, 418, 599]
# Golden folder → provider components whose format it is.
GOLDEN = {"anthropic": ["anthropic"], "azure": ["azure", "openai"], "bedrock": ["bedrock"],
          "cohere": ["cohere"], "gemini": ["gemini"], "vertex": ["vertexai"]}


def write(out, target, data):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(out, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# MARK: config

HAND_WRITTEN_CONFIGS = [
    # Anchors, aliases and merge-like reuse.
    "defaults: &d {api_key: \"${OPENAI_API_KEY}\", api_format: openai}\nproviders:\n  a: *d\n  b:\n    <<: *d\n    models: [x]\n",
    # A small alias bomb: the expansion cap must stop it.
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
    # Environment expansion, defaults, an unterminated reference.
    "server:\n  port: ${PORT:-8080}\n  host: \"${HOST:-0.0.0.0}\"\nproviders:\n  o:\n    api_key: ${OPENAI_API_KEY}\n"
    "    base_url: \"${BASE:-http://x}/v1${EMPTY:-}\"\n    models: [\"${MODEL:-gpt-4o}\"]\nadmin:\n  token: \"${UNSET\"\n",
    # Every section once.
    "server: {port: 8080, host: 127.0.0.1, read_timeout: 30s, write_timeout: 1m, idle_timeout: 90s, shutdown_timeout: 10s,"
    " drain_delay: 500ms, header_timeout: 10s, body_timeout: 1.5s, operational_routes: admin, max_request_body_size: 1048576,"
    " max_response_body_size: 2048, stream_idle_timeout: 1h, default_request_timeout: 120s}\n"
    "providers:\n  m: {type: mock, models: [a, b], max_concurrent: 4, conn_pool_size: 2, default_timeout: 5s, weight: 2}\n"
    "auth:\n  enabled: true\n  keys:\n    - {name: k, key: sk-1, rate_limit_rpm: 10, rate_limit_tpm: 1000, models: [a]}\n    - {key_sha256: abc}\n"
    "middleware: [auth, {name: rate_limit, config: {enabled: true}}, cache]\n"
    "rate_limiting: {enabled: true, requests_per_minute: 60}\ncache: {enabled: true, ttl: 5m}\n"
    "redis: {url: \"redis://127.0.0.1:6379/0\"}\n"
    "routing:\n  default_strategy: weighted\n  weights: {m: 3}\n  targets:\n    a: [{provider: m, weight: 1, priority: 2, model_override: b}]\n"
    "  model_fallbacks: {a: [b]}\n  failover: {enabled: true, max_attempts: 3, on_status_codes: [429, 503], on_timeout: true}\n"
    "  circuit_breaker: {enabled: true, failure_threshold: 5, success_threshold: 2, cooldown: 30s}\n"
    "  retry: {enabled: true, max_retries: 2, initial_delay: 100ms, max_delay: 2s, multiplier: 2}\n"
    "model_map: {gpt: a}\nlogging: {level: warning, format: json, include_bodies: true}\nplugins: {dir: ./plugins}\n"
    "admin: {token: \"0123456789abcdef0123\", store: admin.db}\n",
    # Two documents, a tag, a complex key, flow and block scalars.
    "---\nserver: {port: 1}\n---\nserver: {port: 2}\n",
    "providers:\n  ? [a, b]\n  : {type: mock}\nlogging: !!map {level: |\n  info\n}\n",
    "",
]


def config_seeds(out):
    for path in sorted(glob.glob(os.path.join(ROOT, "config", "**", "*.yaml"), recursive=True)) + \
            [os.path.join(ROOT, "deploy", "config.yaml")]:
        if os.path.exists(path):
            write(out, "config", open(path, "rb").read())
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)):
        for block in re.findall(r"```ya?ml\n(.*?)```", open(path, encoding="utf-8").read(), re.S):
            write(out, "config", block)
    for path in sorted(glob.glob(os.path.join(ROOT, "Tests", "PrismCoreTests", "*.swift"))):
        for block in re.findall(r'"""\n(.*?)\n\s*"""', open(path, encoding="utf-8").read(), re.S):
            if re.search(r"^\s*(server|providers|auth|routing|middleware|logging|admin|model_map|redis|cache):", block, re.M):
                lines = block.split("\n")
                indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
                write(out, "config", "\n".join(l[indent:] for l in lines) + "\n")
    for text in HAND_WRITTEN_CONFIGS:
        write(out, "config", text)


# MARK: http

KEY = "sk-fuzz-client-key"  # the fuzz configuration's client key (Tests/fuzz/Sources/http/main.swift)


def post(path, body, headers="", version="1.1"):
    body = body.encode() if isinstance(body, str) else body
    return (f"POST {path} HTTP/{version}\r\nHost: prism\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\n{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(path, body, sizes=(7, 1, 100)):
    body = body.encode()
    pieces, i, n = [], 0, 0
    while i < len(body):
        size = sizes[n % len(sizes)]
        pieces.append(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]))
        i += size
        n += 1
    return (f"POST {path} HTTP/1.1\r\nHost: prism\r\nAuthorization: Bearer {KEY}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(pieces) + b"0\r\n\r\n"


def http_seeds(out):
    chat = json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]})
    stream = json.dumps({"model": "mock-gpt", "stream": True, "stream_options": {"include_usage": True},
                         "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi there"}]})
    seeds = [
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\n\r\nGET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-wrong\r\n\r\n",
        "GET /-/metrics HTTP/1.1\r\n\r\nGET /-/health/providers HTTP/1.1\r\n\r\nGET /-/health/state HTTP/1.1\r\n\r\n",
        "POST /-/reload HTTP/1.1\r\nAuthorization: Bearer x\r\nContent-Length: 0\r\n\r\nGET /-/config HTTP/1.1\r\n\r\n",
        "DELETE /v1/chat/completions HTTP/1.1\r\n\r\nGET /nowhere?x=1 HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 999999\r\n\r\n{",
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
        "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Big: " + "a" * 300 + "\r\n\r\n",
        post("/v1/chat/completions", chat),
        post("/v1/chat/completions", stream),
        post("/v1/chat/completions", stream, version="1.0"),
        post("/v1/chat/completions", chat, "x-prism-request-id: req-123\r\nx-prism-provider-lock: fixed\r\n"),
        post("/v1/chat/completions", chat, "x-prism-request-id: bad id\r\nx-prism-provider-lock: nowhere\r\n"),
        post("/v1/chat/completions", json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "alias"}]})),
        post("/v1/chat/completions", json.dumps({"model": "mock/mock-gpt", "messages": []})),
        post("/v1/chat/completions", json.dumps({"model": "mock-gpt-mini", "messages": [{"role": "user", "content": "x"}]}),
             "Authorization: Bearer sk-fuzz-mini-only\r\n"),
        post("/v1/chat/completions", json.dumps({"model": "../admin", "messages": []})),
        post("/v1/chat/completions", json.dumps({"model": "a\u0001b", "messages": []})),
        post("/v1/chat/completions", json.dumps({"messages": []})),
        post("/v1/chat/completions", '{"model": "mock-gpt", "messages": "x"}'),
        post("/v1/chat/completions", '{"model": "mock-gpt", "messages": [}'),
        post("/v1/embeddings", json.dumps({"model": "mock-embedding", "input": ["a", "b"]})),
        post("/v1/embeddings", json.dumps({"model": "mock-embedding", "input": "a", "encoding_format": "base64"})),
        chunked("/v1/chat/completions", stream),
        "POST /v1/chat/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n" * 4,
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET /healthz HTTP/1.1\nHost: x\n\n",
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"model\":",
    ]
    for seed in seeds:
        write(out, "http", seed)
    # Client requests of the golden cases, sent to the mock models.
    for path in sorted(glob.glob(os.path.join(ROOT, "Tests", "golden", "*", "*.json")))[::4]:
        case = json.load(open(path, encoding="utf-8"))
        request = dict(case["request"])
        embeddings = "input" in request and "messages" not in request
        request["model"] = "mock-embedding" if embeddings else "mock-gpt"
        write(out, "http", post("/v1/embeddings" if embeddings else "/v1/chat/completions", json.dumps(request)))


# MARK: translate and sse

def selector(mode, variant, status=None, fix_checksums=None):
    """The translate target's first byte: mode, variant, the error status or the CRC fix-up bit."""
    for byte in list(range(0x20, 0x7F)) + list(range(0, 0x20)) + list(range(0x7F, 0x100)):
        if byte % 4 == mode and byte // 4 % 4 == variant and (status is None or byte // 16 % 16 == STATUSES.index(status)) \
                and (fix_checksums is None or bool(byte & 0x10) == fix_checksums):
            return bytes([byte])
    raise ValueError((mode, variant, status))


def request_variant(request, streaming):
    if "input" in request and "messages" not in request:
        return 0 if streaming else 2
    if request.get("tools"):
        return 1
    if isinstance(request.get("response_format"), dict) and request["response_format"].get("type") == "json_schema":
        return 3
    return 1 if streaming and request.get("stream_options") else 0


def sse_bytes(item, eol):
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


def event_frame(headers, payload, corrupt=False):
    """An AWS event-stream frame: prelude (lengths and their CRC-32), string headers, payload, CRC-32."""
    encoded = b"".join(bytes([len(name.encode())]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode()))
                       + value.encode() for name, value in headers.items())
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", len(encoded) + len(body) + 16, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + body
    return message + struct.pack(">I", zlib.crc32(message) ^ (0xFFFFFFFF if corrupt else 0))


def upstream_stream(reply):
    """The stream's bytes and whether they are text (SSE/NDJSON), or None for a plain body."""
    if "eventstream" in reply:
        return b"".join(event_frame(f.get("headers") or {}, f.get("payload", {}), bool(f.get("corrupt_crc")))
                        for f in reply["eventstream"]), False
    if "sse" in reply:
        return b"".join(sse_bytes(item, reply.get("sse_line_ending", "\n")) for item in reply["sse"]), True
    if "ndjson" in reply:
        return b"".join((json.dumps(item) + "\n").encode() for item in reply["ndjson"]), True
    return None, False


def translate_seeds(out):
    for folder, components in GOLDEN.items():
        for path in sorted(glob.glob(os.path.join(ROOT, "Tests", "golden", folder, "*.json"))):
            case = json.load(open(path, encoding="utf-8"))
            request = case["request"]
            streaming = bool(request.get("stream"))
            targets = [f"translate-{component}" for component in components]
            embeddings = "input" in request and "messages" not in request
            for target in targets:
                write(out, target, selector(0, 2 if embeddings else 0) + json.dumps(request).encode())
            reply = case.get("upstream_response")
            if not reply:
                continue
            status = int(reply.get("status", 200))
            stream, text = upstream_stream(reply)
            if stream is not None:
                if text:
                    write(out, "sse", stream)
                    write(out, "sse", stream.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                if 200 <= status < 300:
                    variant = request_variant(request, True)
                    for target in targets:
                        write(out, target, selector(3, variant, fix_checksums=False) + stream)
                        if not text:  # binary frames: also with the CRC fix-up bit
                            write(out, target, selector(3, variant, fix_checksums=True) + stream)
                continue
            body = reply["body_text"].encode() if "body_text" in reply else json.dumps(reply.get("body", {})).encode()
            if 200 <= status < 300:
                mode, code = 1, None
            else:
                mode, code = 2, status if status in STATUSES else 400
            for target in targets:
                write(out, target, selector(mode, request_variant(request, False), code) + body)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seeds.py OUT")
    out = sys.argv[1]
    config_seeds(out)
    http_seeds(out)
    translate_seeds(out)
    for name in sorted(os.listdir(out)):
        print(f"{name}: {len(os.listdir(os.path.join(out, name)))} seeds")


if __name__ == "__main__":
    main()
