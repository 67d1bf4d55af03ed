#!/usr/bin/env python3
"""What a large request body adds: POST a chat request of SIZE bytes (default 1,000,000) to the
mock upstream directly and through the gateway, one at a time on a kept-alive connection, and
print the median and p90 of each and the difference.

    python3 bench/large_body.py http://127.0.0.1:18080 http://127.0.0.1:18082   # direct, gateway
    SIZE=1000000 COUNT=40 python3 bench/large_body.py DIRECT GATEWAY

Both must serve POST /v1/chat/completions (the bench's nginx mock accepts bodies up to 1 MiB).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import time
from urllib.parse import urlsplit

SIZE = int(os.environ.get("SIZE", "1000000"))
COUNT = int(os.environ.get("COUNT", "40"))


def body(size: int) -> bytes:
    skeleton = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""}]}
    filler = size - len(json.dumps(skeleton).encode())
    skeleton["messages"][0]["content"] = "lorem ipsum " * (filler // 12) + "x" * (filler % 12)
    data = json.dumps(skeleton).encode()
    assert len(data) == size, len(data)
    return data


def measure(url: str, payload: bytes) -> list[float]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"content-type": "application/json", "authorization": "Bearer sk-prism-bench"}
    times = []
    for index in range(COUNT + 3):
        started = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=payload, headers=headers)
        answer = connection.getresponse()
        answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            sys.exit(f"{url}: status {answer.status}")
        if index >= 3:  # warm-up
            times.append(elapsed)
    connection.close()
    return times


def main() -> None:
    direct, gateway = sys.argv[1], sys.argv[2]
    payload = body(SIZE)
    rows = []
    for name, url in (("direct", direct), ("gateway", gateway), ("direct", direct), ("gateway", gateway)):
        rows.append((name, measure(url, payload)))
    summary = {}
    for name, times in rows:
        summary.setdefault(name, []).extend(times)
    print(f"{SIZE:,}-byte request body, {COUNT} requests per round, 2 rounds each")
    for name, times in summary.items():
        ordered = sorted(times)
        print(f"  {name:8} median {statistics.median(ordered):.3f} ms   p90 {ordered[int(len(ordered) * 0.9)]:.3f} ms")
    added = statistics.median(summary["gateway"]) - statistics.median(summary["direct"])
    print(f"  added by the gateway (median): {added:+.3f} ms")


if __name__ == "__main__":
    main()
