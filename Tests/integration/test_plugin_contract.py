"""ABI 1.4's contract fixes, through the real binary: a provider error carries headers (the
upstream's Retry-After reaches the client), a plugin's error type, code and message pass through
as set (before and after the first byte), set_response_model is what the request log calls
model_used, and a component that declares its config keys gets typos warned, nothing else."""

import json
import re
import subprocess
from pathlib import Path

from prism_helpers import (SSEStream, chat_body, make_config, openai_provider, parse_chunks, post, to_yaml,
                           wait_until)

C_EXAMPLE = "c-example-provider.so"
REPO = Path(__file__).resolve().parents[2]


def test_the_upstreams_retry_after_reaches_the_client(gateway, mock_upstream):
    """Through a Swift plugin (PluginKit forwards it) and through a C plugin without translate_error
    semantics of its own (the host's default keeps it too)."""
    mock_upstream.script = [{"status": 429, "headers": {"Retry-After": "7"}, "message": "slow down"}]
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)}))
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert answer.status == 429, answer.text
    assert answer.headers.get("retry-after") == "7", answer.headers
    error = answer.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    # Passed through as the plugin set it: no host prefix on the plugin's message.
    assert error["message"] == "upstream returned HTTP 429: slow down", error


def test_an_upstream_header_that_is_not_utf8_reaches_the_plugin_repaired(gateway, mock_upstream):
    """The transport keeps header lines as bytes; a line with a byte that is not UTF-8 (here
    Latin-1 \xe9, as Python's server writes it) takes the repairing path (HeaderBlock's unit test
    checks the repaired bytes), and the answer around it is read as before: the capitalized
    Retry-After after it still reaches the client, and the next request is answered."""
    mock_upstream.script = [{"status": 429, "headers": {"X-RateLimit-Note": "caf\u00e9 hour", "Retry-After": "7"},
                             "message": "slow down"}, "ok"]
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)}))
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert answer.status == 429, answer.text
    assert answer.headers.get("retry-after") == "7", answer.headers
    assert answer.json()["error"]["message"] == "upstream returned HTTP 429: slow down"
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")).status == 200


def test_a_plugins_mid_stream_error_passes_through_as_set(gateway, mock_upstream):
    """The openai plugin reports an upstream error event mid-stream with its own type and code;
    the client's final error event carries them unchanged."""
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]}
    failure = {"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}
    mock_upstream.script = [{"raw": f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(failure)}\n\n".encode(),
                             "status": 200, "content_type": "text/event-stream"}]
    gw = gateway(make_config({"a": openai_provider(mock_upstream.v1_url)}))
    with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True)) as stream:
        events = stream.read_all()
    errors = [json.loads(e) for e in events if e.startswith("{") and '"error"' in e[:12]]
    assert errors, events
    error = errors[-1]["error"]
    assert not error["message"].startswith("Provider '"), error
    assert error["code"] == "provider_error" and error["type"], error
    assert events[-1] == "[DONE]"


def test_model_used_in_the_request_log_is_what_the_upstream_stream_reported(gateway, mock_upstream):
    mock_upstream.response_model = "gpt-4o-mini-2024-07-18"
    cfg = make_config({"up": openai_provider(mock_upstream.v1_url)})
    cfg["logging"] = {"level": "info", "format": "json"}
    gw = gateway(cfg)
    with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True)) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done and chunks
    assert wait_until(lambda: '"message":"request"' in gw.log(), 5), gw.log_tail()
    record = next(json.loads(line) for line in gw.log().splitlines() if '"message":"request"' in line)
    assert record["model"] == "gpt-4o-mini" and record["model_used"] == "gpt-4o-mini-2024-07-18", record


def test_declared_config_keys_warn_typos_and_nothing_else(run_prism, tmp_path, make_plugins_dir, c_plugins,
                                                          mock_upstream, dist_plugins_dir):
    cfg = make_config({
        # A first-party plugin declares what it reads: project and location are Vertex's, not typos.
        "vertex": {"api_format": "vertexai", "project": "p", "location": "europe-west4", "api_key": "k",
                   "models": ["gemini-2.5-pro"], "locaton": "typo"},
        "claude": {"api_format": "anthropic", "api_key": "k", "models": ["claude-x"], "max_tokns": 5},
        # The C example declares base_url and api_key: anything else is a typo.
        "cprov": {"api_format": "c-example", "base_url": mock_upstream.base_url, "models": ["c-model"],
                  "api_kee": "typo"},
        # A plugin that declares nothing (as every plugin built before 1.4): its keys are its business.
        "undeclared": {"api_format": "wrong", "models": ["w-model"], "anything_goes": 1},
    }, routing={"default_strategy": "round-robin", "fastets": {"x": 1}})
    path = tmp_path / "keys.yaml"
    path.write_text(to_yaml(cfg))
    wrong = tmp_path / "wrong-provider.so"
    subprocess.run(["cc", "-std=c11", "-shared", "-fPIC", "-O2", "-I", str(REPO / "Sources" / "PrismPluginABI" / "include"),
                    "-o", str(wrong), str(REPO / "Tests" / "fixtures" / "wrong_provider.c")], check=True)
    wrong.chmod(0o755)
    plugins = make_plugins_dir([c_plugins / C_EXAMPLE, dist_plugins_dir / "provider-gemini.so",
                                dist_plugins_dir / "provider-anthropic.so", wrong])
    result = run_prism("validate", "--config", str(path), "--plugins-dir", str(plugins))
    assert result.returncode == 0, result.stdout + result.stderr
    warned = re.findall(r"warning: ([\w.]+): unknown key", result.stderr)
    assert sorted(warned) == ["providers.claude.max_tokns", "providers.cprov.api_kee", "providers.vertex.locaton",
                              "routing.fastets"], result.stderr
    assert "provider plugin 'vertexai'" in result.stderr and "routing strategy 'round-robin'" in result.stderr
    for line in result.stderr.splitlines():
        if "locaton" in line:  # the key's own line and column
            assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: warning:", line), line
