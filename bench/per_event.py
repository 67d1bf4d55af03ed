#!/usr/bin/env python3
"""What one more streamed event costs the gateway: the CPU per request of a short stream and of a
long one, the difference divided by the extra events (a slope, so what every stream pays once, its
head, chunked framing, timers and [DONE], drops out).

Two nginx mocks serve the bench's chat stream: as it is (18 events), and with its content events
repeated ten times (144). One gateway (dist/prism-gateway, the spend ledger off so that its thread
does not blur the figure) per mock; after a warm-up, `wrk -t2 -c32` on each in turn, ROUNDS times;
CPU from /proc/PID/stat. Both mocks send a whole stream at once, so this is the gateway's work per event,
not the write per event a slowly generated answer also costs.

    python3 bench/per_event.py              # ROUNDS=3 DURATION=5
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "5"))
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
PORTS = {"short": (18180, 18182), "long": (18190, 18192)}  # mock, gateway


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def long_stream(text: str) -> str:
    events = [event for event in text.split("\n\n") if event.strip()]
    content = [event for event in events[1:] if '"content":"' in event]
    rest = [event for event in events[1:] if event not in content]
    return "\n\n".join([events[0]] + content * 10 + rest) + "\n\n"


def start_mock(work: Path, name: str, port: int) -> Path:
    prefix = work / f"mock-{name}"
    shutil.copytree(BENCH / "mock", prefix / "mock")
    if name == "long":
        sse = prefix / "mock" / "chat_completion_stream.sse"
        sse.write_text(long_stream(sse.read_text()))
    for sub in ("logs", "tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = (BENCH / "nginx" / "mock.conf").read_text().replace("127.0.0.1:18080", f"127.0.0.1:{port}")
    (prefix / "mock.conf").write_text(conf)
    os.chmod(work, 0o755)
    subprocess.run([NGINX, "-p", f"{prefix}/", "-c", str(prefix / "mock.conf"), "-e", str(prefix / "logs/error.log")],
                   check=True)
    return prefix


def start_gateway(work: Path, name: str, mock_port: int, port: int) -> subprocess.Popen:
    config = work / f"{name}.yaml"
    config.write_text(f"""server: {{host: 127.0.0.1, port: {port}}}
providers:
  bench:
    api_format: openai
    base_url: http://127.0.0.1:{mock_port}/v1
    api_key: sk-bench-unused
    models: [gpt-4o-mini]
auth: {{enabled: false}}
logging: {{level: warn}}
spend_ledger: {{enabled: false}}
""")
    return subprocess.Popen([str(REPO / "dist" / "prism-gateway"), "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)


def measure(pid: int, port: int, seconds: int = DURATION) -> float:
    before = cpu_seconds(pid)
    env = dict(os.environ, BENCH_STREAM="1")
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", "chat.lua",
                          f"http://127.0.0.1:{port}/v1/chat/completions"],
                         cwd=BENCH, env=env, capture_output=True, text=True).stdout
    spent = cpu_seconds(pid) - before
    result = re.search(r"requests=(\d+).*errors=(\d+)", out)
    assert result and result.group(2) == "0", out
    return spent / int(result.group(1)) * 1e6


def events_in(port: int) -> int:
    out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/v1/chat/completions", "-H",
                          "content-type: application/json", "-d", '{"model":"gpt-4o-mini","stream":true,"messages":[]}'],
                         capture_output=True, text=True).stdout
    return out.count("data: ")


def main() -> int:
    if not (REPO / "dist" / "prism-gateway").exists():
        print("dist/prism-gateway is missing: run make build first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="prism-per-event."))
    mocks, gateways = [], {}
    try:
        for name, (mock_port, port) in PORTS.items():
            mocks.append(start_mock(work, name, mock_port))
            gateways[name] = start_gateway(work, name, mock_port, port)
        time.sleep(2)
        counts = {name: events_in(PORTS[name][0]) for name in PORTS}
        extra = counts["long"] - counts["short"]
        print(f"events per stream: {counts['short']} and {counts['long']}")
        for name in PORTS:  # warm-up, not measured
            measure(gateways[name].pid, PORTS[name][1], seconds=2)
        print("| round | short: µs CPU/request | long: µs CPU/request | µs per extra event |")
        print("|---:|---:|---:|---:|")
        for round_number in range(1, ROUNDS + 1):
            short = measure(gateways["short"].pid, PORTS["short"][1])
            long = measure(gateways["long"].pid, PORTS["long"][1])
            print(f"| {round_number} | {short:.1f} | {long:.1f} | {(long - short) / extra:.2f} |")
    finally:
        for proc in gateways.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        for prefix in mocks:
            subprocess.run([NGINX, "-p", f"{prefix}/", "-c", str(prefix / "mock.conf"), "-s", "stop"],
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
