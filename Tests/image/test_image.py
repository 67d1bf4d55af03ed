"""The real image (built by scripts/image-test.sh), run with podman as production runs it: as the
image's own numeric USER, no capabilities, no new privileges, a read-only root filesystem and a
volume for its data. Health, readiness, chat, streaming, the HEALTHCHECK command, SIGTERM as PID 1
(draining with a stream in flight), the admin store on the volume, and the README's Docker quick
start as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from mock_upstream import MockUpstream
from prism_helpers import (SSEStream, chat_body, free_port, get, openai_provider, parse_chunks, post,
                           stream_text, to_yaml, wait_until)
from socket_inspection import tcp_sockets

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PRISM_IMAGE", "localhost/prism:test")
IMAGE_USER = "10001:10001"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# This machine: no systemd (podman's health-check timers need it: disabled, the check is run by
# hand below), and no CAP_SYS_RESOURCE (podman would raise RLIMIT_NOFILE/NPROC: keep them lower).
MACHINE = ["--health-interval=disable", "--ulimit", "nofile=8192:8192", "--ulimit", "nproc=4096:4096"]
# What production adds to the image's own settings: nothing may need root or a capability.
HARDENED = ["--read-only", "--cap-drop=all", "--security-opt", "no-new-privileges"]
ADMIN_TOKEN = "image-admin-token-0123456789"
MASTER_KEY = "image-master-key-abcdef012345"


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


class Container:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.started = time.monotonic()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int:
        return int(podman("inspect", self.name, "--format", "{{.State.Pid}}").stdout.strip())

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_healthy(self, timeout: float = 20) -> float:
        """Seconds from `podman run` to the first 200 from /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get(self.url("/healthz"), timeout=1).status == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            state = podman("inspect", self.name, "--format", "{{.State.Status}}", check=False).stdout.strip()
            if state in ("exited", "stopped"):
                break
            time.sleep(0.02)
        pytest.fail(f"container {self.name} never answered /healthz; logs:\n{self.logs()}", pytrace=False)


@pytest.fixture
def containers():
    """run(*podman_run_args, port=..., image_args=()) -> Container; removed after the test."""
    started: list[Container] = []

    def run(*args: str, port: int, image_args: tuple = ()) -> Container:
        name = f"prism-test-{uuid.uuid4().hex[:10]}"
        container = Container(name, port)
        podman("run", "-d", "--name", name, *MACHINE, *args, IMAGE, *image_args)
        started.append(container)
        return container

    yield run
    for container in started:
        podman("rm", "-f", "-t", "0", container.name, check=False)


@pytest.fixture
def volume():
    name = f"prism-test-data-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


def proc_status(pid: int) -> dict:
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_the_image_runs_as_a_numeric_user_with_a_data_volume():
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == IMAGE_USER
    assert "/var/lib/prism" in config["Volumes"]
    assert "PRISM_DATA_DIR=/var/lib/prism" in config["Env"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["StopSignal"] in ("SIGTERM", "15")
    size = int(podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout)
    print(f"\nimage {IMAGE}: {size / 1e6:.1f} MB")
    listing = podman("run", "--rm", *MACHINE, "--entrypoint", "/bin/sh", IMAGE, "-c",
                     "du -sk /app; ls /app/plugins | wc -l").stdout.split()
    print(f"/app: {int(listing[0]) / 1024:.1f} MiB, {listing[-1]} plugins")


def test_stripped_binaries_in_dist():
    # make build's dist/ is what the image copies: no .symtab section in any of its ELF files.
    for path in [REPO / "dist" / "prism-gateway", *sorted((REPO / "dist" / "plugins").glob("*.so"))]:
        sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout
        assert ".symtab" not in sections, f"{path.name} is not stripped"
        assert ".dynsym" in sections, f"{path.name} lost its dynamic symbols"


def test_serves_as_its_own_user_with_no_capabilities_on_a_read_only_root(containers, volume):
    port = free_port()
    container = containers(*HARDENED, "-p", f"127.0.0.1:{port}:8080", "-v", f"{volume}:/var/lib/prism",
                           port=port)
    cold_start = container.wait_healthy()
    # The process, seen from the host: the image's user, no capability in any set.
    status = proc_status(container.pid)
    assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4, status["Uid"]
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, f"{capabilities} {status[capabilities]}"

    ready = get(container.url("/readyz"))
    assert ready.status == 200 and ready.json() == {"status": "ok"}
    answer = post(container.url("/v1/chat/completions"), chat_body("mock-gpt", "hello image"))
    assert answer.status == 200, answer.text
    assert "hello image" in answer.json()["choices"][0]["message"]["content"]
    with SSEStream(container.url("/v1/chat/completions"), chat_body("mock-gpt", "stream", stream=True)) as s:
        chunks, done = parse_chunks(s.read_all())
    assert done and "stream" in stream_text(chunks)

    # The image's HEALTHCHECK command, run by the engine inside the container.
    health = podman("healthcheck", "run", container.name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr

    # TCP_NODELAY on the accepted socket (through the port forward: any accepted connection).
    sockets = [s for s in tcp_sockets(container.pid) if s.state == 1]
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        sockets = [s for s in tcp_sockets(container.pid) if s.state == 1]
    finally:
        conn.close()
    assert sockets and all(s.nodelay and not s.debug for s in sockets), sockets

    rss_kib = int(proc_status(container.pid)["VmRSS"].split()[0])
    print(f"\ncold start to the first 200: {cold_start * 1000:.0f} ms; RSS after a few requests: "
          f"{rss_kib / 1024:.1f} MiB")
    assert not re.search(r" (error|critical) prism:", container.logs()), container.logs()


def test_sigterm_as_pid_1_drains_and_lets_a_stream_finish(containers, tmp_path):
    upstream = MockUpstream().start()
    try:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(to_yaml({
            "server": {"port": port, "host": "127.0.0.1", "drain_delay": "2s", "shutdown_timeout": "15s"},
            "providers": {"mockai": openai_provider(upstream.v1_url, default_timeout="30s")},
        }))
        config.chmod(0o644)
        # Host networking: the container reaches the mock upstream on this machine's loopback.
        container = containers(*HARDENED, "--network", "host", "-v", f"{config}:/app/config.yaml:ro",
                               port=port)
        container.wait_healthy()
        assert podman("inspect", container.name, "--format", "{{.State.Pid}}").stdout.strip()
        upstream.hold_after_chunks = 2
        stream = SSEStream(container.url("/v1/chat/completions"), chat_body("gpt-4o-mini", stream=True),
                           timeout=20)
        try:
            first = stream.next_event()
            assert first and upstream.holding.wait(5)
            stopped = {}
            t0 = time.monotonic()

            def stop():  # what `docker stop -t 30` does: SIGTERM to PID 1, SIGKILL after 30 s
                stopped["result"] = podman("stop", "-t", "30", container.name, timeout=60, check=False)
                stopped["seconds"] = time.monotonic() - t0
            stopper = threading.Thread(target=stop, daemon=True)
            stopper.start()
            assert wait_until(lambda: get(container.url("/readyz"), timeout=1).status == 503, 2), \
                "/readyz did not turn 503 after SIGTERM"
            during = post(container.url("/v1/chat/completions"), chat_body("gpt-4o-mini", "while draining"))
            assert during.status == 200, "a request during drain_delay was not served"
            time.sleep(2.5)  # past drain_delay: the listener is closed, the stream still open
            assert stopper.is_alive(), "the container stopped with a stream in flight"
            upstream.release.set()
            chunks, done = parse_chunks([first] + stream.read_all())
        finally:
            stream.close()
        assert done and stream_text(chunks) == upstream.content
        stopper.join(30)
        assert stopped["result"].returncode == 0, stopped["result"].stderr
        assert stopped["seconds"] < 15, "podman had to kill the container"
        exit_code = podman("inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert exit_code == "0", container.logs()
        logs = container.logs()
        assert "still serving for drain_delay" in logs and "stopped" in logs, logs
    finally:
        upstream.stop()


def test_the_admin_api_writes_its_store_to_the_volume(containers, volume):
    env = ["-e", f"PRISM_ADMIN_TOKEN={ADMIN_TOKEN}", "-e", f"PRISM_MASTER_KEY={MASTER_KEY}"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    port = free_port()
    first = containers(*HARDENED, *env, "-p", f"127.0.0.1:{port}:8080", "-v", f"{volume}:/var/lib/prism",
                       port=port)
    first.wait_healthy()
    created = post(first.url("/-/keys"), {"name": "from-the-image"}, headers=admin)
    assert created.status == 201, created.text + first.logs()
    mountpoint = Path(podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}").stdout.strip())
    store = mountpoint / "prism-admin.sqlite"
    assert store.is_file(), sorted(p.name for p in mountpoint.iterdir())
    assert (store.stat().st_uid, store.stat().st_gid) == (10001, 10001)
    podman("stop", "-t", "10", first.name)

    # A new container on the same volume has the key.
    port = free_port()
    second = containers(*HARDENED, *env, "-p", f"127.0.0.1:{port}:8080", "-v", f"{volume}:/var/lib/prism",
                        port=port)
    second.wait_healthy()
    keys = get(second.url("/-/keys"), headers=admin)
    assert keys.status == 200 and "from-the-image" in keys.text, keys.text


def readme_quick_start() -> list[str]:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- docker-quick-start -->\s*```(?:sh|bash|shell)?\n(.*?)```", text, re.S)
    assert match, "README.md has no block marked <!-- docker-quick-start -->"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_docker_quick_start_works_as_written(tmp_path):
    """Each `docker` command of the README's quick start, run with podman (the same CLI) on the
    image this test built; `docker build` is the build this script already did."""
    name = f"prism-readme-{uuid.uuid4().hex[:8]}"
    commands = readme_quick_start()
    runs = [c for c in commands if c.startswith("docker run")]
    curls = [c for c in commands if c.startswith("curl")]
    assert runs and curls, commands
    try:
        for command in commands:
            if command.startswith("docker build"):
                continue
            if command.startswith("docker run"):
                words = shlex.split(command.replace("$PWD", str(REPO)))
                assert words[-1] == "prism" or "prism" in words, words
                words = [IMAGE if w == "prism" else w for w in words[2:]]
                if "--rm" in words:
                    words.remove("--rm")  # kept until the test removes it, to read its logs
                podman("run", "-d", "--name", name, *MACHINE, *words)
                Container(name, 8080).wait_healthy()
            elif command.startswith("curl"):
                result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
                assert result.returncode == 0, f"{command}\n{result.stderr}"
                assert '"choices"' in result.stdout or '"status"' in result.stdout, result.stdout
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
