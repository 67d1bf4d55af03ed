"""The install and build paths the Dockerfile uses, exercised here since no Docker engine runs."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("PRISM_BIN", REPO / "dist" / "prism-gateway")).parent


def run(*args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_every_install_mode_resolves_its_packages():
    for mode in ("--runtime", "--build-only", None):
        args = ["bash", str(REPO / "scripts" / "install.sh"), "--dry-run"] + ([mode] if mode else [])
        result = run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "packages resolve" in result.stdout


def test_dist_carries_the_swift_runtime_the_image_ships():
    lib = DIST / "lib"
    names = {p.name for p in lib.glob("*.so*")}
    assert any(n.startswith("libswiftCore.so") for n in names), names
    # With the image's LD_LIBRARY_PATH every Swift library resolves to dist/lib, none is missing.
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib))
    for binary in [DIST / "prism-gateway", *sorted((DIST / "plugins").glob("*.so"))]:
        out = run("ldd", str(binary), env=env).stdout
        assert "not found" not in out, out
        for line in out.splitlines():
            if "libswift" in line and "=>" in line:
                assert str(lib) in line, f"{binary.name}: {line.strip()}"


def test_image_health_check_command_works_against_the_binary(gateway):
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}}})
    # The Dockerfile's HEALTHCHECK runs exactly this.
    result = run("curl", "-fsS", "-o", "/dev/null", gw.url("/healthz"))
    assert result.returncode == 0, result.stderr


# ---- running as production does ------------------------------------------------------------------

import http.client
import signal
import threading
import time

import pytest

from conftest import RUN_UNPRIVILEGED, UNPRIVILEGED_UID, give_to_gateway
from prism_helpers import (SSEStream, chat_body, get, make_config, openai_provider, parse_chunks, post,
                           stream_text, wait_until)
from socket_inspection import tcp_sockets


def proc_status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def test_the_suite_runs_the_gateway_unprivileged_with_no_capabilities(gateway):
    if not RUN_UNPRIVILEGED:
        pytest.skip("the suite is not running as root (or PRISM_TEST_AS_ROOT=1): nothing to drop")
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}}})
    status = proc_status(gw.proc.pid)
    assert status["Uid"].split() == [str(UNPRIVILEGED_UID)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(UNPRIVILEGED_UID)] * 4, status["Gid"]
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, f"{capabilities} {status[capabilities]}"
    assert status["NoNewPrivs"] == "1"
    # And serves that way: health, a chat answer, a stream.
    assert get(gw.url("/healthz")).status == 200
    assert post(gw.v1 + "/chat/completions", chat_body("m")).status == 200
    with SSEStream(gw.v1 + "/chat/completions", chat_body("m", stream=True)) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done and stream_text(chunks)


def test_tcp_nodelay_is_set_on_client_and_upstream_sockets(gateway, mock_upstream):
    gw = gateway(make_config({"mockai": openai_provider(mock_upstream.v1_url)}))
    # One keep-alive client connection, left open while the gateway's sockets are read.
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=json_bytes(chat_body("gpt-4o-mini")),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        client_port = conn.sock.getsockname()[1]
        sockets = tcp_sockets(gw.proc.pid)
    finally:
        conn.close()
    accepted = [s for s in sockets if s.state == 1 and s.remote_port == client_port]
    upstream = [s for s in sockets if s.state == 1 and s.remote_port == mock_upstream.port]
    listening = [s for s in sockets if s.state == 10 and s.local_port == gw.port]
    assert len(accepted) == 1 and listening, sockets
    assert upstream, f"no pooled connection to the upstream on port {mock_upstream.port}: {sockets}"
    for s in accepted + upstream:
        assert s.nodelay, f"TCP_NODELAY not set: {s}"
    for s in accepted + upstream + listening:
        assert not s.debug, f"SO_DEBUG set (needs CAP_NET_ADMIN): {s}"


def json_bytes(value):
    import json
    return json.dumps(value).encode()


# ---- graceful rollouts: drain_delay then shutdown_timeout -----------------------------------------

def drain_config(upstream, drain="2s", shutdown="10s"):
    return make_config({"mockai": openai_provider(upstream.v1_url, default_timeout="30s")},
                       server={"drain_delay": drain, "shutdown_timeout": shutdown})


def test_sigterm_turns_readyz_503_at_once_and_keeps_serving_for_drain_delay(gateway, mock_upstream):
    gw = gateway(drain_config(mock_upstream, drain="2s"))
    mock_upstream.hold_after_chunks = 2
    stream = SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True), timeout=15)
    try:
        first = stream.next_event()
        assert first and mock_upstream.holding.wait(5)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        assert wait_until(lambda: get(gw.url("/readyz"), timeout=2).status == 503, 1.0), \
            "/readyz still 200 a second after SIGTERM"
        ready = get(gw.url("/readyz"))
        assert ready.json() == {"status": "draining"}
        assert get(gw.url("/healthz")).status == 200  # alive, only not ready
        # New connections are still accepted and served while the load balancer catches up.
        served = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "during the drain"))
        assert served.status == 200, served.text
        assert time.monotonic() - t0 < 1.8, "the drain_delay check ran too late to mean anything"

        # After drain_delay the listener closes: new connections are refused.
        def refused():
            try:
                get(gw.url("/healthz"), timeout=1)
                return False
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                return True
        assert wait_until(refused, 4.0), "new connections were still accepted after drain_delay"
        assert time.monotonic() - t0 >= 1.9, "the listener closed before drain_delay"
        assert gw.proc.poll() is None, "exited with a stream in flight"
        # The stream in flight finishes whole.
        mock_upstream.release.set()
        chunks, done = parse_chunks([first] + stream.read_all())
    finally:
        stream.close()
    assert done and stream_text(chunks) == mock_upstream.content
    assert gw.wait_exit(10) == 0, gw.log_tail()


def test_sigint_skips_the_drain_delay(gateway, mock_upstream):
    gw = gateway(drain_config(mock_upstream, drain="20s"))
    t0 = time.monotonic()
    gw.send_signal(signal.SIGINT)
    assert gw.wait_exit(5) == 0, gw.log_tail()
    assert time.monotonic() - t0 < 5


def test_a_second_sigterm_ends_the_drain(gateway, mock_upstream):
    gw = gateway(drain_config(mock_upstream, drain="30s", shutdown="30s"))
    gw.send_signal(signal.SIGTERM)
    assert wait_until(lambda: get(gw.url("/readyz"), timeout=2).status == 503, 1.0)
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    assert gw.wait_exit(5) == 0, gw.log_tail()
    assert time.monotonic() - t0 < 5


def test_drain_delay_is_validated(run_prism, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  drain_delay: soon\nproviders:\n  m: {type: mock, models: [m]}\n")
    result = run_prism("validate", "--config", str(bad))
    assert result.returncode == 1
    assert "bad.yaml:2:16" in result.stderr and "server.drain_delay" in result.stderr, result.stderr


def test_admin_store_defaults_to_the_data_directory(gateway, tmp_path):
    data = give_to_gateway(tmp_path / "data")
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}}},
                 env={"PRISM_DATA_DIR": str(data), "PRISM_ADMIN_TOKEN": "admin-token-0123456789abcdef"})
    created = post(gw.url("/-/keys"), {"name": "on-the-volume"},
                   headers={"Authorization": "Bearer admin-token-0123456789abcdef"})
    assert created.status == 201, created.text
    assert (data / "prism-admin.sqlite").is_file(), sorted(p.name for p in data.iterdir())
    assert not (tmp_path / "prism-admin.sqlite").exists()


def test_an_unwritable_store_directory_is_named_with_a_fix(gateway, tmp_path):
    if not RUN_UNPRIVILEGED:
        pytest.skip("as root every directory is writable")
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o755)  # root's, as the image's /app is
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}},
                  "admin": {"token": "admin-token-0123456789abcdef", "store": str(read_only / "s.sqlite")}},
                 wait_ready=False)
    assert gw.wait_exit(10) == 1
    assert f"the directory {read_only} is not writable by uid {UNPRIVILEGED_UID}" in gw.log(), gw.log_tail()
