"""Fixtures for the `prism` package's tests: the real `prism-gateway` binary (dist/) run by the
integration suite's own fixtures (Tests/integration/conftest.py: as `nobody` when run as root,
crash checks, per-test time limit) in front of its mock OpenAI upstream.

The integration conftest is imported under another module name (this file is `conftest` here)
and its fixtures re-exported, so both suites start gateways the same way."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
INTEGRATION = REPO / "Tests" / "integration"
sys.path.insert(0, str(INTEGRATION))


def _load_integration_conftest() -> Any:
    name = "prism_integration_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INTEGRATION / "conftest.py")
    assert spec is not None and spec.loader is not None, INTEGRATION
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_integration = _load_integration_conftest()

# The integration suite's fixtures, used as they are.
_time_limit = _integration._time_limit
prism_bin = _integration.prism_bin
dist_plugins_dir = _integration.dist_plugins_dir
_mocks = _integration._mocks
make_mock = _integration.make_mock
mock_upstream = _integration.mock_upstream
gateway = _integration.gateway

from prism_helpers import make_config, openai_provider  # noqa: E402  (Tests/integration on sys.path)

CLIENT_KEY = "sk-prism-client-key-for-tests-01"
OTHER_KEY = "sk-prism-limited-key-for-tests-2"
ADMIN_TOKEN = "admin-token-for-client-tests-003"
MASTER_KEY = "master-key-for-client-tests-abcdef"
UPSTREAM_SECRET = "sk-upstream-secret-for-client-tests-9f8e"
# USD per million tokens; the mock upstream reports 13 prompt and 7 completion tokens unless told.
PRICES = {
    "gpt-4o-mini": {"input_per_mtok": 2, "output_per_mtok": 10, "cached_input_per_mtok": 0.5},
    "gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "time_limit(seconds): wall-clock limit for one test")


@dataclass
class Setup:
    """A running gateway with auth, the admin API, prices and a mock upstream."""

    gw: Any
    mock: Any
    key: str = CLIENT_KEY
    admin_token: str = ADMIN_TOKEN

    @property
    def base_url(self) -> str:
        return self.gw.base_url


def gateway_config(mock: Any, store: Path, *, extra_keys: Optional[list[dict[str, Any]]] = None,
                   **sections: Any) -> dict[str, Any]:
    keys = [{"name": "client-key", "key": CLIENT_KEY, "owner": "client-tests"},
            {"name": "limited-key", "key": OTHER_KEY, "models": ["gpt-4o-mini"]}] + list(extra_keys or [])
    sections.setdefault("cost_tracking", {"custom_pricing": PRICES})
    return make_config({"up": openai_provider(mock.v1_url)},
                       auth={"enabled": True, "keys": keys},
                       admin={"token": ADMIN_TOKEN, "store": str(store)}, **sections)


@pytest.fixture
def start_setup(gateway: Callable[..., Any], mock_upstream: Any, tmp_path: Path) -> Callable[..., Setup]:
    """start_setup(**config sections) -> Setup: a gateway on a free port."""
    def start(**sections: Any) -> Setup:
        store = _integration.give_to_gateway(tmp_path / "admin-store") / "prism-admin.sqlite"
        gw = gateway(gateway_config(mock_upstream, store, **sections), env={"PRISM_MASTER_KEY": MASTER_KEY})
        return Setup(gw, mock_upstream)
    return start


@pytest.fixture
def setup(start_setup: Callable[..., Setup]) -> Setup:
    return start_setup()


# ---- the seed snippet's gateway: localhost:8080 ----------------------------------------------------

SEED_PORT = 8080
SEED_KEY = "sk-prism-my-key-here"


def _port_taken(port: int) -> Optional[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return "something accepts connections on 127.0.0.1:8080"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port))
    except OSError as err:
        return f"127.0.0.1:8080 cannot be bound ({err})"
    return None


@pytest.fixture
def gateway_on_8080(prism_bin: Path, dist_plugins_dir: Path, tmp_path: Path, mock_upstream: Any) -> Iterator[Any]:
    """The gateway where the seed snippet expects it, `http://localhost:8080`, with its key
    `sk-prism-my-key-here` and `gpt-4o` served by the mock upstream. Fails (never skips) when the
    port is taken: stop whatever listens there (`make run`?) and run again."""
    taken = _port_taken(SEED_PORT)
    if taken:
        pytest.fail(f"the seed snippet needs the gateway on localhost:8080, but {taken}: stop that "
                    "process (a `make run` gateway?) and run the tests again", pytrace=False)
    _integration.open_to_gateway(tmp_path)
    config = make_config({"openai": openai_provider(mock_upstream.v1_url, models=["gpt-4o", "gpt-4o-mini"])},
                         server={"host": "127.0.0.1", "port": SEED_PORT},
                         auth={"enabled": True, "keys": [{"name": "my-key", "key": SEED_KEY, "owner": "dev-team"}]})
    config_path = tmp_path / "seed.yaml"
    config_path.write_text(_integration.to_yaml(config))
    log_path = tmp_path / "seed-gateway.log"
    cmd = [str(prism_bin), "--config", str(config_path), "--plugins-dir", str(dist_plugins_dir)]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(_integration.as_production(cmd), stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(tmp_path), env=_integration.clean_env())
    gw = _integration.Gateway(proc, SEED_PORT, log_path, config_path, dist_plugins_dir)
    try:
        state = _integration._wait_ready(gw)
        if state != "ready":
            pytest.fail(f"the gateway on :8080 did not become ready ({state}); log:\n{gw.log_tail(60)}",
                        pytrace=False)
        yield gw
    finally:
        crash = _integration._crash_description(gw.stop())
        if crash:
            pytest.fail(f"the gateway on :8080 was {crash}; log:\n{gw.log_tail(40)}", pytrace=False)
