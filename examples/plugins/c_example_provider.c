/*
 * c_example_provider.c -- a Prism provider adapter for OpenAI-compatible upstreams, in plain C11.
 *
 * Component: provider "c-example". It needs the ABI header, prism_kit.h (beside this file: JSON
 * reading and writing, OpenAI shapes, small ABI helpers) and libc:
 *
 *   cc -std=c11 -shared -fPIC -O2 -I Sources/PrismPluginABI/include \
 *      -o c-example-provider.so examples/plugins/c_example_provider.c
 *
 * What it does (see PLUGIN_API.md, "A worked example"):
 *  - instance_new reads "name", "base_url" and "api_key" from the provider's config JSON, ignores
 *    every other key, and fails when base_url is missing. The component declares base_url and
 *    api_key as its config keys (ABI 1.4), so the gateway can warn about a typo beside them.
 *  - build_request sends chat.completions to POST <base>/v1/chat/completions and models.list to
 *    GET <base>/v1/models; every other API is unsupported, and a chat body that is not a JSON
 *    object is refused. The client's body goes out as it came, with two edits: its "model" is the
 *    upstream model routing chose, and a stream asks the upstream for its usage chunk.
 *  - Answers and stream events pass through unchanged (the upstream already speaks OpenAI); usage
 *    and the answering model are picked out of them for the host's accounting. The usage chunk of
 *    a stream reaches the client only when the client asked for it (stream_options.include_usage).
 *  - What is no answer fails instead of passing through, so that the gateway fails over, or ends
 *    the stream with an error event: a 200 that is not an OpenAI object or carries "error", a
 *    stream event that is not a JSON object or carries "error", a stream cut before [DONE].
 *  - translate_error turns an upstream error into a provider_error carrying the upstream message,
 *    and passes the upstream's retry-after on to the client (ABI 1.4).
 *  - It logs through the host once per instance and counts requests with the host's key-value
 *    service, to show both services in use.
 *
 * The plugin does no network I/O: the host sends the request this file describes.
 */
#include <prism_plugin.h>

#include "prism_kit.h" /* after prism_plugin.h, for its ABI helpers */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define C_EXAMPLE_EXPORT __attribute__((visibility("default")))
#else
#define C_EXAMPLE_EXPORT
#endif

/* Longest upstream text copied into an error message, and the shorter excerpt of a body or
 * event that is not JSON. */
#define C_EXAMPLE_MAX_ERROR_TEXT 512
#define C_EXAMPLE_MAX_EXCERPT 120
/* Longest model name passed to set_response_model. */
#define C_EXAMPLE_MAX_MODEL 256

/* ---- Instances ---------------------------------------------------------------------------------- */

typedef struct c_example_instance {
    const prism_host_api *host;                  /* bound to this instance; valid until exit */
    const prism_key_value_service_v1 *key_value; /* NULL when the host offers none */
    char *name;
    char *base;          /* e.g. "https://api.example.com/v1", no trailing slash */
    char *chat_url;      /* base + "/chat/completions" */
    char *models_url;    /* base + "/models" */
    char *authorization; /* "Bearer <api_key>", or NULL */
} c_example_instance;

/* One upstream attempt: what build_request learned that the later calls need. Calls for one
 * exchange never overlap, so it needs no lock. */
typedef struct c_example_exchange {
    const c_example_instance *instance;
    bool models_list;        /* build_request sent models.list (else chat.completions) */
    bool client_wants_usage; /* the client asked for stream_options.include_usage */
    bool model_reported;     /* set_response_model already called for this stream */
    bool saw_done;           /* the upstream's data: [DONE] arrived */
} c_example_exchange;

static void instance_destroy(void *instance_pointer) {
    c_example_instance *instance = instance_pointer;
    if (instance == NULL) return;
    free(instance->name);
    free(instance->base);
    free(instance->chat_url);
    free(instance->models_url);
    free(instance->authorization);
    free(instance);
}

/* `prefix` followed by `length` bytes of `text`, as a new NUL-terminated string (free() it), or
 * NULL when memory ran out. */
static char *join(const char *prefix, const char *text, size_t length) {
    pk_buf joined = PK_BUF_INIT;
    pk_buf_puts(&joined, prefix);
    pk_buf_append(&joined, text, length);
    return pk_buf_detach(&joined, NULL);
}

/* Normalizes a base URL: drops trailing slashes, appends "/v1" unless it already ends in it. */
static char *normalize_base_url(const char *url, size_t length) {
    while (length > 0 && url[length - 1] == '/') length--;
    if (length >= 3 && memcmp(url + length - 3, "/v1", 3) == 0) return join("", url, length);
    {
        pk_buf base = PK_BUF_INIT;
        pk_buf_append(&base, url, length);
        pk_buf_puts(&base, "/v1");
        return pk_buf_detach(&base, NULL);
    }
}

/* Decodes a config string into a new NUL-terminated copy. Returns 0, 1 when the value is not a
 * string (or holds a NUL, which no C string can carry), 2 when memory ran out. */
static int copy_config_string(pk_json value, char **out, size_t *length) {
    pk_result result = pk_json_string_dup(value, out, length);
    if (result == PK_NO_MEMORY) return 2;
    if (result != PK_OK) return 1;
    if (strlen(*out) != *length) {
        free(*out);
        *out = NULL;
        return 1;
    }
    return 0;
}

/* Reports a configuration problem as "c-example provider <name>: <detail>" and gives up. */
static prism_status config_failure(const prism_error_sink *error, c_example_instance *instance,
                                   prism_string instance_name, const char *code,
                                   const char *detail) {
    if (instance->name != NULL)
        pk_report_errorf(error, 0, "invalid_request_error", code, "c-example provider %s: %s",
                         instance->name, detail);
    else
        pk_report_errorf(error, 0, "invalid_request_error", code, "c-example provider %.*s: %s",
                         instance_name.length > 128 ? 128 : (int)instance_name.length,
                         instance_name.length > 0 ? instance_name.data : "", detail);
    instance_destroy(instance);
    return PRISM_ERROR_INVALID_REQUEST;
}

static prism_status out_of_memory(const prism_error_sink *error, c_example_instance *instance) {
    pk_report_error(error, 0, "internal_error", "internal_error", "c-example: out of memory");
    instance_destroy(instance);
    return PRISM_ERROR_INTERNAL;
}

static prism_status instance_new(const prism_host_api *host, prism_string instance_name,
                                 prism_bytes config_json, void **out_instance,
                                 const prism_error_sink *error) {
    pk_json config, value;
    char *base_url = NULL;
    size_t length;
    int result;
    c_example_instance *instance;

    if (out_instance == NULL) return PRISM_ERROR_INTERNAL;
    *out_instance = NULL;
    instance = calloc(1, sizeof *instance);
    if (instance == NULL) return out_of_memory(error, NULL);
    instance->host = host;

    if (!pk_json_parse(config_json.data, config_json.length, &config) ||
        config.type != PK_JSON_OBJECT)
        return config_failure(error, instance, instance_name, "invalid_config",
                              "the config is not a JSON object");

    /* "name": added by the host; fall back to the instance name it passed. */
    if (pk_json_member(config, "name", &value) && value.type == PK_JSON_STRING) {
        result = copy_config_string(value, &instance->name, &length);
        if (result == 2) return out_of_memory(error, instance);
        if (result != 0)
            return config_failure(error, instance, instance_name, "invalid_config",
                                  "\"name\" is not a valid string");
    } else {
        instance->name = join("", instance_name.data, instance_name.length);
        if (instance->name == NULL) return out_of_memory(error, instance);
    }

    if (!pk_json_member(config, "base_url", &value) || pk_json_is_null(value))
        return config_failure(error, instance, instance_name, "missing_base_url",
                              "base_url is required (the upstream's OpenAI-compatible address, "
                              "e.g. http://localhost:8000/v1)");
    result = copy_config_string(value, &base_url, &length);
    if (result == 2) return out_of_memory(error, instance);
    if (result != 0)
        return config_failure(error, instance, instance_name, "invalid_config",
                              "base_url must be a string");
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        free(base_url);
        return config_failure(error, instance, instance_name, "invalid_config",
                              "base_url must start with http:// or https://");
    }
    instance->base = normalize_base_url(base_url, length);
    free(base_url);
    if (instance->base == NULL) return out_of_memory(error, instance);
    instance->chat_url = join(instance->base, "/chat/completions", 17);
    instance->models_url = join(instance->base, "/models", 7);
    if (instance->chat_url == NULL || instance->models_url == NULL)
        return out_of_memory(error, instance);

    /* "api_key": optional; an empty key (e.g. from "${KEY:-}") means no authorization header.
     * A key that YAML read as a number arrives as a JSON number: take its text. */
    if (pk_json_member(config, "api_key", &value) && value.type == PK_JSON_STRING) {
        char *key = NULL;
        result = copy_config_string(value, &key, &length);
        if (result == 2) return out_of_memory(error, instance);
        if (result != 0)
            return config_failure(error, instance, instance_name, "invalid_config",
                                  "api_key is not a valid string");
        if (length > 0) {
            instance->authorization = join("Bearer ", key, length);
            free(key);
            if (instance->authorization == NULL) return out_of_memory(error, instance);
        } else {
            free(key);
        }
    } else if (value.type == PK_JSON_NUMBER && value.data[0] != '-') {
        instance->authorization = join("Bearer ", value.data, value.length);
        if (instance->authorization == NULL) return out_of_memory(error, instance);
    }

    /* Host services: both are looked up once here; the tables stay valid until exit. */
    if (host != NULL && PRISM_HAS_FIELD(host, prism_host_api, get_service) &&
        host->get_service != NULL) {
        const prism_key_value_service_v1 *kv = host->get_service(PRISM_KEY_VALUE_SERVICE_V1);
        if (kv != NULL && PRISM_HAS_FIELD(kv, prism_key_value_service_v1, increment) &&
            kv->increment != NULL)
            instance->key_value = kv;
    }
    pk_log(host, PRISM_LOG_INFO, "c-example provider %s ready for %s", instance->name,
           instance->base);

    *out_instance = instance;
    return PRISM_OK;
}

/* ---- Exchanges -------------------------------------------------------------------------------- */

static prism_status exchange_new(void *instance, void **out_exchange) {
    c_example_exchange *exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL) return PRISM_ERROR_INTERNAL;
    exchange->instance = instance;
    *out_exchange = exchange;
    return PRISM_OK;
}

static void exchange_destroy(void *exchange) { free(exchange); }

/* Counts requests in the host's key-value store (namespaced to this plugin by the host). */
static void count_request(const c_example_instance *instance) {
    int64_t count = 0;
    if (instance->key_value == NULL) return;
    if (instance->key_value->increment(pk_str("requests"), 1, 0, &count) != PRISM_OK) return;
    pk_log(instance->host, PRISM_LOG_DEBUG, "c-example provider %s: request number %lld",
           instance->name, (long long)count);
}

static prism_status sink_failed(const prism_error_sink *error, prism_status status) {
    pk_report_error(error, 0, "internal_error", "internal_error",
                    "c-example: the host refused part of the message, or memory ran out");
    return status != PRISM_OK ? status : PRISM_ERROR_INTERNAL;
}

/* ---- The upstream request --------------------------------------------------------------------- */

static prism_status write_piece(const prism_http_builder *upstream, const char *data,
                                size_t length) {
    if (length == 0) return PRISM_OK;
    return upstream->write_body(upstream->context, pk_bytes(data, length));
}

/* A "stream_options" value that asks for the usage chunk, keeping the client's other options. */
static void options_with_usage(pk_buf *out, pk_json options) {
    pk_json_iter it = pk_json_iterate(options);
    pk_json key, value;
    pk_buf_putc(out, '{');
    while (options.type == PK_JSON_OBJECT && pk_json_next(&it, &key, &value)) {
        if (pk_json_string_eq(key, "include_usage")) continue;
        pk_buf_append(out, key.data, key.length); /* the member's JSON text, copied as it is */
        pk_buf_putc(out, ':');
        pk_buf_append(out, value.data, value.length);
        pk_buf_putc(out, ',');
    }
    pk_buf_puts(out, "\"include_usage\":true}");
}

/* Writes the client's body (`raw`, parsed as the object `body`) to the upstream with two edits:
 *  - every top-level "model" becomes `model`, the upstream model routing chose (the client may
 *    have asked for an alias or "provider/model", and the host never rewrites the body);
 *  - with `ask_usage`, "stream_options" asks for the usage chunk.
 * A member the body lacks goes in before its closing brace. The body is written in pieces around
 * the edits, so it is never copied; a body that needs none goes out byte for byte. */
static prism_status write_upstream_body(const prism_http_builder *upstream, prism_bytes raw,
                                        pk_json body, prism_string model, bool ask_usage) {
    const char *at = (const char *)raw.data;         /* written up to here */
    const char *closing = body.data + body.length - 1; /* the body's closing brace */
    pk_json_iter it = pk_json_iterate(body);
    pk_json key, value;
    pk_buf edit = PK_BUF_INIT;
    pk_jw writer;
    size_t members = 0;
    bool saw_model = false, saw_options = false;
    prism_status status = PRISM_OK;

    while (status == PRISM_OK && pk_json_next(&it, &key, &value)) {
        members++;
        pk_buf_clear(&edit);
        if (pk_json_string_eq(key, "model")) {
            saw_model = true;
            if (pk_json_string_eq_n(value, model.data, model.length)) continue; /* already right */
            pk_jw_init(&writer, &edit);
            pk_jw_string_n(&writer, model.data, model.length);
        } else if (ask_usage && pk_json_string_eq(key, "stream_options")) {
            saw_options = true;
            options_with_usage(&edit, value);
        } else {
            continue;
        }
        if (edit.failed) status = PRISM_ERROR_INTERNAL;
        if (status == PRISM_OK) status = write_piece(upstream, at, (size_t)(value.data - at));
        if (status == PRISM_OK) status = write_piece(upstream, edit.data, edit.length);
        at = value.data + value.length;
    }

    pk_buf_clear(&edit);
    if (!saw_model) {
        pk_buf_puts(&edit, members++ > 0 ? ",\"model\":" : "\"model\":");
        pk_jw_init(&writer, &edit);
        pk_jw_string_n(&writer, model.data, model.length);
    }
    if (ask_usage && !saw_options)
        pk_buf_puts(&edit, members++ > 0 ? ",\"stream_options\":{\"include_usage\":true}"
                                         : "\"stream_options\":{\"include_usage\":true}");
    if (edit.failed && status == PRISM_OK) status = PRISM_ERROR_INTERNAL;
    if (edit.length > 0 && status == PRISM_OK) {
        status = write_piece(upstream, at, (size_t)(closing - at));
        if (status == PRISM_OK) status = write_piece(upstream, edit.data, edit.length);
        at = closing;
    }
    if (status == PRISM_OK)
        status = write_piece(upstream, at, (size_t)((const char *)raw.data + raw.length - at));
    pk_buf_free(&edit);
    return status;
}

static prism_status build_request(void *exchange_pointer, const prism_request *request,
                                  const prism_http_builder *upstream, prism_framing *out_framing,
                                  const prism_error_sink *error) {
    c_example_exchange *exchange = exchange_pointer;
    const c_example_instance *instance = exchange->instance;
    bool stream = (request->flags & PRISM_REQUEST_STREAM) != 0;
    pk_json body = {NULL, 0, PK_JSON_INVALID};
    prism_status status;
    bool chat;

    if (pk_str_eq(request->api, "chat.completions")) {
        chat = true;
    } else if (pk_str_eq(request->api, "models.list")) {
        chat = false;
    } else {
        pk_report_errorf(error, 0, "invalid_request_error", "unsupported_api",
                         "the c-example provider does not serve the \"%.*s\" API",
                         request->api.length > 64 ? 64 : (int)request->api.length,
                         request->api.length > 0 ? request->api.data : "");
        return PRISM_ERROR_UNSUPPORTED;
    }
    /* The host checks the client's body before a provider sees it; check it anyway before editing
     * it (a test harness, or a later host, may call with anything). */
    if (chat && (!pk_json_parse(request->body.data, request->body.length, &body) ||
                 body.type != PK_JSON_OBJECT)) {
        pk_report_error(error, 400, "invalid_request_error", "invalid_json",
                        "the request body is not a JSON object");
        return PRISM_ERROR_INVALID_REQUEST;
    }
    /* What the answer's translation needs to know. */
    exchange->models_list = !chat;
    exchange->client_wants_usage =
        chat && pk_json_find_bool(body, "stream_options.include_usage", false);

    status = upstream->set_method(upstream->context, pk_str(chat ? "POST" : "GET"));
    if (status != PRISM_OK) return sink_failed(error, status);
    status = upstream->set_url(upstream->context,
                               pk_str(chat ? instance->chat_url : instance->models_url));
    if (status != PRISM_OK) return sink_failed(error, status);
    if (chat) {
        status = upstream->set_header(upstream->context, pk_str("content-type"),
                                      pk_str("application/json"));
        if (status != PRISM_OK) return sink_failed(error, status);
    }
    if (instance->authorization != NULL) {
        status = upstream->set_header(upstream->context, pk_str("authorization"),
                                      pk_str(instance->authorization));
        if (status != PRISM_OK) return sink_failed(error, status);
    }
    if (chat) {
        /* A stream always asks for the usage chunk: the host's accounting (token limits, the
         * request log) needs the usage. When the client did not ask, translate_event keeps that
         * chunk from it. */
        status = write_upstream_body(upstream, request->body, body, request->model,
                                     stream && !exchange->client_wants_usage);
        if (status != PRISM_OK) return sink_failed(error, status);
    }

    *out_framing = chat && stream ? PRISM_FRAMING_SSE : PRISM_FRAMING_NONE;
    count_request(instance);
    return PRISM_OK;
}

/* ---- Answers -------------------------------------------------------------------------------- */

/* The value of the upstream's header `name` (the host gives names in lower case). */
static bool find_header(const prism_response *response, const char *name, prism_string *value) {
    size_t i;
    for (i = 0; i < response->header_count; i++) {
        if (pk_str_eq(response->headers[i].name, name)) {
            *value = response->headers[i].value;
            return true;
        }
    }
    return false;
}

/* The first bytes of `data` (fewer than `capacity`, cut at a character boundary) as a
 * NUL-terminated string in `buffer`, to show in a message. */
static const char *excerpt(const void *data, size_t length, char *buffer, size_t capacity) {
    size_t n = data == NULL ? 0 : pk_utf8_prefix(data, length, capacity - 1);
    if (n > 0) memcpy(buffer, data, n);
    buffer[n] = '\0';
    return buffer;
}

/* True when `document` carries a non-null "error": how OpenAI-compatible servers report a failure,
 * in an error answer, in a 200 (some proxies do) and as a stream event. */
static bool carries_error(pk_json document) {
    pk_json value;
    return pk_json_member(document, "error", &value) && !pk_json_is_null(value);
}

/* What the upstream says went wrong: the message of OpenAI's {"error":{"message":"..."}}, the
 * string of {"error":"..."} (some servers send that), or else the raw bytes; NUL-terminated and
 * cut to C_EXAMPLE_MAX_ERROR_TEXT bytes at a character boundary. */
static const char *upstream_text(const void *data, size_t length,
                                 char text[C_EXAMPLE_MAX_ERROR_TEXT + 1]) {
    pk_json document, value, message;
    if (pk_json_parse(data, length, &document) && pk_json_member(document, "error", &value)) {
        pk_result result;
        if (value.type == PK_JSON_OBJECT && pk_json_member(value, "message", &message))
            value = message;
        result = pk_json_string(value, text, C_EXAMPLE_MAX_ERROR_TEXT + 1, NULL);
        if (result == PK_OK || result == PK_TRUNCATED) return text;
    }
    return excerpt(data, length, text, C_EXAMPLE_MAX_ERROR_TEXT + 1);
}

static prism_status translate_response(void *exchange_pointer, const prism_response *response,
                                       const prism_http_builder *client, prism_usage *out_usage,
                                       const prism_error_sink *error) {
    const c_example_exchange *exchange = exchange_pointer;
    /* The member that makes a 200 an answer: a chat.completion has "choices", a model list "data". */
    const char *what = exchange->models_list ? "model list" : "chat completion";
    const char *needed = exchange->models_list ? "data" : "choices";
    char text[C_EXAMPLE_MAX_ERROR_TEXT + 1];
    prism_string content_type = pk_str("application/json");
    pk_json body, value;
    pk_usage usage;
    prism_status status;

    /* A 200 that is no answer (a proxy's login page, an error object, nothing) must fail, never
     * reach the client as a success: the host then counts the attempt against this provider,
     * fails over when it can, and caches nothing. */
    if (!pk_json_parse(response->body.data, response->body.length, &body) ||
        body.type != PK_JSON_OBJECT) {
        pk_report_errorf(error, 502, "provider_error", "provider_error",
                         "the upstream answered HTTP %u with something that is not an OpenAI %s: %s",
                         (unsigned)response->status, what,
                         excerpt(response->body.data, response->body.length, text,
                                 C_EXAMPLE_MAX_EXCERPT + 1));
        return PRISM_ERROR_UPSTREAM;
    }
    if (carries_error(body)) {
        pk_report_errorf(error, 502, "provider_error", "provider_error",
                         "the upstream answered HTTP %u with an error: %s",
                         (unsigned)response->status,
                         upstream_text(response->body.data, response->body.length, text));
        return PRISM_ERROR_UPSTREAM;
    }
    if (!pk_json_member(body, needed, &value) || value.type != PK_JSON_ARRAY) {
        pk_report_errorf(error, 502, "provider_error", "provider_error",
                         "the upstream's %s has no \"%s\" array", what, needed);
        return PRISM_ERROR_UPSTREAM;
    }

    /* An answer: it goes to the client as it came. */
    find_header(response, "content-type", &content_type);
    status = client->set_status(client->context, 200);
    if (status == PRISM_OK)
        status = client->set_header(client->context, pk_str("content-type"), content_type);
    if (status == PRISM_OK)
        status = client->write_body(client->context, response->body);
    if (status != PRISM_OK) return sink_failed(error, status);

    if (out_usage != NULL && pk_openai_usage_read(body, &usage)) pk_usage_store(out_usage, &usage);
    return PRISM_OK;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static prism_status translate_event(void *exchange_pointer, const prism_event *event,
                                    const prism_stream_sink *client,
                                    const prism_error_sink *error) {
    c_example_exchange *exchange = exchange_pointer;
    const char *data = (const char *)event->data.data;
    size_t start = 0, end = event->data.length;
    char text[C_EXAMPLE_MAX_ERROR_TEXT + 1];
    pk_json chunk, value;
    pk_usage usage;
    bool usage_only = false;

    while (start < end && is_space(data[start])) start++;
    while (end > start && is_space(data[end - 1])) end--;
    /* Nothing to say, or the upstream's end marker: the host writes its own [DONE]. */
    if (start == end) return PRISM_OK;
    if (end - start == 6 && memcmp(data + start, "[DONE]", 6) == 0) {
        exchange->saw_done = true;
        return PRISM_OK;
    }

    /* Anything but a JSON object is not OpenAI's format: never pass it on as a chunk. */
    if (!pk_json_parse(data + start, end - start, &chunk) || chunk.type != PK_JSON_OBJECT) {
        pk_report_errorf(error, 502, "provider_error", "provider_error",
                         "the upstream sent a stream event that is not a JSON object: %s",
                         excerpt(data + start, end - start, text, C_EXAMPLE_MAX_EXCERPT + 1));
        return PRISM_ERROR_UPSTREAM;
    }
    /* After the first byte, OpenAI reports a failure as an event {"error": {...}}. Returning an
     * error makes the host end the client's stream with an error event. */
    if (carries_error(chunk)) {
        pk_report_errorf(error, 502, "provider_error", "provider_error",
                         "the upstream reported an error mid-stream: %s",
                         upstream_text(data + start, end - start, text));
        return PRISM_ERROR_UPSTREAM;
    }

    /* Usage comes in a last chunk with "choices": [] (build_request asked for it), and the
     * answering model in every chunk. */
    if (pk_openai_usage_read(chunk, &usage)) {
        if (client->report_usage != NULL) {
            prism_usage reported = pk_usage_to_abi(&usage);
            client->report_usage(client->context, &reported);
        }
        usage_only = pk_json_member(chunk, "choices", &value) && value.type == PK_JSON_ARRAY &&
                     pk_json_count(value) == 0;
    }
    if (!exchange->model_reported && client->set_response_model != NULL &&
        pk_json_member(chunk, "model", &value)) {
        char name[C_EXAMPLE_MAX_MODEL + 1];
        size_t length;
        pk_result result = pk_json_string(value, name, sizeof name, &length);
        if (result == PK_OK || result == PK_TRUNCATED) {
            client->set_response_model(client->context, pk_str_n(name, length));
            exchange->model_reported = true;
        }
    }
    /* The usage chunk is the client's only when it asked for it. */
    if (usage_only && !exchange->client_wants_usage) return PRISM_OK;

    /* A client event carries no newlines. Valid JSON only has them as white space between
     * tokens (a multi-line `data:` field is joined with "\n"), so they become spaces. */
    if (memchr(data, '\n', event->data.length) == NULL &&
        memchr(data, '\r', event->data.length) == NULL)
        return client->emit_event(client->context, event->data);
    {
        prism_status status;
        size_t i;
        char *copy = join("", data + start, end - start);
        if (copy == NULL) return PRISM_ERROR_INTERNAL;
        for (i = 0; copy[i] != '\0'; i++)
            if (copy[i] == '\n' || copy[i] == '\r') copy[i] = ' ';
        status = client->emit_event(client->context, pk_bytes(copy, end - start));
        free(copy);
        return status;
    }
}

static prism_status finish_stream(void *exchange_pointer, const prism_stream_sink *client,
                                  const prism_error_sink *error) {
    const c_example_exchange *exchange = exchange_pointer;
    (void)client;
    /* A complete OpenAI stream ends with data: [DONE]. Without it the stream was cut (a proxy can
     * close it cleanly): the client must get an error event, not a clean end. */
    if (exchange->saw_done) return PRISM_OK;
    pk_report_error(error, 502, "provider_error", "provider_error",
                    "the upstream stream ended before data: [DONE]");
    return PRISM_ERROR_UPSTREAM;
}

static prism_status translate_error(void *exchange, const prism_response *response,
                                    const prism_error_sink *error) {
    char text[C_EXAMPLE_MAX_ERROR_TEXT + 1];
    uint32_t http_status = response->status;
    prism_string retry_after;
    (void)exchange;

    if (http_status < 400 || http_status > 599) http_status = 502;
    pk_report_errorf(error, http_status, "provider_error", "provider_error",
                     "upstream returned HTTP %u: %s", (unsigned)response->status,
                     upstream_text(response->body.data, response->body.length, text));
    /* The upstream's wait hint (on a 429 or 503) reaches the client, on a host whose error sink
     * takes headers (ABI 1.4). A value the host refuses is simply not sent. */
    if (PRISM_HAS_FIELD(error, prism_error_sink, add_header) && error->add_header != NULL &&
        find_header(response, "retry-after", &retry_after))
        (void)error->add_header(error->context, pk_str("retry-after"), retry_after);
    return PRISM_ERROR_UPSTREAM;
}

/* ---- The descriptor ------------------------------------------------------------------------- */

/* The configuration keys this provider reads (ABI 1.4): the gateway then warns about any other
 * key in a providers.<name> section that selects c-example, apart from its own keys (a typo).
 * "name" and "timeout_ms" are added by the gateway. A host older than 1.4 does not read this. */
static const char *const c_example_config_keys[] = {"base_url", "api_key", NULL};

static const prism_provider_v1 c_example_provider = {
    .struct_size = sizeof(prism_provider_v1),
    .instance_new = instance_new,
    .instance_destroy = instance_destroy,
    .exchange_new = exchange_new,
    .exchange_destroy = exchange_destroy,
    .build_request = build_request,
    .translate_response = translate_response,
    .translate_event = translate_event,
    .translate_chunk = NULL, /* SSE only: no raw framing */
    .finish_stream = finish_stream,
    .translate_error = translate_error,
    .config_keys = c_example_config_keys,
};

static const prism_component c_example_components[] = {
    {.struct_size = sizeof(prism_component),
     .kind = PRISM_COMPONENT_PROVIDER,
     .name = "c-example",
     .vtable = &c_example_provider},
};

static const prism_plugin_descriptor c_example_descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor),
    .abi_major = PRISM_ABI_MAJOR,
    .abi_minor = PRISM_ABI_MINOR,
    /* Needs nothing newer than 1.0: the key-value service is looked up and may be absent, and the
     * 1.4 additions (add_header, config_keys) are used or read only when the host has them. */
    .min_host_abi_minor = 0,
    .flags = 0,
    .id = "dev.prism.example.c-provider",
    .version = "1.0.0",
    .components = c_example_components,
    .component_count = sizeof c_example_components / sizeof c_example_components[0],
    .reserved = 0,
};

C_EXAMPLE_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                    const prism_plugin_descriptor **out_descriptor);

C_EXAMPLE_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                    const prism_plugin_descriptor **out_descriptor) {
    if (out_descriptor == NULL) return PRISM_ERROR_ABI;
    /* Refuse a host of another major version (it would not call this symbol, but be sure). */
    if (host == NULL || host->abi_major != PRISM_ABI_MAJOR) return PRISM_ERROR_ABI;
    *out_descriptor = &c_example_descriptor;
    return PRISM_OK;
}
