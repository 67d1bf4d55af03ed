"""Config loading: `prism-gateway validate`, file:line:col diagnostics, ${VAR} expansion, config
discovery ($PRISM_CONFIG, ./config.yaml)."""

import re
import textwrap
from pathlib import Path

import pytest

from prism_helpers import chat_body, free_port, make_config, openai_provider, post, to_yaml

SEED = Path(__file__).resolve().parents[2] / "config" / "examples" / "seed.yaml"


def write(tmp_path, text, name="prism.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def output(proc):
    return proc.stdout + proc.stderr


def diag(path, line, kind):
    """Regex for a diagnostic line `FILE:LINE:COL: <kind>: `."""
    line_re = r"\d+" if line is None else str(line)
    return re.compile(rf"^{re.escape(str(path))}:{line_re}:(\d+): {kind}: (.*)$", re.M)


def line_of(path, needle):
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        if needle in text:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


# ---- the seed config -----------------------------------------------------------------------------

def test_seed_validates_with_env(run_prism):
    proc = run_prism("validate", "--config", str(SEED), env={"OPENAI_API_KEY": "sk-test-not-real"})
    assert proc.returncode == 0, output(proc)
    assert f"config OK: {SEED}" in output(proc)
    assert not diag(SEED, None, "error").search(proc.stderr), proc.stderr


def test_seed_without_env_names_the_variable(run_prism):
    proc = run_prism("validate", "--config", str(SEED), env={"OPENAI_API_KEY": None})
    assert proc.returncode == 1, output(proc)
    errors = diag(SEED, line_of(SEED, "${OPENAI_API_KEY}"), "error").findall(proc.stderr)
    assert errors, f"no `{SEED}:6:COL: error:` line in:\n{proc.stderr}"
    message = errors[0][1]
    assert "OPENAI_API_KEY" in message, message
    assert message.startswith("providers.openai.api_key"), message
    assert "config OK" not in output(proc)


# ---- ${VAR} and ${VAR:-default} ------------------------------------------------------------------

def test_env_default_validates(run_prism, tmp_path):
    path = write(tmp_path, """
        providers:
          up:
            api_key: "${PRISM_ITEST_UNSET_VAR:-sk-from-default}"
            api_format: "openai"
            base_url: "${PRISM_ITEST_UNSET_URL:-http://127.0.0.1:9/v1}"
            models: [gpt-4o]
    """)
    proc = run_prism("validate", "--config", str(path),
                     env={"PRISM_ITEST_UNSET_VAR": None, "PRISM_ITEST_UNSET_URL": None})
    assert proc.returncode == 0, output(proc)


def test_env_expansion_reaches_the_provider(gateway, mock_upstream, tmp_path):
    config = textwrap.dedent("""
        server:
          host: "127.0.0.1"
        providers:
          from-default:
            api_key: "${PRISM_ITEST_UNSET_KEY:-sk-from-default}"
            api_format: "openai"
            base_url: "${PRISM_ITEST_MOCK_URL}"
            models: [gpt-4o]
          from-env:
            api_key: "${PRISM_ITEST_SET_KEY:-sk-default-not-used}"
            api_format: "openai"
            base_url: "http://127.0.0.1:${PRISM_ITEST_MOCK_PORT}/v1"
            models: [gpt-4o-mini]
    """).lstrip()
    gw = gateway(config, env={"PRISM_ITEST_UNSET_KEY": None, "PRISM_ITEST_SET_KEY": "sk-from-env",
                              "PRISM_ITEST_MOCK_URL": mock_upstream.v1_url,
                              "PRISM_ITEST_MOCK_PORT": str(mock_upstream.port)})
    assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o")).status == 200
    assert mock_upstream.last_chat().headers["authorization"] == "Bearer sk-from-default"
    assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini")).status == 200
    assert mock_upstream.last_chat().headers["authorization"] == "Bearer sk-from-env"


def test_missing_variable_stops_the_server(tmp_path, run_prism, dist_plugins_dir):
    path = write(tmp_path, """
        server:
          host: "127.0.0.1"
        providers:
          up:
            api_key: "${PRISM_ITEST_MISSING_VAR}"
            api_format: "openai"
            models: [gpt-4o]
    """)
    proc = run_prism("--config", str(path), "--plugins-dir", str(dist_plugins_dir),
                     "--port", str(free_port()), env={"PRISM_ITEST_MISSING_VAR": None}, timeout=20)
    assert proc.returncode != 0
    assert "PRISM_ITEST_MISSING_VAR" in output(proc)
    line = line_of(path, "PRISM_ITEST_MISSING_VAR")
    assert re.search(rf"{re.escape(str(path))}:{line}:\d+: error:", output(proc)), output(proc)


# ---- diagnostics ---------------------------------------------------------------------------------

BASE = """
server:
  host: "127.0.0.1"
{server_extra}providers:
  up:
    api_key: "sk-x"
    api_format: "openai"
    base_url: "http://127.0.0.1:9/v1"
    models: [gpt-4o]
{provider_extra}"""


def config_text(server_extra="", provider_extra=""):
    return BASE.format(server_extra=server_extra, provider_extra=provider_extra).lstrip("\n")


@pytest.mark.parametrize("value", ["5 parsecs", "five seconds", "5x"])
def test_bad_duration(run_prism, tmp_path, value):
    path = write(tmp_path, config_text(server_extra=f"  read_timeout: {value}\n"))
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    errors = diag(path, line_of(path, "read_timeout"), "error").findall(proc.stderr)
    assert errors, f"no `{path}:3:COL: error:` line in:\n{proc.stderr}"
    assert errors[0][1].startswith("server.read_timeout"), errors


def test_bad_provider_duration(run_prism, tmp_path):
    path = write(tmp_path, config_text(provider_extra="    default_timeout: soon\n"))
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    errors = diag(path, line_of(path, "default_timeout"), "error").findall(proc.stderr)
    assert errors and errors[0][1].startswith("providers.up.default_timeout"), proc.stderr


@pytest.mark.parametrize("duration", ["500ms", "30s", "5m", "1h"])
def test_good_durations(run_prism, tmp_path, duration):
    path = write(tmp_path, config_text(server_extra=f"  shutdown_timeout: {duration}\n",
                                       provider_extra=f"    default_timeout: {duration}\n"))
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize("extra,key_path", [
    ("  port: eighty\n", "server.port"),
    ("  max_request_body_size: lots\n", "server.max_request_body_size"),
])
def test_bad_scalar_type(run_prism, tmp_path, extra, key_path):
    path = write(tmp_path, config_text(server_extra=extra))
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    errors = diag(path, 3, "error").findall(proc.stderr)
    assert errors and errors[0][1].startswith(key_path), proc.stderr


def test_bad_log_level(run_prism, tmp_path):
    path = write(tmp_path, config_text() + "logging:\n  level: loud\n")
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    errors = diag(path, line_of(path, "level: loud"), "error").findall(proc.stderr)
    assert errors and errors[0][1].startswith("logging.level"), proc.stderr


def test_unknown_key_is_a_warning(run_prism, tmp_path):
    path = write(tmp_path, config_text(server_extra="  colour: blue\n") + "frobnicate: 1\n")
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 0, output(proc)
    assert f"config OK: {path}" in output(proc)
    warnings = diag(path, line_of(path, "colour"), "warning").findall(proc.stderr)
    assert warnings and "colour" in warnings[0][1], proc.stderr
    warnings = diag(path, line_of(path, "frobnicate"), "warning").findall(proc.stderr)
    assert warnings and "frobnicate" in warnings[0][1], proc.stderr


def test_yaml_syntax_error(run_prism, tmp_path):
    path = write(tmp_path, """
        server:
          host: "127.0.0.1"
          port: a: b
        providers: {}
    """)
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    m = diag(path, 3, "error").search(proc.stderr)
    assert m, f"no `{path}:3:COL: error:` line in:\n{proc.stderr}"
    assert int(m.group(1)) >= 1


def test_yaml_syntax_error_unclosed_flow(run_prism, tmp_path):
    path = write(tmp_path, """
        server:
          host: "127.0.0.1"
        providers:
          up:
            models: [gpt-4o, gpt-4o-mini
            api_format: "openai"
    """)
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 1, output(proc)
    assert diag(path, None, "error").search(proc.stderr), proc.stderr


def test_missing_config_file(run_prism, tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = run_prism("validate", "--config", str(missing))
    assert proc.returncode == 1
    assert str(missing) in output(proc)


INACTIVE_SECTIONS = """
routing:
  default_strategy: "round-robin"
  failover:
    enabled: true
    max_attempts: 3
cache:
  enabled: true
  default_ttl: 5m
  max_entries: 10000
rate_limiting:
  enabled: true
  global_rpm: 1000
"""


def test_cache_and_rate_limiting_sections_are_checked_and_active(run_prism, tmp_path):
    path = write(tmp_path, config_text() + INACTIVE_SECTIONS.lstrip("\n") + "  burst: 5\n")
    proc = run_prism("validate", "--config", str(path))
    assert proc.returncode == 0, output(proc)
    assert "not active" not in proc.stderr
    # A key the section does not know is a warning with its location.
    warnings = diag(path, line_of(path, "burst:"), "warning").findall(proc.stderr)
    assert warnings and "rate_limiting.burst" in warnings[0][1], proc.stderr


def test_enabled_sections_join_the_default_middleware_order(gateway, mock_upstream):
    cfg = to_yaml(make_config({"up": openai_provider(mock_upstream.v1_url)})) + INACTIVE_SECTIONS.lstrip("\n")
    gw = gateway(cfg)
    answer = post(gw.url("/v1/chat/completions"), chat_body("gpt-4o"))
    assert answer.status == 200
    assert answer.headers["x-prism-cache"] == "miss"
    assert answer.headers["x-ratelimit-limit-requests"] == "1000"


# ---- where the config comes from -----------------------------------------------------------------

def provider_config_text(mock, model):
    return to_yaml(make_config({"up": openai_provider(mock.v1_url, models=[model])}))


def test_prism_config_env(gateway, make_mock, tmp_path):
    mock = make_mock()
    path = tmp_path / "from-env.yaml"
    path.write_text(provider_config_text(mock, "model-from-env"))
    gw = gateway(None, env={"PRISM_CONFIG": str(path)})
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-env")).status == 200
    assert mock.last_chat().body["model"] == "model-from-env"


def test_config_yaml_in_cwd(gateway, make_mock, tmp_path):
    mock = make_mock()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "config.yaml").write_text(provider_config_text(mock, "model-from-cwd"))
    gw = gateway(None, cwd=cwd)
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-cwd")).status == 200
    assert mock.last_chat().body["model"] == "model-from-cwd"


def test_config_precedence(gateway, make_mock, tmp_path):
    """--config beats $PRISM_CONFIG, which beats ./config.yaml."""
    mock = make_mock()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "config.yaml").write_text(provider_config_text(mock, "model-from-cwd"))
    env_path = tmp_path / "from-env.yaml"
    env_path.write_text(provider_config_text(mock, "model-from-env"))

    gw = gateway(None, cwd=cwd, env={"PRISM_CONFIG": str(env_path)})
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-env")).status == 200
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-cwd")).status == 404
    gw.stop()

    gw = gateway(provider_config_text(mock, "model-from-flag"), cwd=cwd, env={"PRISM_CONFIG": str(env_path)})
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-flag")).status == 200
    assert post(gw.url("/v1/chat/completions"), chat_body("model-from-env")).status == 404


def test_port_flag_overrides_config(gateway, mock_upstream):
    # The config says 8080; the gateway became ready on the fixture's --port, which must win.
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, server={"port": 8080}))
    assert post(gw.url("/v1/chat/completions"), chat_body("gpt-4o")).status == 200
