/*
 * c_example_provider.c -- a Prism provider adapter for OpenAI-compatible upstreams, in plain C11.
 *
 * Component: provider "c-example". It needs nothing but the ABI header and libc:
 *
 *   cc -std=c11 -shared -fPIC -O2 -I Sources/PrismPluginABI/include \
 *      -o c-example-provider.so examples/plugins/c_example_provider.c
 *
 * What it does (see PLUGIN_API.md, "A worked example"):
 *  - instance_new reads "name", "base_url" and "api_key" from the provider's config JSON, ignores
 *    every other key, and fails when base_url is missing.
 *  - build_request sends chat.completions to POST <base>/v1/chat/completions and models.list to
 *    GET <base>/v1/models, with the client's body unchanged; every other API is unsupported.
 *  - Responses and stream events pass through unchanged (the upstream already speaks OpenAI);
 *    usage is picked out of them for the host's accounting.
 *  - translate_error turns an upstream error into a provider_error carrying the upstream message.
 *  - It logs through the host once per instance and counts requests with the host's key-value
 *    service, to show both services in use.
 *
 * The plugin does no network I/O: the host sends the request this file describes.
 */
#include <prism_plugin.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define C_EXAMPLE_EXPORT __attribute__((visibility("default")))
#else
#define C_EXAMPLE_EXPORT
#endif

/* Longest upstream text copied into an error message. */
#define C_EXAMPLE_MAX_ERROR_TEXT 512
/* Deepest JSON nesting the scanner follows before it gives up. */
#define C_EXAMPLE_MAX_JSON_DEPTH 64

/* ---- Small helpers ---------------------------------------------------------------------------- */

static prism_string make_string(const char *data, size_t length) {
    prism_string s;
    s.data = data;
    s.length = length;
    return s;
}

static prism_string make_cstring(const char *text) { return make_string(text, strlen(text)); }

static prism_bytes make_bytes(const void *data, size_t length) {
    prism_bytes b;
    b.data = (const uint8_t *)data;
    b.length = length;
    return b;
}

static int string_equals(prism_string s, const char *text) {
    size_t n = strlen(text);
    return s.length == n && (n == 0 || memcmp(s.data, text, n) == 0);
}

/* Copies `length` bytes into a new NUL-terminated string. */
static char *copy_text(const char *data, size_t length) {
    char *copy = malloc(length + 1);
    if (copy != NULL) {
        if (length > 0) memcpy(copy, data, length);
        copy[length] = '\0';
    }
    return copy;
}

/* Clamps a snprintf result to what actually fits in a buffer of `capacity` bytes. */
static size_t printed_length(int result, size_t capacity) {
    if (result < 0) return 0;
    return (size_t)result < capacity ? (size_t)result : capacity - 1;
}

/* The largest length <= limit that does not cut a UTF-8 sequence of `text` in half. */
static size_t utf8_prefix_length(const char *text, size_t length, size_t limit) {
    size_t n;
    if (length <= limit) return length;
    n = limit;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
    return n;
}

static void report_error(const prism_error_sink *error, uint32_t http_status, const char *type,
                         const char *code, const char *message, size_t message_length) {
    if (error == NULL || error->set == NULL) return;
    error->set(error->context, http_status, make_cstring(type), make_cstring(code),
               make_string(message, message_length));
}

static void host_log(const prism_host_api *host, prism_log_level level, const char *message,
                     size_t length) {
    if (host != NULL && PRISM_HAS_FIELD(host, prism_host_api, log) && host->log != NULL)
        host->log(level, make_string(message, length));
}

static int host_log_enabled(const prism_host_api *host, prism_log_level level) {
    if (host == NULL || !PRISM_HAS_FIELD(host, prism_host_api, log_enabled) ||
        host->log_enabled == NULL)
        return 0;
    return host->log_enabled(level) != 0;
}

/* ---- A minimal JSON scanner --------------------------------------------------------------------
 * Enough to find members of an object and decode string values with all JSON escapes. It never
 * builds a tree: it walks the bytes it was given, which stay borrowed. Member names are compared
 * byte for byte (the names this plugin looks for contain nothing that needs escaping). */

static const char *json_skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* `p` is at an opening quote; returns the position after the closing quote, or NULL. */
static const char *json_skip_string(const char *p, const char *end) {
    if (p >= end || *p != '"') return NULL;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            if (++p >= end) return NULL;
        } else if (c < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static int json_is_literal_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '-' || c == '+' || c == '.';
}

/* Returns the position after the value that starts at `p`, or NULL when it is malformed. */
static const char *json_skip_value(const char *p, const char *end, int depth) {
    p = json_skip_space(p, end);
    if (p >= end) return NULL;
    if (*p == '"') return json_skip_string(p, end);
    if (*p == '{' || *p == '[') {
        const int is_object = *p == '{';
        const char close = is_object ? '}' : ']';
        if (depth >= C_EXAMPLE_MAX_JSON_DEPTH) return NULL;
        p = json_skip_space(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (is_object) {
                p = json_skip_string(json_skip_space(p, end), end);
                if (p == NULL) return NULL;
                p = json_skip_space(p, end);
                if (p >= end || *p != ':') return NULL;
                p++;
            }
            p = json_skip_value(p, end, depth + 1);
            if (p == NULL) return NULL;
            p = json_skip_space(p, end);
            if (p >= end) return NULL;
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    {
        /* A number, true, false or null. */
        const char *start = p;
        while (p < end && json_is_literal_char(*p)) p++;
        return p > start ? p : NULL;
    }
}

/* `object` is at '{' (after optional space). Returns where the value of member `name` starts
 * (always before `end`), or NULL when the object has no such member or is malformed before it. */
static const char *json_find_member(const char *object, const char *end, const char *name) {
    const size_t name_length = strlen(name);
    const char *p = json_skip_space(object, end);
    if (p >= end || *p != '{') return NULL;
    p = json_skip_space(p + 1, end);
    if (p < end && *p == '}') return NULL;
    for (;;) {
        const char *key = p;
        const char *after_key = json_skip_string(p, end);
        if (after_key == NULL) return NULL;
        p = json_skip_space(after_key, end);
        if (p >= end || *p != ':') return NULL;
        p = json_skip_space(p + 1, end);
        if (p >= end) return NULL;
        if ((size_t)(after_key - key) == name_length + 2 && memcmp(key + 1, name, name_length) == 0)
            return p;
        p = json_skip_value(p, end, 1);
        if (p == NULL) return NULL;
        p = json_skip_space(p, end);
        if (p >= end || *p != ',') return NULL;
        p = json_skip_space(p + 1, end);
    }
}

static int json_hex4(const char *p, const char *end, uint32_t *out) {
    uint32_t value = 0;
    int i;
    if (end - p < 4) return 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        value <<= 4;
        if (c >= '0' && c <= '9') value |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') value |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') value |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = value;
    return 1;
}

static size_t utf8_encode(uint32_t code_point, char out[4]) {
    if (code_point < 0x80) {
        out[0] = (char)code_point;
        return 1;
    }
    if (code_point < 0x800) {
        out[0] = (char)(0xC0 | (code_point >> 6));
        out[1] = (char)(0x80 | (code_point & 0x3F));
        return 2;
    }
    if (code_point < 0x10000) {
        out[0] = (char)(0xE0 | (code_point >> 12));
        out[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code_point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code_point >> 18));
    out[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code_point & 0x3F));
    return 4;
}

/* Decodes the JSON string whose opening quote is at `p` into `out` (room for `capacity` bytes).
 * When the text does not fit it stops at a character boundary and sets `*truncated`. Lone
 * surrogates become U+FFFD. Returns 0, or -1 when `p` is not a well-formed string. The decoded
 * text is never longer than the encoded one, so capacity = encoded length never truncates. */
static int json_decode_string(const char *p, const char *end, char *out, size_t capacity,
                              size_t *out_length, int *truncated) {
    size_t written = 0;
    *truncated = 0;
    if (p >= end || *p != '"') return -1;
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        char encoded[4];
        size_t encoded_length;
        if (c == '"') {
            *out_length = written;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c != '\\') {
            if (written == capacity) {
                /* Do not leave half a UTF-8 sequence behind. */
                if ((c & 0xC0) == 0x80) {
                    while (written > 0 && ((unsigned char)out[written - 1] & 0xC0) == 0x80)
                        written--;
                    if (written > 0 && (unsigned char)out[written - 1] >= 0xC0) written--;
                }
                *truncated = 1;
                *out_length = written;
                return 0;
            }
            out[written++] = (char)c;
            p++;
            continue;
        }
        if (++p >= end) return -1;
        switch (*p) {
        case '"': encoded[0] = '"'; encoded_length = 1; break;
        case '\\': encoded[0] = '\\'; encoded_length = 1; break;
        case '/': encoded[0] = '/'; encoded_length = 1; break;
        case 'b': encoded[0] = '\b'; encoded_length = 1; break;
        case 'f': encoded[0] = '\f'; encoded_length = 1; break;
        case 'n': encoded[0] = '\n'; encoded_length = 1; break;
        case 'r': encoded[0] = '\r'; encoded_length = 1; break;
        case 't': encoded[0] = '\t'; encoded_length = 1; break;
        case 'u': {
            uint32_t code_point, low;
            if (!json_hex4(p + 1, end, &code_point)) return -1;
            p += 4;
            if (code_point >= 0xD800 && code_point <= 0xDBFF) {
                if (end - p >= 7 && p[1] == '\\' && p[2] == 'u' && json_hex4(p + 3, end, &low) &&
                    low >= 0xDC00 && low <= 0xDFFF) {
                    code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
                    p += 6;
                } else {
                    code_point = 0xFFFD;
                }
            } else if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
                code_point = 0xFFFD;
            }
            encoded_length = utf8_encode(code_point, encoded);
            break;
        }
        default:
            return -1;
        }
        p++;
        if (capacity - written < encoded_length) {
            *truncated = 1;
            *out_length = written;
            return 0;
        }
        memcpy(out + written, encoded, encoded_length);
        written += encoded_length;
    }
    return -1;
}

/* Decodes the JSON string at `value` into a new NUL-terminated buffer. Returns 0 on success,
 * 1 when the value is not a well-formed string or contains NUL, 2 when memory ran out. */
static int json_copy_string(const char *value, const char *end, char **out, size_t *out_length) {
    const char *after = json_skip_string(value, end);
    size_t capacity, length;
    int truncated;
    char *buffer;
    if (after == NULL) return 1;
    capacity = (size_t)(after - value);
    buffer = malloc(capacity + 1);
    if (buffer == NULL) return 2;
    if (json_decode_string(value, end, buffer, capacity, &length, &truncated) != 0 ||
        memchr(buffer, '\0', length) != NULL) {
        free(buffer);
        return 1;
    }
    buffer[length] = '\0';
    *out = buffer;
    *out_length = length;
    return 0;
}

/* A non-negative integer at `p`; 0 when it is anything else. */
static uint64_t json_read_count(const char *p, const char *end) {
    uint64_t value = 0;
    if (p == NULL) return 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) return 0;
        value = value * 10 + digit;
    }
    return value;
}

/* Reads the OpenAI "usage" object of the response or chunk `json` into `usage`. Returns non-zero
 * when there was one. */
static int read_openai_usage(const char *json, const char *end, prism_usage *usage) {
    const char *u = json_find_member(json, end, "usage");
    const char *details;
    if (u == NULL || *u != '{') return 0;
    memset(usage, 0, sizeof *usage);
    usage->struct_size = (uint32_t)sizeof *usage;
    usage->input_tokens = json_read_count(json_find_member(u, end, "prompt_tokens"), end);
    usage->output_tokens = json_read_count(json_find_member(u, end, "completion_tokens"), end);
    details = json_find_member(u, end, "prompt_tokens_details");
    if (details != NULL && *details == '{')
        usage->cached_input_tokens =
            json_read_count(json_find_member(details, end, "cached_tokens"), end);
    details = json_find_member(u, end, "completion_tokens_details");
    if (details != NULL && *details == '{')
        usage->reasoning_tokens =
            json_read_count(json_find_member(details, end, "reasoning_tokens"), end);
    return 1;
}

/* Copies `from` into the host's `to`, touching only the fields the host's struct has. */
static void store_usage(prism_usage *to, const prism_usage *from) {
    if (PRISM_HAS_FIELD(to, prism_usage, input_tokens)) to->input_tokens = from->input_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, output_tokens)) to->output_tokens = from->output_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, cached_input_tokens))
        to->cached_input_tokens = from->cached_input_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, reasoning_tokens))
        to->reasoning_tokens = from->reasoning_tokens;
}

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

typedef struct c_example_exchange {
    const c_example_instance *instance;
    int model_reported; /* set_response_model already called for this stream */
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

static char *concatenate(const char *a, const char *b, size_t b_length) {
    size_t a_length = strlen(a);
    char *result = malloc(a_length + b_length + 1);
    if (result != NULL) {
        memcpy(result, a, a_length);
        memcpy(result + a_length, b, b_length);
        result[a_length + b_length] = '\0';
    }
    return result;
}

/* Normalizes a base URL: drops trailing slashes, appends "/v1" unless it already ends in it. */
static char *normalize_base_url(const char *url, size_t length) {
    while (length > 0 && url[length - 1] == '/') length--;
    if (length >= 3 && memcmp(url + length - 3, "/v1", 3) == 0) return copy_text(url, length);
    {
        char *result = malloc(length + 4);
        if (result != NULL) {
            memcpy(result, url, length);
            memcpy(result + length, "/v1", 4);
        }
        return result;
    }
}

/* Reports a configuration problem as "c-example provider <name>: <detail>" and gives up. */
static prism_status config_failure(const prism_error_sink *error, c_example_instance *instance,
                                   prism_string instance_name, const char *code,
                                   const char *detail) {
    char message[512];
    int n;
    if (instance->name != NULL)
        n = snprintf(message, sizeof message, "c-example provider %s: %s", instance->name, detail);
    else
        n = snprintf(message, sizeof message, "c-example provider %.*s: %s",
                     instance_name.length > 128 ? 128 : (int)instance_name.length,
                     instance_name.length > 0 ? instance_name.data : "", detail);
    report_error(error, 0, "invalid_request_error", code, message,
                 printed_length(n, sizeof message));
    instance_destroy(instance);
    return PRISM_ERROR_INVALID_REQUEST;
}

static prism_status out_of_memory(const prism_error_sink *error, c_example_instance *instance) {
    static const char message[] = "c-example: out of memory";
    report_error(error, 0, "internal_error", "internal_error", message, sizeof message - 1);
    instance_destroy(instance);
    return PRISM_ERROR_INTERNAL;
}

static prism_status instance_new(const prism_host_api *host, prism_string instance_name,
                                 prism_bytes config_json, void **out_instance,
                                 const prism_error_sink *error) {
    const char *json = (const char *)config_json.data;
    const char *end = json + config_json.length;
    const char *value;
    char *base_url = NULL;
    size_t length;
    int result;
    c_example_instance *instance;

    if (out_instance == NULL) return PRISM_ERROR_INTERNAL;
    *out_instance = NULL;
    instance = calloc(1, sizeof *instance);
    if (instance == NULL) return out_of_memory(error, NULL);
    instance->host = host;

    value = json == NULL ? NULL : json_skip_space(json, end);
    if (value == NULL || value == end || *value != '{' || json_skip_value(value, end, 0) == NULL)
        return config_failure(error, instance, instance_name, "invalid_config",
                              "the config is not a JSON object");

    /* "name": added by the host; fall back to the instance name it passed. */
    value = json_find_member(json, end, "name");
    if (value != NULL && *value == '"') {
        result = json_copy_string(value, end, &instance->name, &length);
        if (result == 2) return out_of_memory(error, instance);
        if (result != 0)
            return config_failure(error, instance, instance_name, "invalid_config",
                                  "\"name\" is not a valid string");
    } else {
        instance->name = copy_text(instance_name.data, instance_name.length);
        if (instance->name == NULL) return out_of_memory(error, instance);
    }

    value = json_find_member(json, end, "base_url");
    if (value == NULL || (end - value >= 4 && memcmp(value, "null", 4) == 0))
        return config_failure(error, instance, instance_name, "missing_base_url",
                              "base_url is required (the upstream's OpenAI-compatible address, "
                              "e.g. http://localhost:8000/v1)");
    result = json_copy_string(value, end, &base_url, &length);
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
    instance->chat_url = concatenate(instance->base, "/chat/completions", 17);
    instance->models_url = concatenate(instance->base, "/models", 7);
    if (instance->chat_url == NULL || instance->models_url == NULL)
        return out_of_memory(error, instance);

    /* "api_key": optional; an empty key (e.g. from "${KEY:-}") means no authorization header.
     * A key that YAML read as a number arrives as a JSON number: take its text. */
    value = json_find_member(json, end, "api_key");
    if (value != NULL && *value == '"') {
        char *key = NULL;
        result = json_copy_string(value, end, &key, &length);
        if (result == 2) return out_of_memory(error, instance);
        if (result != 0)
            return config_failure(error, instance, instance_name, "invalid_config",
                                  "api_key is not a valid string");
        if (length > 0) {
            instance->authorization = concatenate("Bearer ", key, length);
            free(key);
            if (instance->authorization == NULL) return out_of_memory(error, instance);
        } else {
            free(key);
        }
    } else if (value != NULL && *value >= '0' && *value <= '9') {
        const char *after = json_skip_value(value, end, 0);
        instance->authorization = concatenate("Bearer ", value, (size_t)(after - value));
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
    {
        char message[512];
        int n = snprintf(message, sizeof message, "c-example provider %s ready for %s",
                         instance->name, instance->base);
        host_log(host, PRISM_LOG_INFO, message, printed_length(n, sizeof message));
    }

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
    static const char key[] = "requests";
    if (instance->key_value == NULL) return;
    if (instance->key_value->increment(make_string(key, sizeof key - 1), 1, 0, &count) != PRISM_OK)
        return;
    if (host_log_enabled(instance->host, PRISM_LOG_DEBUG)) {
        char message[256];
        int n = snprintf(message, sizeof message, "c-example provider %s: request number %lld",
                         instance->name, (long long)count);
        host_log(instance->host, PRISM_LOG_DEBUG, message, printed_length(n, sizeof message));
    }
}

static prism_status builder_failed(const prism_error_sink *error, prism_status status) {
    static const char message[] = "c-example: the host refused part of the upstream request";
    report_error(error, 0, "internal_error", "internal_error", message, sizeof message - 1);
    return status != PRISM_OK ? status : PRISM_ERROR_INTERNAL;
}

static prism_status build_request(void *exchange_pointer, const prism_request *request,
                                  const prism_http_builder *upstream, prism_framing *out_framing,
                                  const prism_error_sink *error) {
    const c_example_exchange *exchange = exchange_pointer;
    const c_example_instance *instance = exchange->instance;
    prism_status status;
    int chat;

    if (string_equals(request->api, "chat.completions")) {
        chat = 1;
    } else if (string_equals(request->api, "models.list")) {
        chat = 0;
    } else {
        char message[256];
        int api_length = request->api.length > 64 ? 64 : (int)request->api.length;
        int n = snprintf(message, sizeof message,
                         "the c-example provider does not serve the \"%.*s\" API", api_length,
                         request->api.length > 0 ? request->api.data : "");
        report_error(error, 0, "invalid_request_error", "unsupported_api", message,
                     printed_length(n, sizeof message));
        return PRISM_ERROR_UNSUPPORTED;
    }

    status = upstream->set_method(upstream->context, make_cstring(chat ? "POST" : "GET"));
    if (status != PRISM_OK) return builder_failed(error, status);
    status = upstream->set_url(upstream->context,
                               make_cstring(chat ? instance->chat_url : instance->models_url));
    if (status != PRISM_OK) return builder_failed(error, status);
    if (chat) {
        status = upstream->set_header(upstream->context, make_cstring("content-type"),
                                      make_cstring("application/json"));
        if (status != PRISM_OK) return builder_failed(error, status);
    }
    if (instance->authorization != NULL) {
        status = upstream->set_header(upstream->context, make_cstring("authorization"),
                                      make_cstring(instance->authorization));
        if (status != PRISM_OK) return builder_failed(error, status);
    }
    if (chat && request->body.length > 0) {
        /* The upstream speaks OpenAI: the client's body goes out unchanged. */
        status = upstream->write_body(upstream->context, request->body);
        if (status != PRISM_OK) return builder_failed(error, status);
    }

    *out_framing = (chat && (request->flags & PRISM_REQUEST_STREAM) != 0) ? PRISM_FRAMING_SSE
                                                                          : PRISM_FRAMING_NONE;
    count_request(instance);
    return PRISM_OK;
}

static prism_status translate_response(void *exchange, const prism_response *response,
                                       const prism_http_builder *client, prism_usage *out_usage,
                                       const prism_error_sink *error) {
    prism_string content_type = make_cstring("application/json");
    prism_usage usage;
    prism_status status;
    size_t i;
    (void)exchange;

    for (i = 0; i < response->header_count; i++) {
        if (string_equals(response->headers[i].name, "content-type")) {
            content_type = response->headers[i].value;
            break;
        }
    }
    status = client->set_status(client->context, 200);
    if (status == PRISM_OK)
        status = client->set_header(client->context, make_cstring("content-type"), content_type);
    if (status == PRISM_OK && response->body.length > 0)
        status = client->write_body(client->context, response->body);
    if (status != PRISM_OK) return builder_failed(error, status);

    if (out_usage != NULL && response->body.length > 0 &&
        read_openai_usage((const char *)response->body.data,
                          (const char *)response->body.data + response->body.length, &usage))
        store_usage(out_usage, &usage);
    return PRISM_OK;
}

static prism_status translate_event(void *exchange_pointer, const prism_event *event,
                                    const prism_stream_sink *client,
                                    const prism_error_sink *error) {
    c_example_exchange *exchange = exchange_pointer;
    const char *data = (const char *)event->data.data;
    const char *end = data + event->data.length;
    const char *trimmed = json_skip_space(data, end);
    const char *trimmed_end = end;
    prism_usage usage;
    (void)error;

    while (trimmed_end > trimmed &&
           (trimmed_end[-1] == ' ' || trimmed_end[-1] == '\n' || trimmed_end[-1] == '\r' ||
            trimmed_end[-1] == '\t'))
        trimmed_end--;
    /* Nothing to say, or the upstream's end marker: the host writes its own [DONE]. */
    if (trimmed == trimmed_end) return PRISM_OK;
    if (trimmed_end - trimmed == 6 && memcmp(trimmed, "[DONE]", 6) == 0) return PRISM_OK;

    /* Usage (the final chunk when stream_options.include_usage is on) and the answering model. */
    if (*trimmed == '{') {
        if (client->report_usage != NULL && read_openai_usage(trimmed, trimmed_end, &usage))
            client->report_usage(client->context, &usage);
        if (!exchange->model_reported && client->set_response_model != NULL) {
            const char *model = json_find_member(trimmed, trimmed_end, "model");
            char name[256];
            size_t length;
            int truncated;
            if (model != NULL && *model == '"' &&
                json_decode_string(model, trimmed_end, name, sizeof name, &length, &truncated) ==
                    0) {
                client->set_response_model(client->context, make_string(name, length));
                exchange->model_reported = 1;
            }
        }
    }

    /* A client event carries no newlines. Valid JSON only has them as white space between
     * tokens (a multi-line `data:` field is joined with "\n"), so they become spaces. */
    if (memchr(data, '\n', event->data.length) == NULL &&
        memchr(data, '\r', event->data.length) == NULL)
        return client->emit_event(client->context, event->data);
    {
        prism_status status;
        size_t i;
        char *copy = copy_text(trimmed, (size_t)(trimmed_end - trimmed));
        if (copy == NULL) return PRISM_ERROR_INTERNAL;
        for (i = 0; copy[i] != '\0'; i++)
            if (copy[i] == '\n' || copy[i] == '\r') copy[i] = ' ';
        status = client->emit_event(client->context,
                                    make_bytes(copy, (size_t)(trimmed_end - trimmed)));
        free(copy);
        return status;
    }
}

static prism_status finish_stream(void *exchange, const prism_stream_sink *client,
                                  const prism_error_sink *error) {
    (void)exchange;
    (void)client;
    (void)error;
    return PRISM_OK;
}

static prism_status translate_error(void *exchange, const prism_response *response,
                                    const prism_error_sink *error) {
    const char *body = (const char *)response->body.data;
    const char *end = body + response->body.length;
    char text[C_EXAMPLE_MAX_ERROR_TEXT];
    size_t text_length = 0;
    int have_text = 0;
    char message[C_EXAMPLE_MAX_ERROR_TEXT + 64];
    int n;
    uint32_t http_status = response->status;
    (void)exchange;

    /* OpenAI's shape is {"error":{"message":"..."}}; some servers send {"error":"..."}. */
    if (response->body.length > 0 && json_skip_space(body, end) < end &&
        *json_skip_space(body, end) == '{') {
        const char *value = json_find_member(body, end, "error");
        int truncated;
        if (value != NULL && *value == '{') value = json_find_member(value, end, "message");
        if (value != NULL && *value == '"' &&
            json_decode_string(value, end, text, sizeof text, &text_length, &truncated) == 0)
            have_text = 1;
    }
    if (!have_text) {
        text_length = utf8_prefix_length(body, response->body.length, sizeof text);
        if (text_length > 0) memcpy(text, body, text_length);
    }

    n = snprintf(message, sizeof message, "upstream returned HTTP %u: %.*s", (unsigned)http_status,
                 (int)text_length, text);
    if (http_status < 400 || http_status > 599) http_status = 502;
    report_error(error, http_status, "provider_error", "provider_error", message,
                 printed_length(n, sizeof message));
    return PRISM_ERROR_UPSTREAM;
}

/* ---- The descriptor ------------------------------------------------------------------------- */

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
