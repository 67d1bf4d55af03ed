"""Fixtures for Prism's integration tests: the real `prism-gateway` binary, run as a subprocess
against mock OpenAI-compatible upstreams.

Environment:
  PRISM_BIN          the binary (default <repo>/dist/prism-gateway)
  PRISM_PLUGINS_DIR  first-party plugins (default <repo>/dist/plugins)
  PRISM_TEST_TIMEOUT per-test wall-clock limit in seconds (default 60; SIGALRM based, no plugin)
  PRISM_TEST_AS_ROOT 1: run the gateway as the test runner's user even when that is root

Run as root (as CI does), every gateway the suite starts runs as production does: as an
unprivileged user (nobody) with no capabilities at all, through setpriv. A socket option or a
file that needs privilege then fails here, not first in the image.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import pytest

from mock_upstream import MockUpstream
from prism_helpers import BROKEN_FIXTURES, FIRST_PARTY_PLUGINS, free_port, get, to_yaml

REPO = Path(__file__).resolve().parents[2]
PRISM_BIN = Path(os.environ.get("PRISM_BIN") or REPO / "dist" / "prism-gateway")
PRISM_PLUGINS_DIR = Path(os.environ.get("PRISM_PLUGINS_DIR") or REPO / "dist" / "plugins")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DEFAULT_TEST_TIMEOUT = float(os.environ.get("PRISM_TEST_TIMEOUT") or 60)
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGILL, signal.SIGBUS, signal.SIGFPE,
                 signal.SIGTRAP}
PROXY_VARS = ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]

# The SDK (and anything else in this process) must talk to 127.0.0.1 directly.
for _var in PROXY_VARS:
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


UNPRIVILEGED_UID = 65534  # nobody
RUN_UNPRIVILEGED = os.geteuid() == 0 and os.environ.get("PRISM_TEST_AS_ROOT") != "1"


def as_production(cmd: list[str]) -> list[str]:
    """The command run as an unprivileged user with no capabilities (when the suite runs as root)."""
    if not RUN_UNPRIVILEGED:
        return cmd
    return ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *cmd]


def open_to_gateway(directory: Path) -> None:
    """Lets the unprivileged gateway use a test directory: pytest makes them 0700 under root.
    The directory becomes writable (admin stores, state) and its parents traversable."""
    if not RUN_UNPRIVILEGED:
        return
    os.chmod(directory, 0o777)
    for parent in directory.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            os.chmod(parent, (mode & 0o7777) | 0o711)


def give_to_gateway(directory: Path) -> Path:
    """A data directory the gateway writes to, owned by the gateway's user (as the image's volume
    is owned by its USER)."""
    directory.mkdir(parents=True, exist_ok=True)
    if RUN_UNPRIVILEGED:
        os.chown(directory, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    return directory


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "time_limit(seconds): wall-clock limit for one test")


# ---- per-test time limit -------------------------------------------------------------------------

class TimeLimitExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request: pytest.FixtureRequest):
    """SIGALRM-based limit covering setup, call and teardown of function-scoped fixtures."""
    marker = request.node.get_closest_marker("time_limit")
    seconds = float(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded(f"{request.node.nodeid} exceeded its time limit of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- the binary and plugins ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def prism_bin() -> Path:
    if not PRISM_BIN.is_file():
        pytest.fail(f"prism-gateway binary not found at {PRISM_BIN}: run `make build` first or set "
                    f"PRISM_BIN to the binary", pytrace=False)
    if not os.access(PRISM_BIN, os.X_OK):
        pytest.fail(f"{PRISM_BIN} is not executable", pytrace=False)
    if RUN_UNPRIVILEGED:
        # The unprivileged gateway must reach the binary and plugins (a clone under /root may not).
        for path in (PRISM_BIN.parent, PRISM_PLUGINS_DIR):
            for parent in path.resolve().parents:
                mode = parent.stat().st_mode
                if mode & 0o001 == 0:
                    os.chmod(parent, (mode & 0o7777) | 0o711)
    return PRISM_BIN


@pytest.fixture(scope="session")
def dist_plugins_dir() -> Path:
    if not PRISM_PLUGINS_DIR.is_dir():
        pytest.fail(f"plugins directory not found at {PRISM_PLUGINS_DIR}: run `make build` first or "
                    f"set PRISM_PLUGINS_DIR", pytrace=False)
    missing = [name for name in FIRST_PARTY_PLUGINS if not (PRISM_PLUGINS_DIR / name).is_file()]
    if missing:
        pytest.fail(f"first-party plugins missing from {PRISM_PLUGINS_DIR}: {', '.join(missing)}",
                    pytrace=False)
    return PRISM_PLUGINS_DIR


@pytest.fixture(scope="session")
def c_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds examples/plugins (C) and the broken fixtures with scripts/build-c-plugins.sh."""
    script = REPO / "scripts" / "build-c-plugins.sh"
    if not script.is_file():
        pytest.fail(f"{script} not found", pytrace=False)
    out = tmp_path_factory.mktemp("c-plugins")
    open_to_gateway(out)
    try:
        proc = subprocess.run(["bash", str(script), str(out)], cwd=REPO, capture_output=True,
                              text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish within 180 s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{script} failed with exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                    f"stderr:\n{proc.stderr}", pytrace=False)
    expected = [out / "c-example-provider.so", out / "c-example-quota.so"] + \
        [out / "broken" / f"{n}.so" for n in BROKEN_FIXTURES]
    missing = [str(p) for p in expected if not p.is_file()]
    if missing:
        pytest.fail(f"{script} did not produce: {', '.join(missing)}", pytrace=False)
    return out


PluginSpec = Union[Path, str, tuple]


@pytest.fixture
def make_plugins_dir(tmp_path: Path, dist_plugins_dir: Path) -> Callable[..., Path]:
    """make_plugins_dir(extra=[path | (path, name) | (path, name, mode)], include_dist=True)
    -> a fresh directory with the dist plugins and the extra files, mode 0755 unless given."""
    counter = [0]

    def make(extra: Iterable[PluginSpec] = (), include_dist: bool = True) -> Path:
        counter[0] += 1
        d = tmp_path / f"plugins-{counter[0]}"
        d.mkdir()
        open_to_gateway(tmp_path)
        os.chmod(d, 0o755)
        items: list[tuple[Path, str, int]] = []
        if include_dist:
            items += [(dist_plugins_dir / n, n, 0o755) for n in FIRST_PARTY_PLUGINS]
        for spec in extra:
            if isinstance(spec, tuple):
                src = Path(spec[0])
                name = spec[1] if len(spec) > 1 else src.name
                mode = spec[2] if len(spec) > 2 else 0o755
            else:
                src, name, mode = Path(spec), Path(spec).name, 0o755
            items.append((src, name, mode))
        for src, name, mode in items:
            shutil.copyfile(src, d / name)
            os.chmod(d / name, mode)
        return d

    return make


# ---- mock upstreams ------------------------------------------------------------------------------

@pytest.fixture
def _mocks() -> Iterable[list]:
    registry: list[MockUpstream] = []
    yield registry
    for m in registry:
        m.stop()


@pytest.fixture
def make_mock(_mocks: list) -> Callable[[], MockUpstream]:
    def make() -> MockUpstream:
        m = MockUpstream().start()
        _mocks.append(m)
        return m
    return make


@pytest.fixture
def mock_upstream(make_mock: Callable[[], MockUpstream]) -> MockUpstream:
    return make_mock()


# ---- the gateway ---------------------------------------------------------------------------------

def clean_env(overrides: Optional[dict] = None) -> dict:
    """The environment for a prism-gateway subprocess: no proxies, no PRISM_CONFIG unless given.
    A None value in `overrides` removes that variable."""
    env = dict(os.environ)
    for var in PROXY_VARS + ["PRISM_CONFIG"]:
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Gateway:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path,
                 config_path: Optional[Path], plugins_dir: Optional[Path]) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.config_path = config_path
        self.plugins_dir = plugins_dir

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def log_lines(self, contains: str = "") -> list[str]:
        return [line for line in self.log().splitlines() if contains in line]

    def wait_for_log(self, pattern: str, timeout: float = 5.0, flags: int = 0) -> re.Match:
        """Waits until a log line matches `pattern` (re.search); fails with the log tail if not."""
        regex = re.compile(pattern, flags)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                m = regex.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                pytest.fail(f"no log line matched {pattern!r} within {timeout}s; log tail:\n"
                            f"{self.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def request_log_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(r"\brequest id=", line)]

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> Optional[int]:
        """The exit code, or None if still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _crash_description(code: Optional[int]) -> Optional[str]:
    if code is not None and code < 0 and -code in {int(s) for s in CRASH_SIGNALS}:
        return f"killed by {signal.Signals(-code).name}"
    return None


@pytest.fixture
def gateway(prism_bin: Path, dist_plugins_dir: Path, tmp_path: Path, _mocks: list):
    """gateway(config=dict|str|None, *, plugins_dir=None, env=None, cwd=None, args=(),
    wait_ready=True, use_port_flag=True, wrapper=()) -> Gateway.
    `wrapper` runs before the binary (e.g. ["prlimit", "--nofile=64:64"]), inside the unprivileged user.

    `config` dict is written as YAML (str as is) to tmp_path and passed with --config; None passes
    no --config. The gateway always gets --plugins-dir (dist plugins unless given) and --port.
    After the test: SIGTERM, SIGKILL after 10 s; a crash (SIGSEGV, SIGABRT, ...) fails the test."""
    started: list[Gateway] = []
    counter = [0]
    open_to_gateway(tmp_path)

    def start(config: Union[dict, str, None] = None, *, plugins_dir: Optional[Path] = None,
              env: Optional[dict] = None, cwd: Optional[Path] = None, args: Iterable[str] = (),
              wait_ready: bool = True, pass_plugins_dir: bool = True,
              wrapper: Iterable[str] = ()) -> Gateway:
        counter[0] += 1
        n = counter[0]
        config_path: Optional[Path] = None
        if config is not None:
            config_path = tmp_path / f"prism-{n}.yaml"
            config_path.write_text(config if isinstance(config, str) else to_yaml(config))
        pdir = plugins_dir or dist_plugins_dir
        for attempt in range(3):
            port = free_port()
            log_path = tmp_path / f"gateway-{n}-{attempt}.log"
            cmd = [*wrapper, str(prism_bin)]
            if config_path is not None:
                cmd += ["--config", str(config_path)]
            if pass_plugins_dir:
                cmd += ["--plugins-dir", str(pdir)]
            cmd += ["--port", str(port), *args]
            with open(log_path, "wb") as log_file:
                proc = subprocess.Popen(as_production(cmd), stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=str(cwd or tmp_path),
                                        env=clean_env(env))
            gw = Gateway(proc, port, log_path, config_path, pdir if pass_plugins_dir else None)
            started.append(gw)
            if not wait_ready:
                return gw
            state = _wait_ready(gw)
            if state == "ready":
                return gw
            log = gw.log()
            if re.search(r"address already in use|EADDRINUSE", log, re.I) and attempt < 2:
                continue  # lost a port race; try another port
            pytest.fail(f"gateway did not become ready ({state}); command: {' '.join(cmd)}\n"
                        f"log:\n{gw.log_tail(80)}", pytrace=False)
        raise AssertionError("unreachable")

    yield start

    # Let held mock requests go so in-flight requests can finish, then stop every gateway.
    for m in _mocks:
        m._stopping.set()
        m.release.set()
    crashes = []
    for gw in started:
        was_dead = gw.proc.poll() is not None
        code = gw.stop()
        crash = _crash_description(code)
        if crash:
            when = "before the end of the test" if was_dead else "on SIGTERM"
            crashes.append(f"gateway on port {gw.port} {crash} {when}; log tail:\n{gw.log_tail(40)}")
    if crashes:
        pytest.fail("\n\n".join(crashes), pytrace=False)


def _wait_ready(gw: Gateway, timeout: float = READY_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = gw.proc.poll()
        if code is not None:
            return f"exited with code {code}"
        try:
            if get(gw.url("/readyz"), timeout=1.0).status == 200:
                return "ready"
        except OSError:
            pass
        time.sleep(0.05)
    return f"/readyz not 200 within {timeout:g}s"


@pytest.fixture
def run_prism(prism_bin: Path, tmp_path: Path):
    """run_prism(*args, env=None, cwd=None, timeout=30) -> CompletedProcess (text)."""
    def run(*args: str, env: Optional[dict] = None, cwd: Optional[Path] = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
        open_to_gateway(tmp_path)
        return subprocess.run(as_production([str(prism_bin), *args]), capture_output=True, text=True,
                              timeout=timeout, cwd=str(cwd or tmp_path), env=clean_env(env),
                              stdin=subprocess.DEVNULL)
    return run
