"""The Rust example provider (examples/rust-provider): the crate is built with cargo (offline, std
only, into a temporary target directory), its own tests run (among them the layout test that
compares every #[repr(C)] mirror with prism_plugin.h through a C program), and the built .so is
loaded into the real gateway: listed by `plugins`, passed through `plugin-test`, and serving chat
completions (whole and streamed), the model list and upstream errors against the mock upstream.

cargo must be installed (rustup: ~/.cargo/bin); without it these tests fail, they do not skip."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, open_to_gateway
from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config, parse_chunks, post,
                           stream_text, wait_until)

CRATE = REPO / "examples" / "rust-provider"
HEADER = REPO / "Sources" / "PrismPluginABI" / "include" / "prism_plugin.h"
BUILT_NAME = "librust_example_provider.so"  # what cargo makes of the crate name
SO_NAME = "rust-example-provider.so"
COMPONENT = "rust-example"
PLUGIN_ID = "dev.prism.example.rust-provider"
CARGO_TIMEOUT = 300  # a cold build on a slow machine; the warm build takes seconds
UPSTREAM_KEY = "sk-rust-example-upstream-key"
LISTING = re.compile(r"^(?P<id>\S+) (?P<version>\S+) kinds=(?P<kinds>\S+) components=(?P<components>\S+) "
                     r"abi=(?P<abi>\S+) file=(?P<file>\S+)\s*$")
# What a std-only cdylib may need at run time: the C runtime and, for unwinding, libgcc_s.
C_RUNTIME = {"libc.so.6", "libgcc_s.so.1", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
             "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


# ---- building the crate --------------------------------------------------------------------------

def cargo_binary() -> str:
    candidates = [shutil.which("cargo"), str(Path.home() / ".cargo" / "bin" / "cargo"), "/root/.cargo/bin/cargo"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("cargo not found (looked on PATH, in ~/.cargo/bin and /root/.cargo/bin): the Rust example "
                "(examples/rust-provider) needs a Rust toolchain, 1.77 or newer (rustup's; Debian bookworm's "
                "rustc 1.63 is too old). It needs no crates.io access. Install one, then run these tests again.",
                pytrace=False)


def run_cargo(args: list, target_dir: Path) -> subprocess.CompletedProcess:
    cargo = cargo_binary()
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir), CARGO_TERM_COLOR="never")
    # rustup's proxies find their toolchain through PATH and HOME; keep cargo's directory on PATH.
    env["PATH"] = os.path.dirname(cargo) + os.pathsep + env.get("PATH", "")
    command = [cargo, *args, "--offline", "--manifest-path", str(CRATE / "Cargo.toml")]
    try:
        return subprocess.run(command, cwd=CRATE, env=env, capture_output=True, text=True, timeout=CARGO_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(command)}` did not finish within {CARGO_TIMEOUT} s", pytrace=False)


@pytest.fixture(scope="session")
def rust_target_dir(tmp_path_factory) -> Path:
    """Cargo's target directory for this session: never inside the repository."""
    return tmp_path_factory.mktemp("rust-target")


@pytest.fixture(scope="session")
def rust_plugin(rust_target_dir, tmp_path_factory) -> Path:
    """`cargo build --offline --release` of examples/rust-provider; the .so, mode 755."""
    proc = run_cargo(["build", "--release"], rust_target_dir)
    if proc.returncode != 0:
        pytest.fail(f"cargo build failed with exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
                    pytrace=False)
    built = rust_target_dir / "release" / BUILT_NAME
    if not built.is_file():
        pytest.fail(f"cargo build succeeded but produced no {built}\n{proc.stderr}", pytrace=False)
    out = tmp_path_factory.mktemp("rust-plugin")
    open_to_gateway(out)
    os.chmod(out, 0o755)
    plugin = out / SO_NAME
    shutil.copyfile(built, plugin)
    os.chmod(plugin, 0o755)  # the gateway refuses group- or world-writable plugin files
    return plugin


@pytest.fixture
def rust_plugins_dir(make_plugins_dir, rust_plugin) -> Path:
    """A fresh plugins directory: the first-party plugins and the Rust example."""
    return make_plugins_dir([rust_plugin])


def header_minor() -> int:
    match = re.search(r"^#define PRISM_ABI_MINOR (\d+)", HEADER.read_text(), re.M)
    assert match, f"no PRISM_ABI_MINOR in {HEADER}"
    return int(match.group(1))


@pytest.mark.time_limit(CARGO_TIMEOUT + 60)
def test_cargo_test_checks_the_layout_against_the_header(rust_target_dir):
    """`cargo test`: the layout test compiles a C program against prism_plugin.h and compares every
    struct's size, alignment and field offsets, and every constant, with the Rust mirrors; it also
    fails when the header has a struct, member or constant the mirrors lack. Plus unit tests that
    drive the extern "C" functions with a fake host (panic barrier, short host structs, ...)."""
    proc = run_cargo(["test"], rust_target_dir)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cargo test failed with exit {proc.returncode}:\n{output[-6000:]}"
    for name in ["layout_test::abi_layout_matches_the_c_header",
                 "layout_test::abi_mirror_covers_every_struct_typedef_and_constant_of_the_header",
                 "tests::a_panic_becomes_an_internal_error_not_an_unwind"]:
        assert re.search(rf"^test {re.escape(name)} \.\.\. ok$", output, re.M), f"{name} did not pass:\n{output}"
    assert re.search(r"^test result: ok\. \d+ passed; 0 failed", output, re.M), output


# ---- the shared object ---------------------------------------------------------------------------

def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install binutils (it comes with the C compiler the layout test "
                    f"needs)", pytrace=False)
    return found


def test_the_shared_object_exports_only_the_entry_and_needs_only_the_c_runtime(rust_plugin):
    symbols = subprocess.run([tool("nm"), "-D", "--defined-only", str(rust_plugin)], capture_output=True,
                             text=True, timeout=30)
    assert symbols.returncode == 0, symbols.stderr
    exported = {line.split()[-1] for line in symbols.stdout.splitlines() if line.strip()}
    assert exported == {"prism_plugin_entry_v1"}, exported
    dynamic = subprocess.run([tool("readelf"), "-d", str(rust_plugin)], capture_output=True, text=True, timeout=30)
    assert dynamic.returncode == 0, dynamic.stderr
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic.stdout))
    assert needed and needed <= C_RUNTIME, f"unexpected run-time dependencies: {sorted(needed - C_RUNTIME)}"


def test_plugins_subcommand_lists_the_rust_example(run_prism, rust_plugins_dir):
    proc = run_prism("plugins", "--plugins-dir", str(rust_plugins_dir))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "refused" not in out, out
    rows = {m["file"]: m.groupdict() for m in map(LISTING.match, out.splitlines()) if m}
    row = rows.get(SO_NAME)
    assert row, f"{SO_NAME} not listed:\n{out}"
    assert (row["id"], row["version"], row["kinds"], row["components"]) == (PLUGIN_ID, "1.0.0", "provider", COMPONENT)
    # Built against the mirror of today's header (the layout test keeps the two equal).
    assert row["abi"] == f"1.{header_minor()}", row


@pytest.mark.time_limit(180)
def test_plugin_test_conformance_cases_all_pass(run_prism, rust_plugins_dir):
    """`prism-gateway plugin-test`: build, answer, stream, errors before and after the first byte,
    a 200 that is no answer, garbage events, cancellation, 8 threads at once, no leaked key."""
    proc = run_prism("plugin-test", str(rust_plugins_dir / SO_NAME), timeout=150)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    match = re.search(r"(\d+) of (\d+) cases passed", out)
    assert match and match.group(1) == match.group(2), out


# ---- serving through the real gateway ------------------------------------------------------------

def rust_section(base_url: str, **extra) -> dict:
    section = {"api_format": COMPONENT, "base_url": base_url, "api_key": UPSTREAM_KEY, "models": ["rust-model"]}
    section.update(extra)
    return section


@pytest.fixture(params=["base_url-without-v1", "base_url-with-v1"])
def rust_gateway(request, gateway, rust_plugins_dir, mock_upstream):
    base = mock_upstream.base_url if request.param == "base_url-without-v1" else mock_upstream.v1_url
    return gateway(make_config({"rprov": rust_section(base)}, level="debug"), plugins_dir=rust_plugins_dir)


def test_chat_completion(rust_gateway, mock_upstream):
    resp = post(rust_gateway.v1 + "/chat/completions", chat_body("rust-model"))
    assert resp.status == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == mock_upstream.content
    assert resp.headers.get("x-prism-provider") == "rprov"
    upstream = mock_upstream.last_chat()
    assert upstream.method == "POST" and upstream.path == "/v1/chat/completions"
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert upstream.headers["content-type"] == "application/json"
    assert upstream.body == chat_body("rust-model"), "the body went out unchanged"
    # Usage from translate_response reached the host's accounting.
    rust_gateway.wait_for_log(r"request id=.* provider=rprov status=200 .*tokens_in=13 tokens_out=7")


def test_streamed_chat_completion(rust_gateway, mock_upstream):
    with SSEStream(rust_gateway.v1 + "/chat/completions", chat_body("rust-model", stream=True)) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        chunks, done = parse_chunks(stream.read_all())
    assert done, "the stream did not end with [DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks), chunks
    assert stream_text(chunks) == mock_upstream.content
    assert mock_upstream.last_chat().body["stream"] is True


def test_streamed_usage_is_passed_on_and_reported(rust_gateway, mock_upstream):
    body = chat_body("rust-model", stream=True, stream_options={"include_usage": True})
    with SSEStream(rust_gateway.v1 + "/chat/completions", body) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done
    assert stream_text(chunks) == mock_upstream.content
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 13, chunks[-1]
    rust_gateway.wait_for_log(r"request id=.* provider=rprov status=200 .*tokens_in=13 tokens_out=7")


def test_the_routed_model_is_written_into_the_upstream_body(gateway, rust_plugins_dir, mock_upstream):
    gw = gateway(make_config({"rprov": rust_section(mock_upstream.base_url)}), plugins_dir=rust_plugins_dir)
    resp = post(gw.v1 + "/chat/completions", chat_body("rprov/some-other-model"))
    assert resp.status == 200, resp.text
    upstream = mock_upstream.last_chat()
    assert upstream.body["model"] == "some-other-model"
    assert upstream.body["messages"] == chat_body("x")["messages"]


def test_the_instance_logs_counts_requests_and_records_metrics(rust_gateway, mock_upstream):
    for _ in range(2):
        assert post(rust_gateway.v1 + "/chat/completions", chat_body("rust-model")).status == 200
    rust_gateway.wait_for_log(r"rust-example provider rprov ready for http://127\.0\.0\.1:\d+/v1\b")
    # The host's key-value service (counter) and debug log, through the instance's host table.
    rust_gateway.wait_for_log(r"rust-example provider rprov: request number 2\b")
    metrics = get(rust_gateway.url("/-/metrics"))
    assert metrics.status == 200, metrics.text
    counted = re.search(r'^rust_example_requests_total\{api="chat\.completions"\} (\d+)', metrics.text, re.M)
    assert counted and int(counted.group(1)) == 2, [l for l in metrics.text.splitlines() if "rust_example" in l]
    assert UPSTREAM_KEY not in rust_gateway.log()


def test_models_are_listed_through_the_plugin(gateway, rust_plugins_dir, mock_upstream):
    """A self-hosted server (`type: vllm`) served by the Rust provider: the gateway discovers its
    models at startup through the plugin's models.list, and they become routable."""
    mock_upstream.models = ["rusty-llama-8b", "rusty-qwen-1b"]
    mock_upstream.owned_by = "library"
    section = {"type": "vllm", "api_format": COMPONENT, "base_url": mock_upstream.base_url, "api_key": UPSTREAM_KEY}
    gw = gateway(make_config({"rlocal": section}), plugins_dir=rust_plugins_dir)

    def listed():
        body = get(gw.v1 + "/models").json()
        return {m["id"]: m for m in body["data"]}
    assert wait_until(lambda: set(mock_upstream.models) <= set(listed()), timeout=5), listed()
    models = listed()
    for model in mock_upstream.models:
        assert models[model]["owned_by"] == "rlocal" and models[model]["object"] == "model", models[model]
    asked = mock_upstream.recorded("/models")
    assert asked and asked[0].method == "GET" and asked[0].path == "/v1/models"
    assert asked[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    resp = post(gw.v1 + "/chat/completions", chat_body("rusty-qwen-1b"))
    assert resp.status == 200, resp.text
    assert resp.headers["x-prism-provider"] == "rlocal"
    assert mock_upstream.last_chat().body["model"] == "rusty-qwen-1b"


# ---- errors ---------------------------------------------------------------------------------------

@pytest.fixture
def rust_single(gateway, rust_plugins_dir, mock_upstream):
    return gateway(make_config({"rprov": rust_section(mock_upstream.v1_url)}), plugins_dir=rust_plugins_dir)


def test_an_upstream_error_becomes_an_openai_error(rust_single, mock_upstream):
    mock_upstream.fail_with(400, "The model `rust-model` does not exist", type="invalid_request_error",
                            code="model_not_found")
    err = assert_openai_error(post(rust_single.v1 + "/chat/completions", chat_body("rust-model")), 400,
                              code="provider_error", type="provider_error")
    assert err["message"] == "upstream returned HTTP 400: The model `rust-model` does not exist", err
    assert err["param"] is None


def test_an_upstream_429_keeps_its_status_and_retry_after(rust_single, mock_upstream):
    mock_upstream.script = [{"status": 429, "message": "Rate limit reached", "headers": {"Retry-After": "7"}}]
    resp = post(rust_single.v1 + "/chat/completions", chat_body("rust-model"))
    err = assert_openai_error(resp, 429, code="provider_error", type="provider_error")
    assert err["message"] == "upstream returned HTTP 429: Rate limit reached", err
    # Passed on through the error sink's add_header (ABI 1.4).
    assert resp.headers.get("retry-after") == "7", resp.headers


def test_an_upstream_error_that_is_not_json_keeps_its_text(rust_single, mock_upstream):
    mock_upstream.script = [{"raw": b"upstream exploded", "status": 500, "content_type": "text/plain"}]
    err = assert_openai_error(post(rust_single.v1 + "/chat/completions", chat_body("rust-model")), 500,
                              code="provider_error")
    assert err["message"] == "upstream returned HTTP 500: upstream exploded", err


def test_a_200_that_is_no_answer_is_an_error_not_an_answer(rust_single, mock_upstream):
    mock_upstream.script = [{"raw": b"<html><body>login</body></html>", "status": 200, "content_type": "text/html"}]
    err = assert_openai_error(post(rust_single.v1 + "/chat/completions", chat_body("rust-model")), 502,
                              code="provider_error")
    assert "not an OpenAI chat completion" in err["message"], err


def test_a_stream_cut_before_done_ends_with_an_error_event(rust_single, mock_upstream):
    mock_upstream.omit_done = True
    with SSEStream(rust_single.v1 + "/chat/completions", chat_body("rust-model", stream=True)) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done, "the host still ends the stream with [DONE]"
    assert "error" in chunks[-1], chunks[-1]
    assert "without data: [DONE]" in chunks[-1]["error"]["message"], chunks[-1]
    assert stream_text(chunks[:-1]) == mock_upstream.content
    rust_single.wait_for_log(r"request id=.* provider=rprov status=502")


def test_embeddings_are_refused_as_unsupported(rust_single, mock_upstream):
    resp = post(rust_single.v1 + "/embeddings", {"model": "rust-model", "input": "hello"})
    err = assert_openai_error(resp, 501, code="unsupported_api")
    assert '"embeddings"' in err["message"], err
    assert not mock_upstream.recorded("/embeddings")


# ---- configuration --------------------------------------------------------------------------------

def test_a_missing_base_url_is_refused_with_the_plugins_message(run_prism, rust_plugins_dir, tmp_path):
    config = tmp_path / "no-base-url.yaml"
    config.write_text(f'server:\n  host: "127.0.0.1"\nproviders:\n  rprov:\n    api_format: "{COMPONENT}"\n'
                      f'    models: ["rust-model"]\n')
    result = run_prism("validate", "--config", str(config), "--plugins-dir", str(rust_plugins_dir))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rust-example provider rprov: base_url is required" in result.stderr, result.stderr


def test_declared_config_keys_let_the_gateway_warn_about_a_typo(gateway, rust_plugins_dir, mock_upstream):
    """The provider declares the keys it reads (ABI 1.4 config_keys): a key that neither the
    gateway nor the plugin reads is reported, and the gateway still serves."""
    section = rust_section(mock_upstream.base_url, api_kye="typo")
    gw = gateway(make_config({"rprov": section}), plugins_dir=rust_plugins_dir)
    gw.wait_for_log(r"providers\.rprov\.api_kye: unknown key .*'rust-example'")
    assert post(gw.v1 + "/chat/completions", chat_body("rust-model")).status == 200
