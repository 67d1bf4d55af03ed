"""A configuration that cannot serve what it says is refused: at startup, on reload (the running
generation stays) and by `validate`, which loads the plugins and creates every instance without
serving or touching the network. /readyz is 503 while no provider could be created."""

import pytest

from prism_helpers import assert_openai_error, chat_body, get, make_config, openai_provider, post, to_yaml

ADMIN = "admin-token-refusals-0123456789"
BROKEN = {
    # azure needs base_url: its instance_new fails with the plugin's own message.
    "azure without base_url": ({"az": {"api_format": "azure", "api_key": "k", "models": ["gpt-4o"]}}, {},
                               "base_url"),
    "unknown api_format": ({"x": {"api_format": "no-such-format", "models": ["m"]}}, {}, "no-such-format"),
    "unknown middleware": ({"m": {"type": "mock", "models": ["m"]}}, {"middleware": ["no-such-middleware"]},
                           "no-such-middleware"),
    "unknown routing strategy": ({"m": {"type": "mock", "models": ["m"]}},
                                 {"routing": {"default_strategy": "no-such-strategy"}}, "no-such-strategy"),
}


def config(providers, extra):
    return {"server": {"host": "127.0.0.1"}, "providers": providers, **extra}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validate_refuses_what_cannot_serve(run_prism, tmp_path, case):
    providers, extra, word = BROKEN[case]
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(config(providers, extra)))
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1, f"{case}: validate said {result.stdout!r}"
    assert word in result.stderr, result.stderr


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_startup_refuses_what_cannot_serve(gateway, case):
    providers, extra, word = BROKEN[case]
    gw = gateway(config(providers, extra), wait_ready=False)
    assert gw.wait_exit(10) == 1, f"{case}: the gateway started"
    assert word in gw.log(), gw.log_tail()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_reload_to_what_cannot_serve_keeps_the_running_generation(gateway, mock_upstream, case):
    good = make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}, admin={"token": ADMIN})
    gw = gateway(good)
    providers, extra, word = BROKEN[case]
    gw.config_path.write_text(to_yaml({**good, "providers": {**good["providers"], **providers}, **extra}))
    refused = post(gw.url("/-/reload"), headers={"Authorization": f"Bearer {ADMIN}"})
    error = assert_openai_error(refused, 400)
    assert word in error["message"], error
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")).status == 200


def test_readyz_is_503_with_no_provider(gateway):
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {}}, wait_ready=False)
    def readyz():
        try:
            return get(gw.url("/readyz"), timeout=1)
        except OSError:
            return None
    import time
    deadline = time.monotonic() + 10
    while (answer := readyz()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer is not None, gw.log_tail()
    assert answer.status == 503 and answer.json() == {"status": "no_providers"}
    assert get(gw.url("/healthz")).status == 200
