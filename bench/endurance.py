#!/usr/bin/env python3
"""Endurance of the gateway alone: N concurrent streams, then a soak, with RSS along the way.

    make build
    python3 bench/endurance.py                      # 1,000 streams x 5 rounds, a 60 s soak
    STREAMS=1000 ROUNDS=5 SOAK=300 python3 bench/endurance.py
    LEDGER=0 python3 bench/endurance.py             # without the spend ledger

The gateway (dist/prism-gateway, every plugin in dist/plugins) serves the offline `mock`
provider, which answers in the plugin without any network, so what is measured is the gateway's
own server, middleware, routing and stream relay. Loopback only, bounded in count and time.
Prints a Markdown table; exits 1 when a stream ends incomplete or a soak request fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STREAMS = int(os.environ.get("STREAMS", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SOAK = int(os.environ.get("SOAK", "60"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_stream(port: int, body: bytes) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout=60)
        return b"200 OK" in data.split(b"\r\n", 1)[0] and b"data: [DONE]" in data and b'"error"' not in data
    finally:
        writer.close()


async def streams_round(port: int, count: int) -> int:
    body = json.dumps({"model": "mock-gpt", "stream": True,
                       "messages": [{"role": "user", "content": "Tell me a long story about gateways."}]}).encode()
    results = await asyncio.gather(*(one_stream(port, body) for _ in range(count)), return_exceptions=True)
    return sum(1 for r in results if r is True)


def main() -> int:
    binary = REPO / "dist" / "prism-gateway"
    if not binary.exists():
        print("dist/prism-gateway is missing: run make build first", file=sys.stderr)
        return 2
    # Each stream holds a descriptor here and two in the gateway (inherited limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    work = Path(tempfile.mkdtemp(prefix="prism-endurance-"))
    port = free_port()
    config = work / "config.yaml"
    config.write_text(f"""
server: {{host: 127.0.0.1, port: {port}}}
providers:
  sim: {{api_format: mock, models: [mock-gpt]}}
logging: {{level: warn}}
spend_ledger: {{enabled: {"true" if os.environ.get("LEDGER", "1") == "1" else "false"}, path: {work / "spend.sqlite"}}}
""")
    log = open(work / "gateway.log", "wb")
    proc = subprocess.Popen([str(binary), "--config", str(config), "--plugins-dir", str(REPO / "dist" / "plugins")],
                            stdout=log, stderr=subprocess.STDOUT)
    rows: list[tuple[str, str]] = []
    failed = False
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rows.append(("RSS idle", f"{rss_mib(proc.pid):.1f} MiB"))
        peak = 0.0
        for round_number in range(1, ROUNDS + 1):
            started = time.monotonic()
            ok = asyncio.run(streams_round(port, STREAMS))
            peak = max(peak, rss_mib(proc.pid))
            rows.append((f"{STREAMS} concurrent streams, round {round_number}",
                         f"{ok} of {STREAMS} complete in {time.monotonic() - started:.1f} s"))
            failed |= ok != STREAMS
        rows.append(("RSS peak during the streams / after", f"{peak:.1f} / {rss_mib(proc.pid):.1f} MiB"))
        if SOAK > 0 and shutil.which("wrk"):
            env = dict(os.environ, BENCH_BODY=str(REPO / "bench" / "chat_request.json"))
            body = json.loads((REPO / "bench" / "chat_request.json").read_text())
            body["model"] = "mock-gpt"
            (work / "request.json").write_text(json.dumps(body))
            env["BENCH_BODY"] = str(work / "request.json")
            samples = []
            soak = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SOAK}s", "--latency", "-s",
                                     str(REPO / "bench" / "chat.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"],
                                    env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            while soak.poll() is None:
                samples.append(rss_mib(proc.pid))
                time.sleep(5)
            output = soak.stdout.read()
            result = re.search(r"BENCH_RESULT (.*)", output)
            fields = dict(item.split("=", 1) for item in result.group(1).split()) if result else {}
            errors = int(fields.get("errors", "1")) + int(fields.get("non2xx", "0"))
            rows.append((f"soak {SOAK} s at {CONNECTIONS} connections",
                         f"{fields.get('requests', '?')} requests, {errors} errors, {fields.get('rps', '?')} req/s"))
            if samples:
                rows.append(("RSS during the soak (first / max / last sample)",
                             f"{samples[0]:.1f} / {max(samples):.1f} / {samples[-1]:.1f} MiB"))
            failed |= errors != 0 or not result
        alive = proc.poll() is None
        rows.append(("gateway still running", "yes" if alive else f"no (exit {proc.returncode})"))
        failed |= not alive
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
