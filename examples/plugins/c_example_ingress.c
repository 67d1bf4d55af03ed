/*
 * c_example_ingress.c -- a Prism ingress (ABI 1.5) in plain C11: Ollama's native chat API.
 *
 * Component: ingress "ollama". It serves one route, POST /api/chat (api "ollama.chat"), so a
 * client written for Ollama (ollama-python, ollama-js, `curl .../api/chat`) talks to the gateway as
 * if it were an Ollama server, and reaches any provider the gateway routes to. It needs the ABI
 * header, prism_kit.h (beside this file) and libc:
 *
 *   cc -std=c11 -shared -fPIC -O2 -I Sources/PrismPluginABI/include \
 *      -o c-example-ingress.so examples/plugins/c_example_ingress.c
 *
 * An ingress authenticates nothing and routes nothing: it translates. What this one does:
 *  - decode_request turns {"model", "messages":[{"role","content","images"}], "stream" (Ollama's
 *    default: true), "options": {"temperature","top_p","seed","num_predict","stop",
 *    "frequency_penalty","presence_penalty"}, "format"} into the canonical request, an OpenAI
 *    chat.completions body: num_predict > 0 becomes max_tokens, images become image_url parts
 *    (data: URLs), "format": "json" (or a JSON schema) becomes response_format, and a stream asks
 *    for the usage chunk (stream_options.include_usage). Tools are refused (400): Ollama's tool
 *    calls carry no ids, which OpenAI's need. Other options and keep_alive are ignored.
 *  - encode_response turns the canonical chat.completion into {"model","created_at","message":
 *    {"role":"assistant","content"},"done":true,"done_reason":"stop"|"length",
 *    "prompt_eval_count","eval_count"}.
 *  - encode_event writes one NDJSON line {"model","created_at","message":{...},"done":false} per
 *    content delta; finish_stream writes the final done:true line with the counts. The gateway
 *    sends the stream's head as `content-type: text/event-stream` (Ollama sends
 *    application/x-ndjson); Ollama's clients read the lines whatever the content type says.
 *  - encode_error answers {"error":"<message>"} with the gateway's status (404 for an unknown
 *    model, as Ollama does); inside a started stream it writes one {"error":...} line.
 *  - keep_alive writes a done:false line with empty content (an NDJSON stream has no comments,
 *    and an Ollama client parses every line as JSON).
 *  - observe_native reads prompt_eval_count / eval_count from an answer in Ollama's own format, for
 *    a provider that speaks "ollama.chat" itself (pass-through; no first-party provider does).
 *
 * Threading: the instance is read-only after instance_new (any thread may use it); per-request
 * state lives in the exchange, whose calls never overlap. No call keeps a pointer to the host's
 * input after it returns: the model name is copied. decode never returns PRISM_PENDING (it needs
 * no service), so it never touches its prism_decode_resume.
 */
#include <prism_plugin.h>

#include "prism_kit.h" /* after prism_plugin.h, for its ABI helpers */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define C_INGRESS_EXPORT __attribute__((visibility("default")))
#else
#define C_INGRESS_EXPORT
#endif

/* A prism_string for a string literal, usable in a static initializer. */
#define C_INGRESS_LITERAL(text) {text, sizeof(text) - 1}

/* ---- Routes ----------------------------------------------------------------------------------- */

/* Plugin-static, so valid until instance_destroy (and after). An array of prism_route is stepped
 * by PRISM_ROUTE_SIZE_1_5, which is its sizeof: the struct is frozen. */
static const prism_route ollama_routes[] = {
    {.struct_size = sizeof(prism_route),
     .flags = 0,
     .method = C_INGRESS_LITERAL("POST"),
     .path = C_INGRESS_LITERAL("/api/chat"),
     .api = C_INGRESS_LITERAL("ollama.chat")},
};

/* ---- Instances and exchanges ------------------------------------------------------------------ */

typedef struct ollama_instance {
    const prism_host_api *host; /* bound to this instance; valid until exit */
} ollama_instance;

typedef struct ollama_exchange {
    const ollama_instance *instance;
    char *model;              /* the client's model name (copied in decode), NUL-terminated */
    const char *done_reason;  /* a static string: "stop" or "length" */
    uint64_t prompt_tokens;   /* from the canonical stream's usage chunk */
    uint64_t completion_tokens;
} ollama_exchange;

static prism_status instance_new(const prism_host_api *host, prism_string instance_name,
                                 prism_bytes config_json, void **out_instance,
                                 const prism_error_sink *error) {
    ollama_instance *instance;
    (void)config_json; /* reads no keys (config_keys below is an empty list) */
    if (out_instance == NULL) return PRISM_ERROR_INTERNAL;
    *out_instance = NULL;
    instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        pk_report_error(error, 0, "internal_error", "internal_error", "ollama ingress: out of memory");
        return PRISM_ERROR_INTERNAL;
    }
    instance->host = host;
    pk_log(host, PRISM_LOG_INFO, "ollama ingress %.*s: serving POST /api/chat",
           instance_name.length > 64 ? 64 : (int)instance_name.length,
           instance_name.length > 0 ? instance_name.data : "");
    *out_instance = instance;
    return PRISM_OK;
}

static void instance_destroy(void *instance) { free(instance); }

static const prism_route *routes(void *instance, size_t *out_count) {
    (void)instance;
    if (out_count != NULL) *out_count = sizeof ollama_routes / sizeof ollama_routes[0];
    return ollama_routes;
}

static prism_status exchange_new(void *instance, void **out_exchange) {
    ollama_exchange *exchange;
    if (out_exchange == NULL) return PRISM_ERROR_INTERNAL;
    exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL) return PRISM_ERROR_INTERNAL;
    exchange->instance = instance;
    exchange->done_reason = "stop";
    *out_exchange = exchange;
    return PRISM_OK;
}

static void exchange_destroy(void *exchange_pointer) {
    ollama_exchange *exchange = exchange_pointer;
    if (exchange == NULL) return;
    free(exchange->model);
    free(exchange);
}

/* ---- Small helpers ---------------------------------------------------------------------------- */

/* Inputs come from the host; a struct shorter than its 1.0 size is never read past. */
static bool big_enough(const void *pointer, size_t minimum) {
    return pointer != NULL && *(const uint32_t *)pointer >= minimum;
}

static void report(const prism_error_sink *error, uint32_t status, const char *type,
                   const char *code, const char *message) {
    if (big_enough(error, PRISM_ERROR_SINK_SIZE_1_0)) pk_report_error(error, status, type, code, message);
}

static prism_status invalid(const prism_error_sink *error, const char *message) {
    report(error, 400, "invalid_request_error", "invalid_request", message);
    return PRISM_ERROR_INVALID_REQUEST;
}

static prism_status out_of_memory(const prism_error_sink *error) {
    report(error, 500, "internal_error", "internal_error", "ollama ingress: out of memory");
    return PRISM_ERROR_INTERNAL;
}

/* Ollama's created_at: RFC 3339 in UTC with milliseconds, "2024-05-01T12:34:56.789Z". Civil date
 * from days since the epoch (H. Hinnant's algorithm): no gmtime, no locale, thread-safe. */
static void timestamp(const ollama_instance *instance, char out[32]) {
    uint64_t ms;
    int64_t days, seconds, era, doe, yoe, doy, mp, year, month, day;
    const prism_host_api *host = instance != NULL ? instance->host : NULL;
    if (host != NULL && PRISM_HAS_FIELD(host, prism_host_api, wall_clock_milliseconds) &&
        host->wall_clock_milliseconds != NULL)
        ms = host->wall_clock_milliseconds();
    else
        ms = (uint64_t)time(NULL) * 1000u;
    days = (int64_t)(ms / 86400000u);
    seconds = (int64_t)(ms / 1000u % 86400u);
    days += 719468;
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    day = doy - (153 * mp + 2) / 5 + 1;
    month = mp < 10 ? mp + 3 : mp - 9;
    year = yoe + era * 400 + (month <= 2);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)year, (int)month, (int)day,
             (int)(seconds / 3600), (int)(seconds / 60 % 60), (int)(seconds % 60),
             (int)(ms % 1000u));
}

/* The media type of base64 image data, from its first bytes (Ollama's images carry none). */
static const char *image_type(pk_json base64) {
    static const struct {
        const char *prefix;
        const char *type;
    } known[] = {{"\"iVBORw0KGgo", "image/png"}, {"\"/9j/", "image/jpeg"},
                 {"\"R0lGOD", "image/gif"},     {"\"UklGR", "image/webp"}};
    size_t i;
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t n = strlen(known[i].prefix);
        if (base64.length >= n && memcmp(base64.data, known[i].prefix, n) == 0) return known[i].type;
    }
    return "image/jpeg";
}

/* The members every Ollama chat object starts with: model, created_at and the message. `content`
 * is a JSON string value (copied as it is) or, when invalid, "". */
static void chat_head(pk_jw *w, const ollama_exchange *exchange, pk_json content) {
    char created_at[32];
    timestamp(exchange->instance, created_at);
    pk_jw_object_begin(w);
    pk_jw_member_string(w, "model", exchange->model != NULL ? exchange->model : "");
    pk_jw_member_string(w, "created_at", created_at);
    pk_jw_key(w, "message");
    pk_jw_object_begin(w);
    pk_jw_member_string(w, "role", "assistant");
    pk_jw_key(w, "content");
    if (content.type == PK_JSON_STRING)
        pk_jw_value(w, content);
    else
        pk_jw_string(w, "");
    pk_jw_object_end(w);
}

/* done:true, the reason and the counts, and the closing brace. */
static void chat_tail_done(pk_jw *w, const char *done_reason, uint64_t prompt, uint64_t completion) {
    pk_jw_member_bool(w, "done", true);
    pk_jw_member_string(w, "done_reason", done_reason);
    pk_jw_member_uint(w, "prompt_eval_count", prompt);
    pk_jw_member_uint(w, "eval_count", completion);
    pk_jw_object_end(w);
}

static const char *reason_of(pk_json finish_reason) {
    return pk_json_string_eq(finish_reason, "length") ? "length" : "stop";
}

static prism_status write_bytes(const prism_bytes_sink *client, const pk_buf *out,
                                const prism_error_sink *error) {
    if (out->failed) return out_of_memory(error);
    client->write(client->context, pk_buf_bytes(out));
    return PRISM_OK;
}

/* ---- decode_request: Ollama's request to the canonical (OpenAI) one --------------------------- */

/* One message; false with *problem set when it cannot be translated. */
static bool write_message(pk_jw *w, pk_json message, const char **problem) {
    pk_json role, content = {NULL, 0, PK_JSON_INVALID}, images, image, calls;
    size_t i;
    if (message.type != PK_JSON_OBJECT || !pk_json_member(message, "role", &role) ||
        role.type != PK_JSON_STRING) {
        *problem = "every message needs a \"role\"";
        return false;
    }
    if (pk_json_string_eq(role, "tool") ||
        (pk_json_member(message, "tool_calls", &calls) && pk_json_count(calls) > 0)) {
        *problem = "tool calls are not supported on this gateway's /api/chat";
        return false;
    }
    if (!pk_json_string_eq(role, "system") && !pk_json_string_eq(role, "user") &&
        !pk_json_string_eq(role, "assistant")) {
        *problem = "a message's role must be system, user or assistant";
        return false;
    }
    if (pk_json_member(message, "content", &content) && content.type != PK_JSON_STRING &&
        content.type != PK_JSON_NULL) {
        *problem = "a message's content must be a string";
        return false;
    }
    pk_jw_object_begin(w);
    pk_jw_key(w, "role");
    pk_jw_value(w, role);
    pk_jw_key(w, "content");
    if (pk_json_member(message, "images", &images) && images.type == PK_JSON_ARRAY &&
        pk_json_count(images) > 0) {
        /* Text and images: OpenAI's content parts, each image a data: URL. */
        pk_jw_array_begin(w);
        if (content.type == PK_JSON_STRING && content.length > 2) {
            pk_jw_object_begin(w);
            pk_jw_member_string(w, "type", "text");
            pk_jw_key(w, "text");
            pk_jw_value(w, content);
            pk_jw_object_end(w);
        }
        for (i = 0; pk_json_at(images, i, &image); i++) {
            pk_buf url = PK_BUF_INIT;
            if (image.type != PK_JSON_STRING) {
                *problem = "images must be base64 strings";
                return false;
            }
            pk_buf_printf(&url, "data:%s;base64,", image_type(image));
            pk_buf_append(&url, image.data + 1, image.length - 2); /* base64 needs no escapes */
            pk_jw_object_begin(w);
            pk_jw_member_string(w, "type", "image_url");
            pk_jw_key(w, "image_url");
            pk_jw_object_begin(w);
            pk_jw_key(w, "url");
            pk_jw_string_n(w, url.data, url.length);
            pk_jw_object_end(w);
            pk_jw_object_end(w);
            if (url.failed) w->out->failed = true;
            pk_buf_free(&url);
        }
        pk_jw_array_end(w);
    } else if (content.type == PK_JSON_STRING) {
        pk_jw_value(w, content);
    } else {
        pk_jw_string(w, "");
    }
    pk_jw_object_end(w);
    return true;
}

/* Ollama's options that OpenAI has too; false with *problem set for a value of the wrong type. */
static bool write_options(pk_jw *w, pk_json options, const char **problem) {
    static const char *const numbers[] = {"temperature", "top_p", "frequency_penalty",
                                          "presence_penalty"};
    pk_json value;
    int64_t integer;
    size_t i;
    if (options.type == PK_JSON_NULL) return true;
    if (options.type != PK_JSON_OBJECT) {
        *problem = "\"options\" must be an object";
        return false;
    }
    for (i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (!pk_json_member(options, numbers[i], &value) || value.type == PK_JSON_NULL) continue;
        if (value.type != PK_JSON_NUMBER) {
            *problem = "options: temperature, top_p and the penalties must be numbers";
            return false;
        }
        pk_jw_key(w, numbers[i]);
        pk_jw_value(w, value);
    }
    if (pk_json_member(options, "seed", &value) && value.type != PK_JSON_NULL) {
        if (!pk_json_int64(value, &integer)) {
            *problem = "options: seed must be an integer";
            return false;
        }
        pk_jw_member_int(w, "seed", integer);
    }
    /* num_predict: -1 (no limit) and -2 (fill the context) have no OpenAI counterpart. */
    if (pk_json_member(options, "num_predict", &value) && value.type != PK_JSON_NULL) {
        if (!pk_json_int64(value, &integer)) {
            *problem = "options: num_predict must be an integer";
            return false;
        }
        if (integer > 0) pk_jw_member_int(w, "max_tokens", integer);
    }
    if (pk_json_member(options, "stop", &value) && value.type != PK_JSON_NULL) {
        pk_json item;
        if (value.type == PK_JSON_STRING) {
            pk_jw_key(w, "stop");
            pk_jw_array_begin(w);
            pk_jw_value(w, value);
            pk_jw_array_end(w);
        } else if (value.type == PK_JSON_ARRAY) {
            for (i = 0; pk_json_at(value, i, &item); i++) {
                if (item.type != PK_JSON_STRING) {
                    *problem = "options: stop must be a list of strings";
                    return false;
                }
            }
            pk_jw_key(w, "stop");
            pk_jw_value(w, value);
        } else {
            *problem = "options: stop must be a list of strings";
            return false;
        }
    }
    return true;
}

static prism_status decode_request(void *exchange_pointer, const prism_request *request,
                                   const prism_http_builder *canonical,
                                   const prism_decode_resume *resume,
                                   const prism_error_sink *error) {
    ollama_exchange *exchange = exchange_pointer;
    pk_json body, model, messages, message, value;
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    const char *problem = NULL;
    bool stream;
    size_t i, model_length;
    prism_status status;
    (void)resume; /* this dialect always decides at once */

    if (!big_enough(request, PRISM_REQUEST_SIZE_1_0) ||
        !big_enough(canonical, PRISM_HTTP_BUILDER_SIZE_1_0)) {
        report(error, 500, "internal_error", "internal_error", "ollama ingress: short host struct");
        return PRISM_ERROR_INTERNAL;
    }
    if (!pk_str_eq(request->api, "ollama.chat")) {
        report(error, 501, "invalid_request_error", "unsupported_api",
               "the ollama ingress serves only ollama.chat");
        return PRISM_ERROR_UNSUPPORTED;
    }
    if (!pk_json_parse(request->body.data, request->body.length, &body) ||
        body.type != PK_JSON_OBJECT)
        return invalid(error, "the request body is not a JSON object");
    if (!pk_json_member(body, "model", &model) || model.type != PK_JSON_STRING || model.length <= 2)
        return invalid(error, "model is required");
    if (!pk_json_member(body, "messages", &messages) || messages.type != PK_JSON_ARRAY ||
        pk_json_count(messages) == 0)
        return invalid(error, "messages is required");
    if (pk_json_member(body, "tools", &value) && value.type == PK_JSON_ARRAY &&
        pk_json_count(value) > 0)
        return invalid(error, "tools are not supported on this gateway's /api/chat");
    stream = true; /* Ollama streams unless told not to */
    if (pk_json_member(body, "stream", &value) && value.type != PK_JSON_NULL &&
        !pk_json_bool(value, &stream))
        return invalid(error, "\"stream\" must be true or false");

    /* Keep the model name for the answer (the request is borrowed). */
    free(exchange->model);
    exchange->model = NULL;
    if (pk_json_string_dup(model, &exchange->model, &model_length) != PK_OK)
        return out_of_memory(error);

    pk_jw_init(&w, &out);
    pk_jw_object_begin(&w);
    pk_jw_key(&w, "model");
    pk_jw_value(&w, model);
    pk_jw_key(&w, "messages");
    pk_jw_array_begin(&w);
    for (i = 0; pk_json_at(messages, i, &message); i++) {
        if (!write_message(&w, message, &problem)) break;
    }
    pk_jw_array_end(&w);
    pk_jw_member_bool(&w, "stream", stream);
    if (stream) {
        /* The usage chunk gives finish_stream its counts. */
        pk_jw_key(&w, "stream_options");
        pk_jw_object_begin(&w);
        pk_jw_member_bool(&w, "include_usage", true);
        pk_jw_object_end(&w);
    }
    if (problem == NULL && pk_json_member(body, "options", &value))
        (void)write_options(&w, value, &problem);
    if (problem == NULL && pk_json_member(body, "format", &value)) {
        if (pk_json_string_eq(value, "json")) {
            pk_jw_key(&w, "response_format");
            pk_jw_object_begin(&w);
            pk_jw_member_string(&w, "type", "json_object");
            pk_jw_object_end(&w);
        } else if (value.type == PK_JSON_OBJECT) {
            /* A JSON schema: OpenAI's structured output. */
            pk_jw_key(&w, "response_format");
            pk_jw_object_begin(&w);
            pk_jw_member_string(&w, "type", "json_schema");
            pk_jw_key(&w, "json_schema");
            pk_jw_object_begin(&w);
            pk_jw_member_string(&w, "name", "response");
            pk_jw_key(&w, "schema");
            pk_jw_value(&w, value);
            pk_jw_object_end(&w);
            pk_jw_object_end(&w);
        } else if (value.type != PK_JSON_NULL && !pk_json_string_eq(value, "")) {
            problem = "\"format\" must be \"json\" or a JSON schema";
        }
    }
    pk_jw_object_end(&w);
    if (problem != NULL) {
        pk_buf_free(&out);
        return invalid(error, problem);
    }
    if (out.failed || !pk_jw_complete(&w)) {
        pk_buf_free(&out);
        return out_of_memory(error);
    }
    /* Only the body: the canonical request's headers are the client's (Ollama has no key header
     * to translate), and its status, method and url are ignored. */
    status = canonical->write_body(canonical->context, pk_buf_bytes(&out));
    pk_buf_free(&out);
    if (status != PRISM_OK) {
        report(error, 500, "internal_error", "internal_error",
               "ollama ingress: the host refused the canonical request");
        return status;
    }
    return PRISM_OK;
}

/* ---- Answers ---------------------------------------------------------------------------------- */

static prism_status encode_response(void *exchange_pointer, const prism_response *response,
                                    const prism_http_builder *client,
                                    const prism_error_sink *error) {
    ollama_exchange *exchange = exchange_pointer;
    pk_json answer, choice, content = {NULL, 0, PK_JSON_INVALID}, finish = {NULL, 0, PK_JSON_INVALID};
    pk_usage usage;
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    prism_status status;

    if (!big_enough(response, PRISM_RESPONSE_SIZE_1_0) ||
        !big_enough(client, PRISM_HTTP_BUILDER_SIZE_1_0)) {
        report(error, 500, "internal_error", "internal_error", "ollama ingress: short host struct");
        return PRISM_ERROR_INTERNAL;
    }
    if (!pk_json_parse(response->body.data, response->body.length, &answer) ||
        answer.type != PK_JSON_OBJECT || !pk_json_find(answer, "choices[0]", &choice)) {
        report(error, 502, "provider_error", "provider_error",
               "ollama ingress: the answer is not a chat.completion");
        return PRISM_ERROR_UPSTREAM;
    }
    (void)pk_json_find(choice, "message.content", &content); /* null (a refusal, tools): "" */
    (void)pk_json_member(choice, "finish_reason", &finish);
    pk_openai_usage_read(answer, &usage);

    pk_jw_init(&w, &out);
    chat_head(&w, exchange, content);
    chat_tail_done(&w, reason_of(finish), usage.prompt_tokens, usage.completion_tokens);
    if (out.failed || !pk_jw_complete(&w)) {
        pk_buf_free(&out);
        return out_of_memory(error);
    }
    status = pk_respond(client, response->status >= 200 && response->status < 300 ? response->status : 200,
                        "application/json", out.data, out.length);
    pk_buf_free(&out);
    if (status != PRISM_OK)
        report(error, 500, "internal_error", "internal_error",
               "ollama ingress: the host refused the answer");
    return status;
}

static prism_status encode_event(void *exchange_pointer, prism_bytes chunk,
                                 const prism_bytes_sink *client, const prism_error_sink *error) {
    ollama_exchange *exchange = exchange_pointer;
    pk_json event, choice, content, finish;
    pk_usage usage;
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    prism_status status = PRISM_OK;

    if (!big_enough(client, PRISM_BYTES_SINK_SIZE_1_0)) {
        report(error, 500, "internal_error", "internal_error", "ollama ingress: short host struct");
        return PRISM_ERROR_INTERNAL;
    }
    if (!pk_json_parse(chunk.data, chunk.length, &event) || event.type != PK_JSON_OBJECT) {
        report(error, 502, "provider_error", "provider_error",
               "ollama ingress: a stream chunk is not a JSON object");
        return PRISM_ERROR_UPSTREAM;
    }
    /* The usage chunk ("choices": []) and the finish reason are kept for finish_stream. */
    if (pk_openai_usage_read(event, &usage)) {
        exchange->prompt_tokens = usage.prompt_tokens;
        exchange->completion_tokens = usage.completion_tokens;
    }
    if (!pk_json_find(event, "choices[0]", &choice)) return PRISM_OK;
    if (pk_json_member(choice, "finish_reason", &finish) && finish.type == PK_JSON_STRING)
        exchange->done_reason = reason_of(finish);
    /* One line per piece of text; a role-only or empty delta says nothing to an Ollama client. */
    if (!pk_json_find(choice, "delta.content", &content) || content.type != PK_JSON_STRING ||
        content.length <= 2)
        return PRISM_OK;
    pk_jw_init(&w, &out);
    chat_head(&w, exchange, content);
    pk_jw_member_bool(&w, "done", false);
    pk_jw_object_end(&w);
    pk_buf_putc(&out, '\n');
    status = write_bytes(client, &out, error);
    pk_buf_free(&out);
    return status;
}

static prism_status finish_stream(void *exchange_pointer, const prism_usage *usage,
                                  const prism_bytes_sink *client, const prism_error_sink *error) {
    ollama_exchange *exchange = exchange_pointer;
    uint64_t prompt = exchange->prompt_tokens, completion = exchange->completion_tokens;
    pk_json empty = {NULL, 0, PK_JSON_INVALID};
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    prism_status status;

    if (!big_enough(client, PRISM_BYTES_SINK_SIZE_1_0)) {
        report(error, 500, "internal_error", "internal_error", "ollama ingress: short host struct");
        return PRISM_ERROR_INTERNAL;
    }
    /* The host's usage is the stream's (the last report wins); the chunk's when it has none. */
    if (PRISM_HAS_FIELD(usage, prism_usage, output_tokens) &&
        (usage->input_tokens != 0 || usage->output_tokens != 0)) {
        prompt = usage->input_tokens;
        completion = usage->output_tokens;
    }
    pk_jw_init(&w, &out);
    chat_head(&w, exchange, empty);
    chat_tail_done(&w, exchange->done_reason, prompt, completion);
    pk_buf_putc(&out, '\n');
    status = write_bytes(client, &out, error);
    pk_buf_free(&out);
    return status;
}

static void encode_error(void *exchange, uint32_t http_status, prism_string type, prism_string code,
                         prism_string message, uint32_t in_stream,
                         const prism_http_builder *client) {
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    (void)exchange;
    (void)type;
    (void)code;
    if (!big_enough(client, PRISM_HTTP_BUILDER_SIZE_1_0)) return;
    /* Ollama's errors are {"error": "<message>"}, the status carrying the rest. */
    pk_jw_init(&w, &out);
    pk_jw_object_begin(&w);
    pk_jw_key(&w, "error");
    pk_jw_string_n(&w, message.data, message.length);
    pk_jw_object_end(&w);
    if (in_stream) pk_buf_putc(&out, '\n'); /* one more NDJSON line ends the stream */
    if (out.failed) {
        pk_buf_free(&out);
        pk_buf_init(&out);
        pk_buf_puts(&out, in_stream ? "{\"error\":\"internal error\"}\n" : "{\"error\":\"internal error\"}");
        if (out.failed) return; /* nothing more to try: the host still ends the answer */
    }
    if (in_stream) {
        (void)client->write_body(client->context, pk_buf_bytes(&out));
    } else {
        (void)pk_respond(client, http_status >= 400 && http_status <= 599 ? http_status : 500,
                         "application/json", out.data, out.length);
    }
    pk_buf_free(&out);
}

static void keep_alive(void *exchange_pointer, const prism_bytes_sink *client) {
    ollama_exchange *exchange = exchange_pointer;
    pk_json empty = {NULL, 0, PK_JSON_INVALID};
    pk_buf out = PK_BUF_INIT;
    pk_jw w;
    if (!big_enough(client, PRISM_BYTES_SINK_SIZE_1_0)) return;
    /* An NDJSON stream has no comment line: a line with no text keeps it alive. */
    pk_jw_init(&w, &out);
    chat_head(&w, exchange, empty);
    pk_jw_member_bool(&w, "done", false);
    pk_jw_object_end(&w);
    pk_buf_putc(&out, '\n');
    if (!out.failed) client->write(client->context, pk_buf_bytes(&out));
    pk_buf_free(&out);
}

/* A pass-through answer in Ollama's format: a whole body (one object, or NDJSON lines) or one
 * line. The final object (done:true) carries the counts. */
static void observe_native(void *exchange, prism_string event, prism_bytes data,
                           prism_usage *inout_usage) {
    const char *text = (const char *)data.data;
    size_t start = 0, end;
    (void)exchange;
    (void)event;
    if (text == NULL || !PRISM_HAS_FIELD(inout_usage, prism_usage, output_tokens)) return;
    while (start < data.length) {
        pk_json line;
        const char *newline = memchr(text + start, '\n', data.length - start);
        end = newline != NULL ? (size_t)(newline - text) : data.length;
        if (pk_json_parse(text + start, end - start, &line) && line.type == PK_JSON_OBJECT &&
            pk_json_find_bool(line, "done", false)) {
            int64_t count = pk_json_find_int64(line, "prompt_eval_count", -1);
            if (count >= 0) inout_usage->input_tokens = (uint64_t)count;
            count = pk_json_find_int64(line, "eval_count", -1);
            if (count >= 0) inout_usage->output_tokens = (uint64_t)count;
        }
        start = end + 1;
    }
}

/* ---- The descriptor --------------------------------------------------------------------------- */

/* Declared, and empty: the gateway warns about any key under ingress.ollama but `enabled`. */
static const char *const ollama_config_keys[] = {NULL};

static const prism_ingress_v1 ollama_ingress = {
    .struct_size = sizeof(prism_ingress_v1),
    .instance_new = instance_new,
    .instance_destroy = instance_destroy,
    .routes = routes,
    .exchange_new = exchange_new,
    .exchange_destroy = exchange_destroy,
    .decode_request = decode_request,
    .encode_response = encode_response,
    .encode_event = encode_event,
    .finish_stream = finish_stream,
    .encode_error = encode_error,
    .keep_alive = keep_alive,
    .observe_native = observe_native,
    .config_keys = ollama_config_keys,
};

static const prism_component ollama_components[] = {
    {.struct_size = sizeof(prism_component),
     .kind = PRISM_COMPONENT_INGRESS,
     .name = "ollama",
     .vtable = &ollama_ingress},
};

static const prism_plugin_descriptor ollama_descriptor = {
    .struct_size = sizeof(prism_plugin_descriptor),
    .abi_major = PRISM_ABI_MAJOR,
    .abi_minor = PRISM_ABI_MINOR,
    /* Ingress components came in 1.5: an older host must refuse the file, not skip the kind. */
    .min_host_abi_minor = 5,
    .flags = 0,
    .id = "dev.prism.example.c-ingress",
    .version = "1.0.0",
    .components = ollama_components,
    .component_count = sizeof ollama_components / sizeof ollama_components[0],
    .reserved = 0,
};

C_INGRESS_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                    const prism_plugin_descriptor **out_descriptor);

C_INGRESS_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                    const prism_plugin_descriptor **out_descriptor) {
    if (out_descriptor == NULL) return PRISM_ERROR_ABI;
    if (host == NULL || !PRISM_HAS_FIELD(host, prism_host_api, abi_minor) ||
        host->abi_major != PRISM_ABI_MAJOR || host->abi_minor < 5)
        return PRISM_ERROR_ABI;
    *out_descriptor = &ollama_descriptor;
    return PRISM_OK;
}
