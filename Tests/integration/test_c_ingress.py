"""The C example ingress, examples/plugins/c_example_ingress.c (ABI 1.5): Ollama's POST /api/chat.

Two halves:
  - Without the gateway: a small C driver (below) compiles the plugin in and calls it through fake
    host sinks, with the kit's strict flags and, when the compiler has them, sanitizers (the
    `toolchain` and `build` fixtures of test_c_kit.py). It prints what the plugin wrote as JSON,
    which the tests read: the descriptor and routes, decode's canonical request and refusals,
    encode_response, encode_event + finish_stream, encode_error, keep_alive, observe_native.
  - Through the real gateway (dist/prism-gateway, which must be built with ingress support, ABI
    1.5): the plugin copied next to the first-party plugins, an OpenAI provider in front of the mock
    upstream, and plain HTTP to /api/chat: an answer, an NDJSON stream, errors in Ollama's shape,
    and the OpenAI request the upstream received.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from prism_helpers import chat_body, make_config, openai_provider, post
from test_c_kit import build, toolchain  # noqa: F401  (fixtures: the strict, sanitized compiler)

REPO = Path(__file__).resolve().parents[2]
INGRESS_SOURCE = REPO / "examples" / "plugins" / "c_example_ingress.c"
INGRESS_SO = "c-example-ingress.so"
MODEL = "gpt-4o-mini"
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# ---- the C driver ----------------------------------------------------------------------------------

DRIVER = r"""
/* Drives c_example_ingress.c through fake host sinks; prints one JSON object. */
#include "c_example_ingress.c"

#include <stdio.h>

static uint32_t http_status;
static pk_buf headers, body, bytes;
static uint32_t error_status;
static char error_type[64], error_code[64], error_message[1024];
static int error_count;
static uint16_t host_minor = PRISM_ABI_MINOR;

static void copy(char *to, size_t capacity, prism_string from) {
    size_t n = from.length < capacity - 1 ? from.length : capacity - 1;
    if (n > 0) memcpy(to, from.data, n);
    to[n] = '\0';
}
static void fake_log(prism_log_level level, prism_string message) {
    fprintf(stderr, "log %d: %.*s\n", (int)level, (int)message.length, message.data);
}
static int32_t fake_log_enabled(prism_log_level level) { (void)level; return 1; }
static uint64_t fake_monotonic(void) { return 42; }
static uint64_t fake_wall_clock(void) { return 1700000000123ull; } /* 2023-11-14T22:13:20.123Z */
static const void *fake_service(const char *id) { (void)id; return NULL; }

static prism_status set_status(void *c, uint32_t s) { (void)c; http_status = s; return PRISM_OK; }
static prism_status set_text(void *c, prism_string v) { (void)c; (void)v; return PRISM_OK; }
static prism_status put_header(void *c, prism_string n, prism_string v) {
    (void)c;
    pk_buf_printf(&headers, "%.*s: %.*s\n", (int)n.length, n.data, (int)v.length, v.data);
    return PRISM_OK;
}
static prism_status write_body(void *c, prism_bytes d) {
    (void)c; pk_buf_append(&body, d.data, d.length); return PRISM_OK;
}
static prism_status clear_body(void *c) { (void)c; pk_buf_clear(&body); return PRISM_OK; }
static void write_bytes_sink(void *c, prism_bytes d) { (void)c; pk_buf_append(&bytes, d.data, d.length); }
static void set_error(void *c, uint32_t s, prism_string t, prism_string k, prism_string m) {
    (void)c;
    error_count++;
    error_status = s;
    copy(error_type, sizeof error_type, t);
    copy(error_code, sizeof error_code, k);
    copy(error_message, sizeof error_message, m);
}
static prism_status error_header(void *c, prism_string n, prism_string v) {
    (void)c; (void)n; (void)v; return PRISM_OK;
}
static void never_resume(void *c, prism_status s) { (void)c; (void)s; abort(); }

static prism_host_api host;
static const prism_http_builder builder = {sizeof(prism_http_builder), NULL, set_status, set_text,
                                           set_text, put_header, put_header, write_body, clear_body};
static const prism_bytes_sink sink = {sizeof(prism_bytes_sink), NULL, write_bytes_sink};
static const prism_error_sink error_sink = {sizeof(prism_error_sink), NULL, set_error, error_header};
static const prism_decode_resume resume = {sizeof(prism_decode_resume), NULL, never_resume};

static void reset(void) {
    http_status = 0;
    pk_buf_clear(&headers);
    pk_buf_clear(&body);
    pk_buf_clear(&bytes);
    error_count = 0;
    error_status = 0;
    error_type[0] = error_code[0] = error_message[0] = '\0';
}

static const prism_ingress_v1 *table(void) {
    const prism_plugin_descriptor *descriptor = NULL;
    host.struct_size = sizeof host;
    host.abi_major = PRISM_ABI_MAJOR;
    host.abi_minor = host_minor;
    host.log = fake_log;
    host.log_enabled = fake_log_enabled;
    host.monotonic_nanoseconds = fake_monotonic;
    host.wall_clock_milliseconds = fake_wall_clock;
    host.get_service = fake_service;
    if (prism_plugin_entry_v1(&host, &descriptor) != PRISM_OK) return NULL;
    return descriptor->components[0].vtable;
}

static void print_result(const char *name, prism_status status) {
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    pk_jw_init(&w, &out);
    pk_jw_object_begin(&w);
    pk_jw_member_string(&w, "call", name);
    pk_jw_member_int(&w, "status", status);
    pk_jw_member_uint(&w, "http_status", http_status);
    pk_jw_key(&w, "headers");
    pk_jw_string_n(&w, headers.data ? headers.data : "", headers.length);
    pk_jw_key(&w, "body");
    pk_jw_string_n(&w, body.data ? body.data : "", body.length);
    pk_jw_key(&w, "bytes");
    pk_jw_string_n(&w, bytes.data ? bytes.data : "", bytes.length);
    pk_jw_key(&w, "error");
    if (error_count > 0) {
        pk_jw_object_begin(&w);
        pk_jw_member_uint(&w, "status", error_status);
        pk_jw_member_string(&w, "type", error_type);
        pk_jw_member_string(&w, "code", error_code);
        pk_jw_member_string(&w, "message", error_message);
        pk_jw_object_end(&w);
    } else {
        pk_jw_null(&w);
    }
    pk_jw_object_end(&w);
    printf("%s\n", out.data);
    pk_buf_free(&out);
}

static prism_request request_for(const char *json) {
    prism_request r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.api = pk_str("ollama.chat");
    r.method = pk_str("POST");
    r.path = pk_str("/api/chat");
    r.body = pk_bytes(json, strlen(json));
    r.request_id = pk_str("req-1");
    return r;
}

int main(int argc, char **argv) {
    const prism_ingress_v1 *t;
    void *instance = NULL, *exchange = NULL;
    prism_status status;
    int i;
    if (argc < 2) return 2;
    if (strcmp(argv[1], "describe") == 0) {
        const prism_plugin_descriptor *d = NULL;
        const prism_route *r;
        size_t count = 0;
        host_minor = 4;
        printf("{\"old_host\":%d,", (int)(table() == NULL ? prism_plugin_entry_v1(&host, &d) : 0));
        host_minor = PRISM_ABI_MINOR;
        t = table();
        (void)prism_plugin_entry_v1(&host, &d);
        if (t->instance_new(&host, pk_str("ollama"), pk_bytes("{}", 2), &instance, &error_sink) != PRISM_OK)
            return 3;
        r = t->routes(instance, &count);
        printf("\"kind\":%d,\"name\":\"%s\",\"abi_minor\":%u,\"min_host\":%u,\"vtable_size\":%u,"
               "\"vtable_expected\":%u,\"keys0_null\":%d,\"routes\":[",
               (int)d->components[0].kind, d->components[0].name, (unsigned)d->abi_minor,
               (unsigned)d->min_host_abi_minor, (unsigned)t->struct_size,
               (unsigned)PRISM_INGRESS_V1_SIZE_1_5, t->config_keys != NULL && t->config_keys[0] == NULL);
        for (size_t k = 0; k < count; k++)
            printf("%s{\"size\":%u,\"flags\":%u,\"method\":\"%.*s\",\"path\":\"%.*s\",\"api\":\"%.*s\"}",
                   k ? "," : "", (unsigned)r[k].struct_size, (unsigned)r[k].flags, (int)r[k].method.length,
                   r[k].method.data, (int)r[k].path.length, r[k].path.data, (int)r[k].api.length,
                   r[k].api.data);
        printf("],\"route_size\":%u}\n", (unsigned)PRISM_ROUTE_SIZE_1_5);
        t->instance_destroy(instance);
        return 0;
    }
    t = table();
    if (t == NULL || t->instance_new(&host, pk_str("ollama"), pk_bytes("{}", 2), &instance, &error_sink) != PRISM_OK)
        return 3;
    if (t->exchange_new(instance, &exchange) != PRISM_OK) return 3;
    if (strcmp(argv[1], "decode") == 0 && argc == 3) {
        prism_request r = request_for(argv[2]);
        status = t->decode_request(exchange, &r, &builder, &resume, &error_sink);
        print_result("decode", status);
    } else if (strcmp(argv[1], "response") == 0 && argc == 4) {
        /* response CLIENT_BODY CANONICAL_ANSWER */
        prism_request r = request_for(argv[2]);
        prism_response response;
        if (t->decode_request(exchange, &r, &builder, &resume, &error_sink) != PRISM_OK) return 4;
        reset();
        memset(&response, 0, sizeof response);
        response.struct_size = sizeof response;
        response.status = 200;
        response.body = pk_bytes(argv[3], strlen(argv[3]));
        status = t->encode_response(exchange, &response, &builder, &error_sink);
        print_result("encode_response", status);
    } else if (strcmp(argv[1], "stream") == 0 && argc >= 5) {
        /* stream CLIENT_BODY INPUT_TOKENS OUTPUT_TOKENS CHUNK|@keepalive ... */
        prism_request r = request_for(argv[2]);
        prism_usage usage;
        if (t->decode_request(exchange, &r, &builder, &resume, &error_sink) != PRISM_OK) return 4;
        reset();
        status = PRISM_OK;
        for (i = 5; i < argc && status == PRISM_OK; i++) {
            if (strcmp(argv[i], "@keepalive") == 0)
                t->keep_alive(exchange, &sink);
            else
                status = t->encode_event(exchange, pk_bytes(argv[i], strlen(argv[i])), &sink, &error_sink);
        }
        if (status == PRISM_OK) {
            memset(&usage, 0, sizeof usage);
            usage.struct_size = sizeof usage;
            usage.input_tokens = strtoull(argv[3], NULL, 10);
            usage.output_tokens = strtoull(argv[4], NULL, 10);
            status = t->finish_stream(exchange, &usage, &sink, &error_sink);
        }
        print_result("stream", status);
    } else if (strcmp(argv[1], "error") == 0 && argc == 5) {
        /* error HTTP_STATUS MESSAGE IN_STREAM */
        t->encode_error(exchange, (uint32_t)strtoul(argv[2], NULL, 10), pk_str("invalid_request_error"),
                        pk_str("model_not_found"), pk_str(argv[3]), (uint32_t)strtoul(argv[4], NULL, 10),
                        &builder);
        print_result("encode_error", PRISM_OK);
    } else if (strcmp(argv[1], "native") == 0 && argc == 3) {
        prism_usage usage;
        memset(&usage, 0, sizeof usage);
        usage.struct_size = sizeof usage;
        t->observe_native(exchange, pk_str(""), pk_bytes(argv[2], strlen(argv[2])), &usage);
        printf("{\"input\":%llu,\"output\":%llu}\n", (unsigned long long)usage.input_tokens,
               (unsigned long long)usage.output_tokens);
    } else {
        return 2;
    }
    t->exchange_destroy(exchange);
    t->instance_destroy(instance);
    pk_buf_free(&headers);
    pk_buf_free(&body);
    pk_buf_free(&bytes);
    return 0;
}
"""


@pytest.fixture(scope="module")
def driver(build, toolchain, tmp_path_factory):  # noqa: F811
    """drive(*args) -> the driver's JSON output for one call sequence."""
    source = tmp_path_factory.mktemp("c-ingress") / "drive_c_ingress.c"
    source.write_text(DRIVER)
    binary = build(source)

    def drive(*args: str) -> dict:
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                              env=toolchain["env"], stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"driver {args[0]} exited {proc.returncode}:\n{proc.stdout}{proc.stderr[-4000:]}"
        return json.loads(proc.stdout)
    return drive


def chunk(content=None, role=None, finish=None, usage=None) -> str:
    """One canonical chat.completion.chunk, as the host hands it to encode_event."""
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    out = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
           "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        out["choices"] = []
        out["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                        "total_tokens": usage[0] + usage[1]}
    return json.dumps(out)


def ollama_body(**extra) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}
    body.update(extra)
    return json.dumps(body)


# ---- without the gateway -----------------------------------------------------------------------------

def test_descriptor_and_routes(driver):
    d = driver("describe")
    assert d["old_host"] == -7, "a 1.4 host must be refused at the entry"
    # Built against today's header (its minor), needing a 1.5 host at the least.
    header = (Path(__file__).resolve().parents[2] / "Sources/PrismPluginABI/include/prism_plugin.h").read_text()
    minor = int(re.search(r"^#define PRISM_ABI_MINOR (\d+)", header, re.M).group(1))
    assert (d["kind"], d["name"], d["abi_minor"], d["min_host"]) == (4, "ollama", minor, 5)
    assert d["vtable_size"] >= d["vtable_expected"]
    assert d["keys0_null"] == 1
    assert d["routes"] == [{"size": d["route_size"], "flags": 0, "method": "POST", "path": "/api/chat",
                            "api": "ollama.chat"}]


def test_decode_streams_by_default_and_maps_options(driver):
    r = driver("decode", ollama_body(options={"temperature": 0.25, "top_p": 0.9, "num_predict": 64,
                                              "stop": ["\n\n"], "seed": 7, "num_ctx": 4096},
                                     keep_alive="5m", format="json"))
    assert r["status"] == 0 and r["error"] is None, r
    canonical = json.loads(r["body"])
    assert canonical == {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}],
                         "stream": True, "stream_options": {"include_usage": True},
                         "temperature": 0.25, "top_p": 0.9, "seed": 7, "max_tokens": 64, "stop": ["\n\n"],
                         "response_format": {"type": "json_object"}}
    assert r["headers"] == ""


def test_decode_without_stream_images_and_schema(driver):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    r = driver("decode", json.dumps({
        "model": MODEL, "stream": False, "format": schema, "options": {"num_predict": -1},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "What is this?", "images": ["iVBORw0KGgoAAAA"]},
                     {"role": "assistant", "content": "A \"dot\" \u00e9"}]}))
    assert r["status"] == 0, r
    canonical = json.loads(r["body"])
    assert canonical["stream"] is False and "stream_options" not in canonical
    assert "max_tokens" not in canonical  # num_predict -1: no limit
    assert canonical["response_format"] == {"type": "json_schema",
                                            "json_schema": {"name": "response", "schema": schema}}
    assert canonical["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAA"}}]},
        {"role": "assistant", "content": "A \"dot\" \u00e9"}]


@pytest.mark.parametrize("body, message", [
    ("[1]", "the request body is not a JSON object"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "model is required"),
    (json.dumps({"model": MODEL}), "messages is required"),
    (ollama_body(stream="yes"), '"stream" must be true or false'),
    (ollama_body(options={"temperature": "hot"}), "options: temperature, top_p and the penalties must be numbers"),
    (ollama_body(tools=[{"type": "function", "function": {"name": "f"}}]),
     "tools are not supported on this gateway's /api/chat"),
    (json.dumps({"model": MODEL, "messages": [{"role": "tool", "content": "42"}]}),
     "tool calls are not supported on this gateway's /api/chat"),
    (ollama_body(format="yaml"), '"format" must be "json" or a JSON schema'),
], ids=["not-an-object", "no-model", "no-messages", "bad-stream", "bad-option", "tools", "tool-message",
        "bad-format"])
def test_decode_refuses_what_it_cannot_translate(driver, body, message):
    r = driver("decode", body)
    assert r["status"] == -1, r
    assert r["error"] == {"status": 400, "type": "invalid_request_error", "code": "invalid_request",
                          "message": message}
    assert r["body"] == ""


def test_encode_response(driver):
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"there\"\n"},
                           "finish_reason": "length"}],
              "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
    r = driver("response", ollama_body(stream=False), json.dumps(answer))
    assert r["status"] == 0 and r["http_status"] == 200, r
    assert "content-type: application/json" in r["headers"]
    assert json.loads(r["body"]) == {
        "model": MODEL, "created_at": "2023-11-14T22:13:20.123Z",
        "message": {"role": "assistant", "content": "Hi \"there\"\n"},
        "done": True, "done_reason": "length", "prompt_eval_count": 11, "eval_count": 5}
    r = driver("response", ollama_body(stream=False), json.dumps({"nope": 1}))
    assert r["status"] == -3 and r["error"]["status"] == 502, r


def test_stream_lines_then_the_done_line(driver):
    r = driver("stream", ollama_body(), "0", "0",
               chunk(role="assistant", content=""), chunk(content="Hel"), "@keepalive", chunk(content="lo"),
               chunk(finish="stop"), chunk(usage=(13, 7)))
    assert r["status"] == 0, r
    assert r["bytes"].endswith("\n")
    lines = [json.loads(line) for line in r["bytes"].splitlines()]
    assert [line["message"]["content"] for line in lines] == ["Hel", "", "lo", ""]
    for line in lines[:-1]:
        assert line == {"model": MODEL, "created_at": "2023-11-14T22:13:20.123Z",
                        "message": {"role": "assistant", "content": line["message"]["content"]}, "done": False}
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    # The host's usage is zero here: the usage chunk's counts are used.
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (13, 7)
    # The host's own usage wins when it has one; a cut answer says "length".
    r = driver("stream", ollama_body(), "20", "9", chunk(content="x"), chunk(finish="length"))
    last = json.loads(r["bytes"].splitlines()[-1])
    assert (last["done_reason"], last["prompt_eval_count"], last["eval_count"]) == ("length", 20, 9)
    r = driver("stream", ollama_body(), "0", "0", "not json")
    assert r["status"] == -3 and r["error"]["type"] == "provider_error", r


def test_errors_in_ollama_shape(driver):
    r = driver("error", "404", 'The model "x" does not exist.', "0")
    assert r["http_status"] == 404 and "content-type: application/json" in r["headers"]
    assert json.loads(r["body"]) == {"error": 'The model "x" does not exist.'}
    r = driver("error", "0", "boom", "0")
    assert r["http_status"] == 500
    r = driver("error", "502", "upstream cut", "1")
    assert r["http_status"] == 0 and r["headers"] == ""
    assert r["body"] == '{"error":"upstream cut"}\n'


def test_observe_native_reads_ollama_counts(driver):
    assert driver("native", json.dumps({"done": True, "prompt_eval_count": 3, "eval_count": 4})) == \
        {"input": 3, "output": 4}
    lines = json.dumps({"done": False, "message": {"content": "a"}}) + "\n" + \
        json.dumps({"done": True, "prompt_eval_count": 8, "eval_count": 2}) + "\n"
    assert driver("native", lines) == {"input": 8, "output": 2}


def test_ingress_exports_only_its_entry(c_plugins):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not found")
    proc = subprocess.run([nm, "-D", "--defined-only", str(c_plugins / INGRESS_SO)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line.split()[-1] for line in proc.stdout.splitlines() if line.strip()) == ["prism_plugin_entry_v1"]


# ---- through the gateway ------------------------------------------------------------------------------

@pytest.fixture
def start_ollama(gateway, make_plugins_dir, c_plugins, mock_upstream, run_prism):
    """start_ollama(server=None) -> the gateway with the C ingress beside the first-party plugins
    and one OpenAI provider in front of the mock upstream."""
    plugin = c_plugins / INGRESS_SO
    assert plugin.is_file(), f"scripts/build-c-plugins.sh did not build {INGRESS_SO}"
    plugins = make_plugins_dir([plugin])
    listing = run_prism("plugins", "--plugins-dir", str(plugins))
    output = listing.stdout + listing.stderr
    if not re.search(r"kinds=ingress\b.*file=" + re.escape(INGRESS_SO), output):
        pytest.fail("the gateway does not load the C ingress: dist/prism-gateway predates ABI 1.5 ingress "
                    f"support (rebuild it with `make build`)?\n{output[-2000:]}", pytrace=False)

    def start(server=None):
        gw = gateway(make_config({"upstream": openai_provider(mock_upstream.base_url)}, server=server),
                     plugins_dir=plugins)
        assert not gw.log_lines("ingress 'ollama'"), gw.log_tail()  # no route conflict warnings
        return gw
    return start


@pytest.fixture
def ollama_gateway(start_ollama):
    return start_ollama()


def ndjson(gw, body: dict, timeout: float = 15.0) -> tuple[int, dict, list[str]]:
    """POST /api/chat and read the answer as lines (http.client undoes the chunked encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        conn.request("POST", "/api/chat", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read().decode()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw.splitlines()
    finally:
        conn.close()


def test_answer_through_the_gateway(ollama_gateway, mock_upstream):
    body = {"model": MODEL, "stream": False, "messages": [{"role": "user", "content": "Say hello."}],
            "options": {"temperature": 0.2, "num_predict": 50}}
    resp = post(ollama_gateway.url("/api/chat"), body)
    assert resp.status == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-prism-provider") == "upstream"
    answer = resp.json()
    assert answer["model"] == MODEL
    assert CREATED_AT.match(answer["created_at"]), answer
    assert answer["message"] == {"role": "assistant", "content": mock_upstream.content}
    assert (answer["done"], answer["done_reason"]) == (True, "stop")
    assert (answer["prompt_eval_count"], answer["eval_count"]) == (mock_upstream.prompt_tokens,
                                                                   mock_upstream.completion_tokens)
    # The upstream got the canonical OpenAI request.
    upstream = mock_upstream.last_chat()
    assert upstream.method == "POST" and upstream.path == "/v1/chat/completions"
    assert upstream.body["model"] == MODEL
    assert upstream.body["messages"] == body["messages"]
    assert upstream.body["stream"] is False
    assert upstream.body["temperature"] == 0.2 and upstream.body["max_tokens"] == 50


def test_stream_through_the_gateway(ollama_gateway, mock_upstream):
    # No "stream": Ollama's default is a stream.
    status, headers, lines = ndjson(ollama_gateway, {"model": MODEL,
                                                     "messages": [{"role": "user", "content": "Say hello."}]})
    assert status == 200, lines
    objects = [json.loads(line) for line in lines if line.strip()]
    assert objects and all(line.strip() for line in lines), f"blank lines in an NDJSON stream: {lines}"
    *pieces, last = objects
    assert all(o["done"] is False and o["model"] == MODEL for o in pieces), objects
    assert "".join(o["message"]["content"] for o in pieces) == mock_upstream.content
    assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
    assert (last["prompt_eval_count"], last["eval_count"]) == (mock_upstream.prompt_tokens,
                                                               mock_upstream.completion_tokens)
    upstream = mock_upstream.last_chat().body
    assert upstream["stream"] is True and upstream["stream_options"] == {"include_usage": True}


def test_errors_through_the_gateway(ollama_gateway, mock_upstream):
    # An unknown model: the gateway's 404, in Ollama's {"error": "..."} shape.
    resp = post(ollama_gateway.url("/api/chat"),
                {"model": "no-such-model", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 404, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()
    assert list(error) == ["error"] and isinstance(error["error"], str) and "no-such-model" in error["error"]
    assert resp.headers.get("x-prism-request-id")
    # decode's own refusal.
    resp = post(ollama_gateway.url("/api/chat"), {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 400 and resp.json() == {"error": "model is required"}, resp.text
    # An upstream failure, before the stream starts: still Ollama's shape.
    mock_upstream.fail_with(503, "overloaded")
    status, _, lines = ndjson(ollama_gateway, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert status >= 500, lines
    assert list(json.loads("".join(lines))) == ["error"]


def test_openai_routes_are_untouched(ollama_gateway, mock_upstream):
    resp = post(ollama_gateway.url("/v1/chat/completions"), chat_body(MODEL))
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == mock_upstream.content


def test_quiet_streams_get_ndjson_keep_alives(start_ollama, mock_upstream):
    """keep_alive: a line with no text, never the host's SSE comment (an NDJSON client parses every
    line as JSON)."""
    gw = start_ollama(server={"stream_keepalive": "200ms"})
    mock_upstream.hold_after_chunks = 2
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=15)
    try:
        conn.request("POST", "/api/chat", body=json.dumps({"model": MODEL, "messages": [
            {"role": "user", "content": "Say hello."}]}).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        lines = []
        while sum(json.loads(line)["message"]["content"] == "" for line in lines) < 2:
            line = resp.readline()
            assert line, f"the stream ended early: {lines}"
            lines.append(line)
        mock_upstream.release.set()
        lines += resp.read().splitlines(keepends=True)
    finally:
        conn.close()
    objects = [json.loads(line) for line in lines]  # every line is JSON: no ": keep-alive"
    assert "".join(o["message"]["content"] for o in objects) == mock_upstream.content
    assert objects[-1]["done"] is True and all(o["done"] is False for o in objects[:-1])
