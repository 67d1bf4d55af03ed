/*
 * c_example_quota.c -- a Prism middleware in plain C11 that pauses: a requests-per-minute quota
 * shared by every gateway replica, through the host's prism.shared_state.v1 service (ABI 1.2).
 *
 * Component: middleware "c-quota". Config (the `config:` of its `middleware:` entry):
 *   {"requests_per_minute": 100}
 *
 *   cc -std=c11 -shared -fPIC -O2 -I Sources/PrismPluginABI/include \
 *      -o c-example-quota.so examples/plugins/c_example_quota.c
 *
 * on_request asks the host to count one request in a 60 s sliding window (window_take) and returns
 * PRISM_PAUSE. The service answers through on_window: inline (in-memory state) or later on the
 * host's Redis thread. on_window adds a header, writes a 429 when the quota is spent, and calls
 * context->resume. It needs nothing but the ABI header and libc.
 */
#include <prism_plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define C_QUOTA_EXPORT __attribute__((visibility("default")))
#else
#define C_QUOTA_EXPORT
#endif

struct quota {
    const prism_host_api *host;
    const prism_shared_state_service_v1 *state;
    int64_t requests_per_minute;
};

/* What on_window needs; allocated per paused request, freed before resume. */
struct pending {
    const prism_request_context *context;
    const prism_http_builder *response;
    int64_t limit;
};

static prism_string text(const char *value) {
    prism_string s;
    s.data = value;
    s.length = strlen(value);
    return s;
}

/* The integer after "requests_per_minute": in the instance's config JSON (0 when absent). */
static int64_t read_limit(prism_bytes config) {
    static const char name[] = "\"requests_per_minute\"";
    char buffer[4096];
    size_t length = config.length < sizeof buffer - 1 ? config.length : sizeof buffer - 1;
    memcpy(buffer, config.data, length);
    buffer[length] = '\0';
    const char *found = strstr(buffer, name);
    if (found == NULL) return 0;
    found += sizeof name - 1;
    while (*found == ' ' || *found == ':') found++;
    return strtoll(found, NULL, 10);
}

static prism_status quota_new(const prism_host_api *host, prism_string instance_name, prism_bytes config,
                              void **out_instance, const prism_error_sink *error) {
    (void)instance_name;
    struct quota *quota = calloc(1, sizeof *quota);
    if (quota == NULL) return PRISM_ERROR_INTERNAL;
    quota->host = host;
    quota->requests_per_minute = read_limit(config);
    if (PRISM_HAS_FIELD(host, prism_host_api, get_service) && host->get_service != NULL) {
        quota->state = host->get_service(PRISM_SHARED_STATE_SERVICE_V1);
    }
    if (quota->state == NULL || quota->requests_per_minute <= 0) {
        error->set(error->context, 0, text("configuration_error"), text("configuration_error"),
                   text("c-quota needs requests_per_minute > 0 and a host with prism.shared_state.v1"));
        free(quota);
        return PRISM_ERROR_INVALID_REQUEST;
    }
    *out_instance = quota;
    return PRISM_OK;
}

static void quota_destroy(void *instance) { free(instance); }

/* The shared state's answer: inline, or later on a host thread. */
static void on_window(void *user_data, const prism_state_result *result) {
    struct pending *pending = user_data;
    const prism_request_context *context = pending->context;
    const prism_http_builder *response = pending->response;
    prism_action action = PRISM_CONTINUE;
    if (result->window_count == 1) {
        int64_t remaining = pending->limit - result->windows[0].used;
        char number[32];
        snprintf(number, sizeof number, "%lld", (long long)(remaining > 0 ? remaining : 0));
        context->add_response_header(context->context, text("x-c-quota-remaining"), text(number));
    }
    if (result->status == PRISM_ERROR_LIMIT) {
        static const char body[] = "{\"error\":{\"message\":\"The c-quota middleware's quota is spent.\","
                                   "\"type\":\"rate_limit_exceeded\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
        prism_bytes bytes;
        bytes.data = (const uint8_t *)body;
        bytes.length = sizeof body - 1;
        response->set_status(response->context, 429);
        response->set_header(response->context, text("content-type"), text("application/json"));
        response->write_body(response->context, bytes);
        action = PRISM_RESPOND;
    }
    free(pending);
    context->resume(context->context, action); /* last: after it, context and response are gone */
}

static prism_action quota_on_request(void *instance, const prism_request *request,
                                     const prism_request_context *context,
                                     const prism_http_builder *local_response) {
    (void)request;
    struct quota *quota = instance;
    if (!PRISM_HAS_FIELD(context, prism_request_context, resume) || context->resume == NULL) {
        return PRISM_CONTINUE; /* a host older than 1.2 cannot pause */
    }
    struct pending *pending = malloc(sizeof *pending);
    if (pending == NULL) return PRISM_CONTINUE;
    pending->context = context;
    pending->response = local_response;
    pending->limit = quota->requests_per_minute;
    prism_window_claim claim;
    memset(&claim, 0, sizeof claim);
    claim.struct_size = sizeof claim;
    claim.key = text("requests");
    claim.window_milliseconds = 60000;
    claim.limit = quota->requests_per_minute;
    claim.cost = 1;
    quota->state->window_take(&claim, 1, on_window, pending); /* may run on_window before returning */
    return PRISM_PAUSE;
}

static const prism_middleware_v1 quota_table = {
    sizeof(prism_middleware_v1), quota_new, quota_destroy, quota_on_request, NULL, NULL, NULL,
    NULL /* config_keys (1.4): not declared */,
};

static const prism_component components[] = {
    {sizeof(prism_component), PRISM_COMPONENT_MIDDLEWARE, "c-quota", &quota_table},
};

static const prism_plugin_descriptor descriptor = {
    sizeof(prism_plugin_descriptor), PRISM_ABI_MAJOR, PRISM_ABI_MINOR,
    2 /* min_host_abi_minor: PAUSE and shared state */, 0,
    "dev.prism.example.c-quota", "1.0.0", components, 1, 0,
};

C_QUOTA_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                  const prism_plugin_descriptor **out_descriptor) {
    if (host == NULL || host->abi_major != PRISM_ABI_MAJOR) return PRISM_ERROR_ABI;
    *out_descriptor = &descriptor;
    return PRISM_OK;
}
