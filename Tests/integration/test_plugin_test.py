"""`prism-gateway plugin-test FILE.so`: the conformance tool run on every first-party provider (the
native ones against their own wire format, taken from the golden fixtures), on the C example, and
on a deliberately wrong provider whose every wrong it must name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from replay_upstream import _sse_bytes, encode_event_frame

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "Tests" / "golden"

# provider plugin file, component, golden folder (None: OpenAI's format, the tool's default)
PROVIDERS = [
    ("provider-openai.so", "openai", None),
    ("provider-azure.so", "azure", None),
    ("provider-anthropic.so", "anthropic", "anthropic"),
    ("provider-gemini.so", "gemini", "gemini"),
    ("provider-gemini.so", "vertexai", "vertex"),
    ("provider-cohere.so", "cohere", "cohere"),
    ("provider-bedrock.so", "bedrock", "bedrock"),
]


def upstream_bytes(reply: dict) -> bytes:
    if "sse" in reply:
        return b"".join(_sse_bytes(item, "\n") for item in reply["sse"])
    if "eventstream" in reply:
        return b"".join(encode_event_frame(f.get("headers") or {}, f.get("payload", {})) for f in reply["eventstream"])
    if "ndjson" in reply:
        return b"".join(json.dumps(line).encode() + b"\n" for line in reply["ndjson"])
    body = reply["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def native_upstream(folder: str, directory: Path) -> tuple[dict, str]:
    """The provider's own answers from its golden cases: chat.json, stream.txt, stream-error.txt."""
    chat = json.loads((GOLDEN / folder / "chat_simple.json").read_text())
    streams = [p for p in sorted((GOLDEN / folder).glob("stream_text*.json"))]
    stream = json.loads(streams[0].read_text())
    directory.mkdir()
    (directory / "chat.json").write_bytes(upstream_bytes(chat["upstream_response"]))
    (directory / "stream.txt").write_bytes(upstream_bytes(stream["upstream_response"]))
    errors = sorted((GOLDEN / folder).glob("stream_error_*.json"))
    if errors:
        case = json.loads(errors[0].read_text())
        (directory / "stream-error.txt").write_bytes(upstream_bytes(case["upstream_response"]))
    section = {k: v for k, v in chat["provider"].items() if k not in ("api_format", "models")}
    section["base_url"] = "http://127.0.0.1:9"
    return section, chat["request"]["model"]


def plugin_test(prism_bin: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(prism_bin), "plugin-test", *args], capture_output=True, text=True, timeout=120)


def cases(output: str) -> dict[str, str]:
    """case name -> ok | FAIL."""
    result = {}
    for line in output.splitlines():
        if line.startswith(("ok   ", "FAIL ")):
            status, rest = line.split(None, 1)
            result[rest.split(":", 1)[0]] = status
    return result


@pytest.mark.parametrize("file,component,folder", PROVIDERS, ids=[p[1] for p in PROVIDERS])
def test_every_first_party_provider_passes(file, component, folder, prism_bin, dist_plugins_dir, tmp_path):
    args = [str(dist_plugins_dir / file), "--component", component]
    if folder:
        section, model = native_upstream(folder, tmp_path / "upstream")
        args += ["--upstream", str(tmp_path / "upstream"), "--model", model, "--config", json.dumps(section)]
    elif component == "azure":
        args += ["--config", json.dumps({"base_url": "http://127.0.0.1:9", "api_version": "2024-10-21"})]
    result = plugin_test(prism_bin, *args, "--threads", "4", "--iterations", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = cases(result.stdout)
    for name in ("chat.build", "chat.stream.build", "chat.answer", "chat.stream", "error.429", "answer.200-html",
                 "chat.stream.garbage-event", "cancel", "concurrency", "secrets"):
        assert seen.get(name) == "ok", f"{name} missing or failed:\n{result.stdout}"
    if folder is None or list((GOLDEN / folder).glob("stream_error_*.json")):
        assert seen.get("chat.stream.error-after-first-byte") == "ok", result.stdout
    assert "cases passed" in result.stdout.splitlines()[-1]


def test_the_c_example_passes(prism_bin, c_plugins):
    result = plugin_test(prism_bin, str(c_plugins / "c-example-provider.so"), "--threads", "4", "--iterations", "50")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_provider_is_named_wrong_case_by_case(prism_bin, tmp_path):
    wrong = tmp_path / "wrong.so"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC", "-O2",
                    "-I", str(REPO / "Sources" / "PrismPluginABI" / "include"), "-o", str(wrong),
                    str(REPO / "Tests" / "fixtures" / "wrong_provider.c")], check=True)
    wrong.chmod(0o755)
    result = plugin_test(prism_bin, str(wrong), "--threads", "2", "--iterations", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    seen = cases(result.stdout)
    # Each wrong the fixture commits, and the right things it still does.
    for name in ("chat.stream.build", "chat.build.invalid-body", "chat.answer", "answer.200-html",
                 "answer.200-error-object", "answer.200-empty", "secrets"):
        assert seen.get(name) == "FAIL", f"{name} should fail:\n{result.stdout}"
    for name in ("load", "instance_new", "chat.build", "cancel"):
        assert seen.get(name) == "ok", f"{name} should pass:\n{result.stdout}"
    assert "return PRISM_ERROR_UPSTREAM so the gateway fails over" in result.stdout
    assert "usage reported 0/0, the upstream said 11/2" in result.stdout


def test_a_refused_file_and_bad_arguments(prism_bin, c_plugins, tmp_path):
    result = plugin_test(prism_bin, str(c_plugins / "broken" / "missing-entry.so"))
    assert result.returncode == 1 and "FAIL load: missing entry symbol" in result.stdout, result.stdout
    result = plugin_test(prism_bin, str(c_plugins / "c-example-provider.so"), "--config", "[1]")
    assert result.returncode == 2 and "--config takes a JSON object" in result.stderr
