"""Plugin loading: the `plugins` subcommand, the plain-C example provider serving real requests,
and refusal of broken, writable and duplicate plugins (the gateway keeps running with the rest)."""

import os
import shutil
import re

import pytest

from prism_helpers import (BROKEN_FIXTURES, FIRST_PARTY_PLUGINS, SSEStream, chat_body, make_config,
                           openai_provider, parse_chunks, post, stream_text)
from redis_server import RedisServer

C_EXAMPLE = "c-example-provider.so"
C_EXAMPLE_COPY = "c-example-provider-copy.so"
LISTING = re.compile(r"^(?P<id>\S+) (?P<version>\S+) kinds=(?P<kinds>\S+) components=(?P<components>\S+) "
                     r"abi=(?P<abi>\S+) file=(?P<file>\S+)\s*$")

REASONS = {
    "missing-entry.so": r"missing entry symbol prism_plugin_entry_v1",
    "wrong-major.so": r"ABI major (?!1 )\d+ is not supported \(host supports 1\)",
    "short-descriptor.so": r"descriptor struct_size \d+ is smaller than \d+",
    "null-required-function.so": r'(provider|middleware|router) "[^"]+": required function \w+ is NULL',
    "short-vtable.so": r'(provider|middleware|router) "[^"]+": vtable struct_size \d+ is smaller than \d+',
    "world-writable.so": r"file is group- or world-writable",
    "group-writable.so": r"file is group- or world-writable",
}
assert set(REASONS) >= {f"{n}.so" for n in BROKEN_FIXTURES}


def listing(output):
    rows = {}
    for line in output.splitlines():
        m = LISTING.match(line)
        if m:
            row = m.groupdict()
            row["kinds"] = set(row["kinds"].split(","))
            row["components"] = set(row["components"].split(","))
            assert row["file"] not in rows, f"{row['file']} listed twice:\n{output}"
            rows[row["file"]] = row
    return rows


def refused(output):
    """file basename -> reason, from `refused <file>: <reason>` lines."""
    out = {}
    for line in output.splitlines():
        m = re.match(r"^refused (\S+?): (.*)$", line)
        if m:
            out[os.path.basename(m.group(1))] = m.group(2)
    return out


@pytest.fixture
def bad_plugins_dir(make_plugins_dir, c_plugins):
    """dist plugins + the C example + every broken fixture + writable copies + a duplicate."""
    example = c_plugins / C_EXAMPLE
    extra = [example, (example, C_EXAMPLE_COPY),
             (example, "world-writable.so", 0o777), (example, "group-writable.so", 0o775)]
    extra += [c_plugins / "broken" / f"{n}.so" for n in BROKEN_FIXTURES]
    d = make_plugins_dir(extra)
    # chmod after copy: umask must not hide the bits under test.
    os.chmod(d / "world-writable.so", 0o777)
    os.chmod(d / "group-writable.so", 0o775)
    return d


# ---- `prism-gateway plugins` ---------------------------------------------------------------------

def test_plugins_subcommand_lists_first_party(run_prism, dist_plugins_dir):
    proc = run_prism("plugins", "--plugins-dir", str(dist_plugins_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    rows = listing(out)
    for file, (kind, component) in FIRST_PARTY_PLUGINS.items():
        assert file in rows, f"{file} not listed:\n{out}"
        row = rows[file]
        assert kind in row["kinds"], row
        assert component in row["components"], row
        assert re.match(r"^1\.\d+$", row["abi"]), row  # major 1; the minor is the header it was built with
        assert re.match(r"^\d+\.\d+\.\d+", row["version"]), row
        assert re.match(r"^[A-Za-z0-9._-]+$", row["id"]), row
    assert len({r["id"] for r in rows.values()}) == len(rows), "plugin ids are not unique"
    assert not refused(out), out


def test_plugins_subcommand_lists_c_example(run_prism, make_plugins_dir, c_plugins):
    d = make_plugins_dir([c_plugins / C_EXAMPLE])
    proc = run_prism("plugins", "--plugins-dir", str(d))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = listing(proc.stdout + proc.stderr).get(C_EXAMPLE)
    assert row, proc.stdout + proc.stderr
    assert row["kinds"] == {"provider"}
    assert "c-example" in row["components"]
    assert row["abi"].startswith("1.")


def test_plugins_subcommand_reports_refusals(run_prism, bad_plugins_dir):
    proc = run_prism("plugins", "--plugins-dir", str(bad_plugins_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    rows = listing(out)
    bad = refused(out)
    for file in FIRST_PARTY_PLUGINS:
        assert file in rows, out
    for file, reason in REASONS.items():
        assert file in bad, f"{file} not reported as refused:\n{out}"
        assert re.search(reason, bad[file]), f"{file}: {bad[file]!r} does not match {reason!r}"
        assert file not in rows
    dup = {C_EXAMPLE, C_EXAMPLE_COPY} & set(bad)
    assert len(dup) == 1, f"exactly one of the two identical plugins must be refused:\n{out}"
    assert 'duplicate provider component "c-example"' in bad[dup.pop()]
    assert ({C_EXAMPLE, C_EXAMPLE_COPY} & set(rows)), "neither copy of the C example is loaded"


# ---- the C example serving requests --------------------------------------------------------------

@pytest.fixture(params=["base_url-without-v1", "base_url-with-v1"])
def c_gateway(request, gateway, make_plugins_dir, c_plugins, mock_upstream):
    base = mock_upstream.base_url if request.param == "base_url-without-v1" else mock_upstream.v1_url
    cfg = make_config({"cprov": {"api_format": "c-example", "base_url": base, "api_key": "sk-c-example",
                                 "models": ["c-model"]}})
    return gateway(cfg, plugins_dir=make_plugins_dir([c_plugins / C_EXAMPLE]))


def test_c_example_chat(c_gateway, mock_upstream):
    resp = post(c_gateway.url("/v1/chat/completions"), chat_body("c-model"))
    assert resp.status == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == mock_upstream.content
    upstream = mock_upstream.last_chat()
    assert upstream.path == "/v1/chat/completions"
    assert upstream.body["model"] == "c-model"
    assert upstream.body["messages"] == chat_body("c-model")["messages"]
    assert resp.headers.get("x-prism-provider") == "cprov"


def test_c_example_stream(c_gateway, mock_upstream):
    with SSEStream(c_gateway.url("/v1/chat/completions"), chat_body("c-model", stream=True)) as s:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        chunks, done = parse_chunks(s.read_all())
    assert done
    assert stream_text(chunks) == mock_upstream.content
    assert mock_upstream.last_chat().body["stream"] is True


# ---- refusals at startup -------------------------------------------------------------------------

def test_broken_plugins_are_refused_and_the_rest_serve(gateway, bad_plugins_dir, make_mock):
    openai_mock, c_mock = make_mock(), make_mock()
    cfg = make_config({
        "mockai": openai_provider(openai_mock.v1_url),
        "cprov": {"api_format": "c-example", "base_url": c_mock.base_url, "models": ["c-model"]},
    })
    (bad_plugins_dir / C_EXAMPLE_COPY).unlink()  # a duplicate stops startup (next test)
    gw = gateway(cfg, plugins_dir=bad_plugins_dir)
    log = gw.log()
    refusal_lines = [line for line in log.splitlines() if "plugin refused: " in line]

    for file, reason in REASONS.items():
        lines = [line for line in refusal_lines if f"/{file}: " in line]
        assert len(lines) == 1, f"expected one refusal line for {file}, got {lines}\nlog:\n{log}"
        m = re.search(rf"plugin refused: (?P<path>/\S*/{re.escape(file)}): (?P<reason>.*)$", lines[0])
        assert m, lines[0]
        assert os.path.realpath(m.group("path")) == os.path.realpath(bad_plugins_dir / file), lines[0]
        assert re.search(reason, m.group("reason")), f"{file}: {m.group('reason')!r} !~ {reason!r}"
        assert re.search(r"\berror\b", lines[0].split("plugin refused:")[0], re.I), \
            f"refusal not logged at error level: {lines[0]}"

    for file in FIRST_PARTY_PLUGINS:
        assert not [line for line in refusal_lines if f"/{file}: " in line], f"{file} was refused"
    assert len(refusal_lines) == len(REASONS), "\n".join(refusal_lines)

    # The gateway is up and serves through the plugins that loaded.
    resp = post(gw.url("/v1/chat/completions"), chat_body("gpt-4o-mini"))
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == openai_mock.content
    resp = post(gw.url("/v1/chat/completions"), chat_body("c-model"))
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == c_mock.content
    assert c_mock.last_chat().body["model"] == "c-model"


# ---- a C middleware that pauses (ABI 1.2) --------------------------------------------------------

C_QUOTA = "c-example-quota.so"


def quota_config(redis_address=None):
    cfg = make_config({"mock": {"type": "mock", "models": ["mock-gpt"]}},
                      middleware=[{"name": "c-quota", "config": {"requests_per_minute": 3}}])
    if redis_address:
        cfg["redis"] = {"enabled": True, "address": redis_address}
    return cfg


def test_c_middleware_pauses_and_resumes_through_shared_state(gateway, make_plugins_dir, c_plugins):
    gw = gateway(quota_config(), plugins_dir=make_plugins_dir([c_plugins / C_QUOTA]))
    answers = [post(gw.url("/v1/chat/completions"), chat_body("mock-gpt")) for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-c-quota-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[3].json()["error"]["code"] == "rate_limit_exceeded"


def test_c_middleware_quota_is_shared_through_redis(gateway, make_plugins_dir, c_plugins, tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        plugins = make_plugins_dir([c_plugins / C_QUOTA])
        first = gateway(quota_config(server.address), plugins_dir=plugins)
        second = gateway(quota_config(server.address), plugins_dir=plugins)
        statuses = [post(gw.url("/v1/chat/completions"), chat_body("mock-gpt")).status
                    for gw in (first, second, first, second)]
        # Answered on the Redis thread, resumed onto each gateway's event loop.
        assert statuses == [200, 200, 200, 429]
    finally:
        server.stop()


def test_a_middleware_built_against_abi_1_0_loads_and_serves(gateway, c_plugins, make_plugins_dir):
    """A 1.0 middleware vtable (40 bytes, before 1.2's on_response/on_stream_event) loads into
    today's host, and the host never reads past it: bogus non-NULL pointers follow the table."""
    plugins = make_plugins_dir(extra=[c_plugins / "old" / "middleware-1-0.so"])
    gw = gateway({"server": {"host": "127.0.0.1"}, "providers": {"mock": {"type": "mock", "models": ["m"]}},
                  "middleware": ["legacy-1-0"]}, plugins_dir=plugins)
    assert post(gw.v1 + "/chat/completions", chat_body("m")).status == 200
    with SSEStream(gw.v1 + "/chat/completions", chat_body("m", stream=True)) as stream:
        assert parse_chunks(stream.read_all())[1]
    teapot = post(gw.v1 + "/chat/completions", chat_body("teapot"))
    assert teapot.status == 418, teapot.text
    assert int(teapot.headers["x-legacy-completions"]) >= 2  # on_complete ran for both


def test_two_files_claiming_one_name_stop_startup_naming_both(gateway, make_plugins_dir, dist_plugins_dir,
                                                              run_prism):
    """A dropped-in .so that calls itself `openai` and sorts first must not quietly take the
    first-party provider's place (and its API key): the gateway does not start, naming both."""
    impostor = "aaa-openai.so"
    plugins = make_plugins_dir([(dist_plugins_dir / "provider-openai.so", impostor)])
    cfg = make_config({"up": openai_provider("http://127.0.0.1:9/v1")})
    gw = gateway(cfg, plugins_dir=plugins, wait_ready=False)
    assert gw.wait_exit(10) == 1, "the gateway started with two plugins named openai"
    log = gw.log()
    assert 'duplicate provider component "openai"' in log, log
    assert impostor in log and "provider-openai.so" in log, log
    assert "sk-upstream" not in log
    # validate says the same; the plugins listing still shows what is there.
    path = plugins.parent / "dup.yaml"
    path.write_text(open(gw.config_path).read())
    result = run_prism("validate", "--config", str(path), "--plugins-dir", str(plugins))
    assert result.returncode == 1 and "duplicate" in result.stderr, result.stderr


def test_overwriting_a_loaded_plugin_file_does_not_touch_the_running_gateway(gateway, make_plugins_dir,
                                                                             c_plugins, mock_upstream,
                                                                             dist_plugins_dir):
    """`cp new.so plugins/x.so` rewrites the file in place (same inode). The host maps a private,
    sealed in-memory copy, so the running code is not the file's."""
    plugins = make_plugins_dir([c_plugins / C_EXAMPLE])
    cfg = make_config({"cprov": {"api_format": "c-example", "base_url": mock_upstream.base_url,
                                 "api_key": "sk-c-example", "models": ["c-model"]}})
    gw = gateway(cfg, plugins_dir=plugins)
    assert post(gw.url("/v1/chat/completions"), chat_body("c-model")).status == 200
    target = plugins / C_EXAMPLE
    inode = target.stat().st_ino
    # In place, as cp does: truncate and write other bytes (another plugin) into the same inode.
    with open(target, "r+b") as f:
        f.truncate(0)
        f.write((dist_plugins_dir / "router-round-robin.so").read_bytes())
    assert target.stat().st_ino == inode
    for _ in range(5):
        answer = post(gw.url("/v1/chat/completions"), chat_body("c-model"))
        assert answer.status == 200, answer.text
    with SSEStream(gw.url("/v1/chat/completions"), chat_body("c-model", stream=True)) as stream:
        assert parse_chunks(stream.read_all())[1]
    assert gw.proc.poll() is None, gw.log_tail()


def _patched_copy(source, target, old: bytes, new: bytes):
    """A copy of a built plugin with one same-length string changed (the ELF stays valid)."""
    assert len(old) == len(new)
    data = source.read_bytes()
    assert data.count(old) >= 1, f"{old!r} not in {source}"
    target.write_bytes(data.replace(old, new))
    target.chmod(0o755)


def test_a_changed_plugin_file_is_its_new_version_at_the_next_reload(gateway, make_plugins_dir, c_plugins,
                                                                     mock_upstream, tmp_path):
    """A reload loads a changed .so as the new version of its plugin (same component names);
    a changed file that is refused leaves the working version serving."""
    plugins = make_plugins_dir([c_plugins / C_EXAMPLE])
    cfg = make_config({"cprov": {"api_format": "c-example", "base_url": mock_upstream.base_url,
                                 "models": ["c-model"]}}, level="debug", admin={"token": "adm-test-token-0123456789"})
    gw = gateway(cfg, plugins_dir=plugins)
    gw.wait_for_log(r"plugin loaded: dev\.prism\.example\.c-provider 1\.0\.0")
    assert post(gw.url("/v1/chat/completions"), chat_body("c-model")).status == 200
    admin = {"authorization": "Bearer adm-test-token-0123456789"}

    # A new build replaces the file (as `cp` does: the same inode, other bytes).
    staged = tmp_path / "next.so"
    _patched_copy(c_plugins / C_EXAMPLE, staged, b"\x001.0.0\x00", b"\x001.0.7\x00")
    with open(plugins / C_EXAMPLE, "r+b") as f:
        f.truncate(0)
        f.write(staged.read_bytes())
    assert post(gw.url("/-/reload"), headers=admin).status == 200
    gw.wait_for_log(r"plugin loaded: dev\.prism\.example\.c-provider 1\.0\.7")
    gw.wait_for_log(r"changed on disk: its new version is loaded")
    answer = post(gw.url("/v1/chat/completions"), chat_body("c-model"))
    assert answer.status == 200 and answer.headers["x-prism-provider"] == "cprov", answer.text

    # A broken new version is refused; the loaded one keeps serving, through further reloads too.
    (plugins / C_EXAMPLE).unlink()
    shutil.copyfile(c_plugins / "broken" / "missing-entry.so", plugins / C_EXAMPLE)
    (plugins / C_EXAMPLE).chmod(0o755)
    assert post(gw.url("/-/reload"), headers=admin).status == 200
    gw.wait_for_log(r"new version was refused \(the loaded version stays\): missing entry symbol")
    for _ in range(2):
        assert post(gw.url("/v1/chat/completions"), chat_body("c-model")).status == 200
        assert post(gw.url("/-/reload"), headers=admin).status == 200
    assert gw.proc.poll() is None, gw.log_tail()


def test_a_swift_plugin_built_with_another_toolchain_is_refused(dist_plugins_dir, make_plugins_dir, run_prism,
                                                                tmp_path):
    """Swift has no stable ABI on Linux: a Swift plugin whose .comment names another toolchain
    than the gateway's is refused before it is mapped, with the reason; C plugins are not checked."""
    source = dist_plugins_dir / "router-round-robin.so"
    data = source.read_bytes()
    marker = b"llvm-project.git "
    at = data.index(marker) + len(marker)
    commit = data[at:at + 12]
    assert all(c in b"0123456789abcdef" for c in commit), commit
    other = bytes(b"0123456789abcdef"[(b"0123456789abcdef".index(c) + 1) % 16] for c in commit)
    staged = tmp_path / "staged.so"
    staged.write_bytes(data[:at] + other + data[at + 12:])
    staged.chmod(0o755)
    plugins = make_plugins_dir([(staged, "router-other-toolchain.so")], include_dist=False)
    result = run_prism("plugins", "--plugins-dir", str(plugins))
    reasons = refused(result.stdout + result.stderr)
    assert "another Swift toolchain" in reasons.get("router-other-toolchain.so", ""), result.stdout + result.stderr
    assert "rebuild the plugin with the gateway's toolchain" in reasons["router-other-toolchain.so"]
    # The same bytes with the gateway's own toolchain line load.
    plugins = make_plugins_dir([(source, "router-round-robin.so")], include_dist=False)
    result = run_prism("plugins", "--plugins-dir", str(plugins))
    assert "router-round-robin.so" in listing(result.stdout), result.stdout + result.stderr
