/*
 * prism_plugin.h -- the Prism gateway plugin ABI, major version 1.
 *
 * This header is the whole contract between the Prism host and a plugin. A plugin is a shared
 * object (.so) that exports one symbol, `prism_plugin_entry_v1`, and describes one or more
 * components: provider adapters, middleware and routing strategies. PLUGIN_API.md explains every
 * rule in prose; the comments here are the short form.
 *
 * Rules that hold for everything below:
 *  - Only fixed-width integers, pointers and the structs declared here cross the boundary. No C
 *    enums (their size is implementation defined), no language runtime objects, no exceptions or
 *    panics: nothing may unwind across a call in either direction.
 *  - Every struct begins with `uint32_t struct_size`. Structs and function tables only ever grow by
 *    appending fields (a minor version bump). A reader checks PRISM_HAS_FIELD before it touches a
 *    field that a later minor version added. A NULL optional function pointer means "not provided".
 *  - Inputs are borrowed: a prism_string, prism_bytes, header array or input struct passed to a
 *    call is valid only until that call returns. Copy what you keep.
 *  - Outputs go through host-provided sinks (prism_http_builder, prism_stream_sink,
 *    prism_error_sink, prism_request_context). The host copies every argument before the sink
 *    returns, so stack buffers are fine. Sinks themselves are valid only inside the call that
 *    received them.
 *  - Neither side frees memory the other side allocated. Plugin state (`void *instance`,
 *    `void *exchange`) is created and destroyed by the plugin's own functions.
 *  - Strings are UTF-8 and not NUL-terminated unless a comment says otherwise.
 *  - Structs that appear as array elements (prism_header, prism_candidate, prism_component,
 *    prism_window_claim, prism_window_usage, prism_route) are frozen for major version 1: arrays are stepped by
 *    their size in the minor that introduced them, so they never grow.
 *  - A host function or service function that the struct_size covers is never NULL, except where
 *    a comment says "optional".
 */
#ifndef PRISM_PLUGIN_H
#define PRISM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions and the entry symbol ---------------------------------------------------------- */

#define PRISM_ABI_MAJOR 1
/* 1.1: prism_router_v1.parallel_attempts.
 * 1.2: PRISM_PAUSE and prism_request_context.resume / watch_response, prism_middleware_v1
 *      on_response / on_stream_event, PRISM_ERROR_UNAVAILABLE, the "prism.shared_state.v1" service.
 * 1.3: the "prism.metrics.v1" service.
 * 1.4: prism_error_sink.add_header; config_keys at the end of the provider, middleware and router
 *      tables; prism_provider_v1.model_patterns.
 * 1.5: ingress components (PRISM_COMPONENT_INGRESS, prism_ingress_v1, prism_route,
 *      prism_decode_resume, PRISM_PENDING): a client dialect served on its own routes.
 * 1.6: the "prism.client_keys.v1" service (prism_client_keys_service_v1). */
#define PRISM_ABI_MINOR 6
/* The one symbol a plugin exports. A future major version adds `prism_plugin_entry_v2`; one .so
 * may export both. */
#define PRISM_PLUGIN_ENTRY_SYMBOL "prism_plugin_entry_v1"

/* True when struct `pointer` (of type `type`) is large enough to contain `field`. */
#define PRISM_HAS_FIELD(pointer, type, field)                                                     \
    ((pointer) != NULL &&                                                                         \
     (size_t)(pointer)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---- Scalars --------------------------------------------------------------------------------- */

/* Result of most calls. Any value not listed is treated by the host as PRISM_ERROR_INTERNAL. */
typedef int32_t prism_status;
#define PRISM_OK 0
/* Only from a provider's build_request: the plugin answered without the network. The upstream
 * builder holds the answer (status, headers, body) exactly as the upstream would have sent it,
 * and the host continues as if the transport had received it (translate_response, or framing
 * and translate_event for a stream). Used by the `mock` provider and by test doubles. */
#define PRISM_ANSWERED_LOCALLY 1
#define PRISM_ERROR_INVALID_REQUEST (-1) /* client's fault: 400 unless the error sink says otherwise */
#define PRISM_ERROR_UNSUPPORTED (-2)     /* this component cannot do that: 501 */
#define PRISM_ERROR_UPSTREAM (-3)        /* the provider failed: 502 */
#define PRISM_ERROR_DENIED (-4)          /* 403 */
#define PRISM_ERROR_LIMIT (-5)           /* 429 */
#define PRISM_ERROR_INTERNAL (-6)        /* 500 */
#define PRISM_ERROR_ABI (-7)             /* version or struct size mismatch; refuses to load */
#define PRISM_ERROR_UNAVAILABLE (-8)     /* 1.2: a service's backend cannot be reached right now: 503 */
/* 1.5: only from an ingress's decode_request: the decision comes later, through
 * prism_decode_resume.resume (the ingress waits for a service callback, e.g. a stored value). */
#define PRISM_PENDING 3
/* 1.5: only from an ingress's decode_request: as PRISM_OK, but no provider gets the client's own
 * body (pass-through): the canonical request holds what that body lacks (a stored conversation). */
#define PRISM_TRANSLATE_ONLY 4

/* What a middleware's on_request tells the host to do next. */
typedef int32_t prism_action;
#define PRISM_CONTINUE 0 /* go on with the next middleware, then routing */
#define PRISM_RESPOND 1  /* answer the client with `local_response` now (401, 429, a cache hit) */
/* 1.2: the middleware decides later (it waits for a service callback): it calls
 * prism_request_context.resume exactly once, from any thread, with CONTINUE or RESPOND. */
#define PRISM_PAUSE 2

/* Component kinds. */
typedef int32_t prism_component_kind;
#define PRISM_COMPONENT_PROVIDER 1
#define PRISM_COMPONENT_MIDDLEWARE 2
#define PRISM_COMPONENT_ROUTER 3
#define PRISM_COMPONENT_INGRESS 4 /* 1.5 */

/* How the upstream response body is framed when the request streams (set by build_request). */
typedef int32_t prism_framing;
#define PRISM_FRAMING_NONE 0   /* not a stream: the host buffers the body, calls translate_response */
#define PRISM_FRAMING_SSE 1    /* server-sent events: the host parses, calls translate_event */
#define PRISM_FRAMING_NDJSON 2 /* one JSON document per line: translate_event, `event` empty */
#define PRISM_FRAMING_RAW 3    /* raw bytes as they arrive (binary framings): translate_chunk */

/* Log levels for prism_host_api.log. */
typedef int32_t prism_log_level;
#define PRISM_LOG_DEBUG 0
#define PRISM_LOG_INFO 1
#define PRISM_LOG_WARN 2
#define PRISM_LOG_ERROR 3

/* prism_request.flags bits. Unknown bits must be ignored. */
#define PRISM_REQUEST_STREAM 0x1u /* the client asked for a stream */
#define PRISM_REQUEST_RETRY 0x2u  /* this is not the first attempt for this client request */

/* ---- Borrowed views -------------------------------------------------------------------------- */

typedef struct prism_string {
    const char *data;
    size_t length;
} prism_string;

typedef struct prism_bytes {
    const uint8_t *data;
    size_t length;
} prism_bytes;

typedef struct prism_header {
    prism_string name; /* lower-case on input from the host */
    prism_string value;
} prism_header;

/* ---- Host services --------------------------------------------------------------------------- */

/*
 * The host's function table. The plugin receives one at entry (bound to the plugin) and one more
 * for every component instance (bound to that instance), and may keep either until the process
 * exits. Its functions carry no context argument: each table's functions are libffi closures that
 * the host bound to one identity, so a log line is attributed, and a key-value key namespaced, by
 * construction; a plugin cannot act under another plugin's name. All functions are thread-safe.
 */
typedef struct prism_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    /* Writes one log line, attributed to the plugin (and instance). */
    void (*log)(prism_log_level level, prism_string message);
    /* Non-zero when `level` is enabled; check it before formatting an expensive message. */
    int32_t (*log_enabled)(prism_log_level level);
    /* Monotonic clock in nanoseconds (for durations). */
    uint64_t (*monotonic_nanoseconds)(void);
    /* Wall clock, milliseconds since the Unix epoch. */
    uint64_t (*wall_clock_milliseconds)(void);
    /* Optional services by versioned id, NUL-terminated (e.g. PRISM_KEY_VALUE_SERVICE_V1). Returns
     * a pointer to a service table, valid until exit, or NULL when the host has no such service. */
    const void *(*get_service)(const char *service_id);
} prism_host_api;

/* A sink that receives one byte string (used by services that return a value). */
typedef struct prism_bytes_sink {
    uint32_t struct_size;
    void *context;
    void (*write)(void *context, prism_bytes value);
} prism_bytes_sink;

/*
 * "prism.key_value.v1": state with expiry, kept by the host in this process's memory: each
 * replica of the gateway has its own (for state shared by every replica, use
 * "prism.shared_state.v1"). Keys are namespaced per plugin by the host: two plugins using the same
 * key never see each other's values. Functions return at once (no I/O). A ttl of 0 means "never
 * expires".
 */
#define PRISM_KEY_VALUE_SERVICE_V1 "prism.key_value.v1"
#define PRISM_KEY_NOT_FOUND 2 /* returned by get when the key is absent or expired */
typedef struct prism_key_value_service_v1 {
    uint32_t struct_size;
    /* Writes the value to `out` and returns PRISM_OK, or returns PRISM_KEY_NOT_FOUND. */
    prism_status (*get)(prism_string key, const prism_bytes_sink *out);
    prism_status (*set)(prism_string key, prism_bytes value, uint64_t ttl_milliseconds);
    prism_status (*remove)(prism_string key);
    /* Adds `delta` to the integer counter at `key` (absent = 0) and stores the result in
     * `*out_value`. The ttl is applied when the counter is created. Atomic. */
    prism_status (*increment)(prism_string key, int64_t delta, uint64_t ttl_milliseconds,
                              int64_t *out_value);
} prism_key_value_service_v1;

/*
 * "prism.shared_state.v1" (1.2): state shared by every replica of the gateway when the operator
 * configured a shared backend (`redis:`), else kept in this process. Keys are namespaced per
 * plugin as in prism.key_value.v1. Every call is asynchronous: `done` is called exactly once,
 * either before the call returns (in-memory backend, or a failure detected at once) or later on a
 * host thread; it must not block. The result is borrowed for the duration of `done`.
 *
 * Windows are the host's atomic rate-limit primitive: a sliding window of `window_milliseconds`
 * kept as 60 slots; a take counts the slots that overlap the last window_milliseconds (the oldest
 * slot whole, so what a window admits never exceeds its limit in any interval of that length).
 * window_take grants all claims or none, in one atomic step on the backend (one round trip).
 * When the shared backend is unreachable, windows are counted in this process and the result
 * carries PRISM_STATE_LOCAL_FALLBACK; values (get/set/remove) fail with PRISM_ERROR_UNAVAILABLE.
 */
#define PRISM_SHARED_STATE_SERVICE_V1 "prism.shared_state.v1"
#define PRISM_STATE_LOCAL_FALLBACK 0x1u /* prism_state_result.flags: answered from local memory */

/* One window to count `cost` in. Array element: frozen. */
typedef struct prism_window_claim {
    uint32_t struct_size;
    uint32_t reserved; /* zero */
    prism_string key;
    uint64_t window_milliseconds; /* 1000 .. 86400000 */
    int64_t limit;                /* units allowed per window; 0 or less = no limit, only count */
    int64_t cost;                 /* units this take counts, >= 0 */
} prism_window_claim;

/* What one claim's window holds after the take. Array element: frozen. */
typedef struct prism_window_usage {
    uint32_t struct_size;
    uint32_t granted; /* non-zero when this claim alone would have fit */
    int64_t used;     /* units counted in the window, including this take when it was granted */
    /* Milliseconds until this claim's cost would fit (0 when it fits now). */
    uint64_t retry_after_milliseconds;
    /* Milliseconds until everything counted now has left the window. */
    uint64_t reset_milliseconds;
    /* Where the take was counted: pass it to window_adjust to correct the cost later. */
    uint64_t slot;
} prism_window_usage;

typedef struct prism_state_result {
    uint32_t struct_size;
    /* PRISM_OK; PRISM_KEY_NOT_FOUND (get); PRISM_ERROR_LIMIT (window_take: at least one claim did
     * not fit, nothing was counted); PRISM_ERROR_UNAVAILABLE; PRISM_ERROR_INVALID_REQUEST. */
    prism_status status;
    uint32_t flags;                    /* PRISM_STATE_* bits */
    uint32_t reserved;
    prism_bytes value;                 /* get: the value */
    const prism_window_usage *windows; /* window_take: one per claim, in claim order */
    size_t window_count;
} prism_state_result;

typedef void (*prism_state_callback)(void *user_data, const prism_state_result *result);

typedef struct prism_shared_state_service_v1 {
    uint32_t struct_size;
    void (*get)(prism_string key, prism_state_callback done, void *user_data);
    /* A ttl of 0 means "never expires". `done` may be NULL (fire and forget). */
    void (*set)(prism_string key, prism_bytes value, uint64_t ttl_milliseconds,
                prism_state_callback done, void *user_data);
    void (*remove)(prism_string key, prism_state_callback done, void *user_data); /* done may be NULL */
    void (*window_take)(const prism_window_claim *claims, size_t claim_count,
                        prism_state_callback done, void *user_data);
    /* Adds `delta` (negative to give back) to what the take at `slot` counted, if that slot is
     * still in the window (a reservation reconciled with the real cost). Fire and forget. */
    void (*window_adjust)(prism_string key, uint64_t window_milliseconds, uint64_t slot,
                          int64_t delta);
    /* Bounds how many values (set) this plugin keeps in the in-memory backend; the least recently
     * used go first. 0 = unbounded. A shared backend evicts by its own policy and ignores it. */
    void (*set_value_capacity)(uint64_t max_values);
} prism_shared_state_service_v1;

/*
 * "prism.metrics.v1" (1.3): the plugin's own metrics, exported with the host's at GET /-/metrics
 * (Prometheus text format). `name` and label names follow Prometheus rules
 * ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':'); label values are any UTF-8. A name keeps the kind
 * and the label names of its first use; a later call that differs, a name the host itself records
 * (prism_requests_total, ...), an invalid name, a label name starting with "__" or given twice, or
 * a new series past the host's cap returns PRISM_ERROR_INVALID_REQUEST and records nothing. Names
 * are process-wide (not namespaced per plugin); label names count in order. Calls are cheap (no
 * I/O) and thread-safe. Keep label values few (no ids, no user input).
 */
#define PRISM_METRICS_SERVICE_V1 "prism.metrics.v1"
typedef struct prism_metrics_service_v1 {
    uint32_t struct_size;
    prism_status (*counter_add)(prism_string name, const prism_header *labels, size_t label_count,
                                uint64_t amount);
    prism_status (*gauge_set)(prism_string name, const prism_header *labels, size_t label_count,
                              double value);
    /* Buckets: Prometheus's defaults (0.005 .. 10), for durations in seconds. */
    prism_status (*histogram_observe)(prism_string name, const prism_header *labels,
                                      size_t label_count, double value);
} prism_metrics_service_v1;

/*
 * "prism.client_keys.v1" (1.6): the client keys an operator created with the admin API (POST
 * /-/keys, POST /-/orgs/{id}/keys), kept by the host in its admin store, for a middleware that
 * authenticates clients. Offered only while the admin API is on: get_service returns NULL
 * otherwise. An instance sees the keys of the organization its generation serves (the file's
 * configuration: the keys created without one). Creating, revoking or expiring a key changes what
 * lookup answers at once: no reload, no new instances.
 *
 * lookup: `sha256` is the 32-byte SHA-256 digest of the key the client presented (raw bytes, not
 * hex). For a live key of this instance's organization it writes the key's record to `out` and
 * returns PRISM_OK; otherwise (unknown, revoked, another organization's, or a digest that is not
 * 32 bytes) PRISM_KEY_NOT_FOUND. An expired key is still found: its record carries `expires_at`
 * and the caller decides (say why in its answer). The record is a UTF-8 JSON object:
 *   {"name": string, "owner": string (may be ""), "models": [string] (empty: every model),
 *    "rate_limit_rpm": integer (0: none), "rate_limit_tpm": integer (0: none),
 *    "expires_at": seconds since the Unix epoch, or null}
 * Members may be added in later minors: ignore the ones you do not know. Returns at once (a hash
 * look-up, no I/O); thread-safe.
 */
#define PRISM_CLIENT_KEYS_SERVICE_V1 "prism.client_keys.v1"
typedef struct prism_client_keys_service_v1 {
    uint32_t struct_size;
    prism_status (*lookup)(prism_bytes sha256, const prism_bytes_sink *out);
} prism_client_keys_service_v1;

/* ---- Sinks the host gives to plugins --------------------------------------------------------- */

/* Builds an HTTP message: the upstream request in build_request (method, url, headers, body), or
 * the client response in translate_response and middleware (status, headers, body). set_header
 * replaces an existing header of that name; add_header appends another one. */
typedef struct prism_http_builder {
    uint32_t struct_size;
    void *context;
    prism_status (*set_status)(void *context, uint32_t status);
    prism_status (*set_method)(void *context, prism_string method);
    prism_status (*set_url)(void *context, prism_string absolute_url);
    prism_status (*set_header)(void *context, prism_string name, prism_string value);
    prism_status (*add_header)(void *context, prism_string name, prism_string value);
    prism_status (*write_body)(void *context, prism_bytes data); /* appends */
    prism_status (*clear_body)(void *context);
} prism_http_builder;

/* Token counts. Zero means "not reported". */
typedef struct prism_usage {
    uint32_t struct_size;
    uint32_t reserved; /* zero */
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint64_t cached_input_tokens;
    uint64_t cache_write_tokens;
    uint64_t reasoning_tokens;
} prism_usage;

/* Where a provider writes client events while translating a stream. */
typedef struct prism_stream_sink {
    uint32_t struct_size;
    void *context;
    /* One client event: the JSON of one OpenAI chat.completion.chunk (no "data: " prefix, no
     * newlines). The host frames it as SSE and writes it to the client at once. */
    prism_status (*emit_event)(void *context, prism_bytes data);
    /* Cumulative usage so far; the last report wins. */
    void (*report_usage)(void *context, const prism_usage *usage);
    /* The model name the upstream says answered. */
    void (*set_response_model)(void *context, prism_string model);
} prism_stream_sink;

/* Describes a failure. Call it before returning an error status. `type`, `code` and `message`
 * become the OpenAI error's "type", "code" and "message" as they are (the host adds nothing);
 * http_status 0 lets the host choose from the status. */
typedef struct prism_error_sink {
    uint32_t struct_size;
    void *context;
    void (*set)(void *context, uint32_t http_status, prism_string type, prism_string code,
                prism_string message);
    /* Added in 1.4. A header for the client's error answer, e.g. the upstream's `retry-after`
     * (appended; a name or value with CR, LF or NUL is refused with PRISM_ERROR_INVALID_REQUEST).
     * Used when this error is what the client receives before the first byte of the answer. */
    prism_status (*add_header)(void *context, prism_string name, prism_string value);
} prism_error_sink;

/* Per-request attributes and response headers a middleware may read and add. Attribute names in
 * use by first-party components: "key.name", "key.owner" (set by auth, written to the request
 * log), "key.rate_limit_rpm", "key.rate_limit_tpm" (set by auth, read by rate_limit).
 * The pointer to this struct is the same in every call about one request to one middleware
 * (on_request, on_response, on_stream_event, on_complete) and differs between requests in flight:
 * key per-request state by it, and drop that state in on_complete. (prism_request.request_id may
 * come from the client's x-prism-request-id header, so it is not unique.) */
typedef struct prism_request_context {
    uint32_t struct_size;
    void *context;
    prism_status (*set_attribute)(void *context, prism_string name, prism_string value);
    /* Writes the value to `out` and returns PRISM_OK, or returns PRISM_KEY_NOT_FOUND. */
    prism_status (*get_attribute)(void *context, prism_string name, const prism_bytes_sink *out);
    /* Adds a header to the response the client will receive, whoever produces it. */
    prism_status (*add_response_header)(void *context, prism_string name, prism_string value);
    /* Added in 1.2. Ends an on_request that returned PRISM_PAUSE: `action` is PRISM_CONTINUE, or
     * PRISM_RESPOND after writing the `local_response` builder that on_request received. Call it
     * exactly once per PAUSE, from any thread, also before on_request has returned (a service
     * callback may run inline): on_request must still return PRISM_PAUSE then, and the host makes
     * no other call about this request before on_request has returned. Until resume, this context
     * and that builder stay valid and their functions may be called from any thread (the
     * prism_request does not: copy what you need); after it, neither may be used. If the client
     * has gone away or the request timed out (504 middleware_timeout) meanwhile, resume is still
     * required, is accepted and ignored, and on_complete follows it. */
    void (*resume)(void *context, prism_action action);
    /* Added in 1.2. Asks the host to show this middleware the answer of this request: its
     * on_response (a non-streaming answer from a provider) or on_stream_event (each event of a
     * streamed one). Call it from on_request (or before resume). */
    void (*watch_response)(void *context);
} prism_request_context;

/* ---- Inputs the host gives to plugins -------------------------------------------------------- */

typedef struct prism_request {
    uint32_t struct_size;
    uint32_t flags;   /* PRISM_REQUEST_* bits */
    uint32_t attempt; /* 0 for the first attempt */
    uint32_t reserved;
    /* Which API: "chat.completions", "embeddings", "models.list". A provider returns
     * PRISM_ERROR_UNSUPPORTED for one it does not serve. */
    prism_string api;
    prism_string method;
    prism_string path;
    const prism_header *headers; /* the client's headers, names lower-case */
    size_t header_count;
    prism_bytes body;    /* the client's body, OpenAI format (empty for models.list) */
    prism_string model;  /* for providers: the upstream model routing chose; for middleware and
                            routers: the model the client asked for */
    prism_string request_id;
} prism_request;

typedef struct prism_response {
    uint32_t struct_size;
    uint32_t status;
    const prism_header *headers; /* names lower-case */
    size_t header_count;
    prism_bytes body; /* complete (non-streaming responses and errors) */
} prism_response;

/* One upstream event (SSE event, or one NDJSON line). Multi-line `data:` fields are joined with
 * "\n"; comments and keep-alives never reach the plugin. */
typedef struct prism_event {
    uint32_t struct_size;
    uint32_t reserved;
    prism_string event; /* the SSE `event:` field, empty when absent */
    prism_bytes data;
    prism_string id;
} prism_event;

/* End-of-request summary given to middleware and routers. */
typedef struct prism_completion {
    uint32_t struct_size;
    uint32_t status;       /* HTTP status the client received */
    prism_string provider; /* provider instance name; empty when none was called */
    prism_string model;    /* upstream model the request was sent with */
    const prism_usage *usage; /* never NULL; check its struct_size before reading newer fields */
    uint64_t latency_nanoseconds;
    uint64_t first_byte_nanoseconds; /* time to the first byte from upstream; 0 if none */
} prism_completion;

/* ---- Component function tables --------------------------------------------------------------- */

/* Creates a component instance from its configuration (the instance's config section as JSON).
 * Called on the control thread. On failure, describe it through `error`. */
typedef prism_status (*prism_instance_new_function)(const prism_host_api *host,
                                                    prism_string instance_name,
                                                    prism_bytes config_json, void **out_instance,
                                                    const prism_error_sink *error);
typedef void (*prism_instance_destroy_function)(void *instance);

/*
 * Provider adapter: translation only. The host owns the network. One instance serves many
 * requests at once: instance state must be read-only or synchronized; per-request state belongs
 * in the exchange. The host never rewrites the client's body: build_request must put
 * `request->model` (the upstream model routing chose) into what it sends. For one client request the host
 * calls exchange_new, then build_request, then either translate_response (2xx, not streaming),
 * translate_error (non-2xx), or translate_event / translate_chunk per piece of the stream followed
 * by finish_stream; then exchange_destroy exactly once (also when the client went away).
 * Calls for one exchange never overlap; they may come from different threads.
 */
typedef struct prism_provider_v1 {
    uint32_t struct_size;
    prism_instance_new_function instance_new;         /* required */
    prism_instance_destroy_function instance_destroy; /* required */
    prism_status (*exchange_new)(void *instance, void **out_exchange);  /* required */
    void (*exchange_destroy)(void *exchange);                           /* required */
    /* Writes the upstream request; signing, if any, happens last, here. Sets `*out_framing`
     * (PRISM_FRAMING_NONE for non-streaming requests). */
    prism_status (*build_request)(void *exchange, const prism_request *request,
                                  const prism_http_builder *upstream, prism_framing *out_framing,
                                  const prism_error_sink *error); /* required */
    /* A 2xx upstream answer to a non-streaming request: write the client's answer (status,
     * headers, OpenAI-format body) and fill `*out_usage`. */
    prism_status (*translate_response)(void *exchange, const prism_response *response,
                                       const prism_http_builder *client, prism_usage *out_usage,
                                       const prism_error_sink *error); /* required */
    /* One upstream stream event (SSE/NDJSON framing). Emit zero or more client events. */
    prism_status (*translate_event)(void *exchange, const prism_event *event,
                                    const prism_stream_sink *client,
                                    const prism_error_sink *error); /* required */
    /* Raw stream bytes (PRISM_FRAMING_RAW); chunks split anywhere. Optional. */
    prism_status (*translate_chunk)(void *exchange, prism_bytes chunk,
                                    const prism_stream_sink *client, const prism_error_sink *error);
    /* The upstream stream ended. Emit any final event; the host then writes `data: [DONE]`. */
    prism_status (*finish_stream)(void *exchange, const prism_stream_sink *client,
                                  const prism_error_sink *error); /* required */
    /* A non-2xx upstream answer: describe it through `error` (status, type, code, message) and
     * return PRISM_ERROR_UPSTREAM (or another error status). Optional: without it the host reports
     * the upstream status and body's message as a provider_error. */
    prism_status (*translate_error)(void *exchange, const prism_response *response,
                                    const prism_error_sink *error);
    /* Added in 1.4 (optional). The configuration keys this component reads: a NULL-terminated
     * array of NUL-terminated names, static until exit. The host warns about any other key in the
     * component's section (a typo); NULL means "not declared", and then nothing is warned. */
    const char *const *config_keys;
    /* Added in 1.4 (optional). The model names this instance serves by pattern, for a client
     * model that no `models` list names: a NULL-terminated array of NUL-terminated patterns in
     * which `*` matches any run of characters (`claude-*`, `anthropic.*`, `gpt-*`), valid until
     * instance_destroy. Called on the control thread after instance_new. NULL (or an empty list):
     * the instance serves only the models it is configured or discovered with. */
    const char *const *(*model_patterns)(void *instance);
} prism_provider_v1;

/*
 * Middleware: runs before routing, in the order the `middleware:` config list gives. on_request
 * decides CONTINUE or RESPOND, or PAUSE to decide later through context->resume (1.2); on_complete
 * (optional) sees the summary when the request ends, and is called for every request whose
 * on_request ran, whatever happened after (also when the client went away). Calls may come
 * concurrently from several threads for different requests: the instance must be thread-safe
 * (read-only, or synchronized). Calls for one request never overlap.
 */
typedef struct prism_middleware_v1 {
    uint32_t struct_size;
    prism_instance_new_function instance_new;         /* required */
    prism_instance_destroy_function instance_destroy; /* required */
    /* Return PRISM_CONTINUE, PRISM_RESPOND after writing `local_response`, or (1.2) PRISM_PAUSE
     * and later context->resume. Any other value is an internal error (the client gets 500). */
    prism_action (*on_request)(void *instance, const prism_request *request,
                               const prism_request_context *context,
                               const prism_http_builder *local_response); /* required */
    void (*on_complete)(void *instance, const prism_request *request,
                        const prism_request_context *context,
                        const prism_completion *completion); /* optional */
    /* Added in 1.2 (optional). Only for requests whose on_request called watch_response: the
     * provider's successful non-streaming answer as the client receives it (OpenAI format). */
    void (*on_response)(void *instance, const prism_request *request,
                        const prism_request_context *context, const prism_response *response);
    /* Added in 1.2 (optional). Only for requests whose on_request called watch_response: one event
     * of a streamed answer as the client receives it (the JSON of one chat.completion.chunk,
     * without "data: "). The end of the stream is on_complete (status 200 when it ended well). */
    void (*on_stream_event)(void *instance, const prism_request *request,
                            const prism_request_context *context, prism_bytes event);
    /* Added in 1.4 (optional). The configuration keys this component reads: a NULL-terminated
     * array of NUL-terminated names, static until exit. The host warns about any other key in the
     * component's section (a typo); NULL means "not declared", and then nothing is warned. */
    const char *const *config_keys;
} prism_middleware_v1;

/* What the host knows about one deployment (a provider serving the requested model). */
typedef struct prism_candidate {
    uint32_t struct_size;
    uint32_t weight;       /* from config; 1 when not set */
    prism_string provider; /* provider instance name */
    prism_string model;    /* upstream model name */
    uint32_t healthy;      /* non-zero when the host considers it usable */
    uint32_t reserved;
    uint64_t in_flight;
    double latency_milliseconds; /* recent average; 0 when unknown */
    double error_rate;           /* recent fraction of failed attempts, 0..1 */
} prism_candidate;

/*
 * Routing strategy: ranks the candidates for one request. `select` writes indices into
 * `out_order` (room for `*inout_count` entries, which is at least `candidate_count`), best first,
 * and sets `*inout_count` to how many it wrote; the host tries them in that order. Called
 * concurrently from many threads. `feedback` (optional) reports each attempt's outcome.
 */
typedef struct prism_router_v1 {
    uint32_t struct_size;
    prism_instance_new_function instance_new;         /* required */
    prism_instance_destroy_function instance_destroy; /* required */
    prism_status (*select)(void *instance, const prism_request *request,
                           const prism_candidate *candidates, size_t candidate_count,
                           uint32_t *out_order, size_t *inout_count,
                           const prism_error_sink *error); /* required */
    void (*feedback)(void *instance, const prism_completion *outcome); /* optional */
    /* Added in 1.1 (optional). How many of the ranked candidates the host tries at once: a race in
     * which the first answer wins and the others are cancelled. NULL or a result below 2 means
     * one at a time. Called concurrently. */
    uint32_t (*parallel_attempts)(void *instance);
    /* Added in 1.4 (optional). The configuration keys this component reads: a NULL-terminated
     * array of NUL-terminated names, static until exit. The host warns about any other key in the
     * component's section (a typo); NULL means "not declared", and then nothing is warned. */
    const char *const *config_keys;
} prism_router_v1;

/* ---- Ingress (1.5): client dialects ----------------------------------------------------------- */

/* prism_route.flags bits. */
#define PRISM_ROUTE_PREFIX 0x1u /* `path` is a prefix: "/v1/responses/" matches "/v1/responses/abc" */

/* One route an ingress claims. Array element: frozen. */
typedef struct prism_route {
    uint32_t struct_size;
    uint32_t flags;      /* PRISM_ROUTE_* bits */
    prism_string method; /* "POST", "GET", ... (upper case) */
    prism_string path;   /* "/v1/messages"; no query string, no percent-decoding */
    /* The operation's name in this dialect, e.g. "anthropic.messages". It is the prism_request.api
     * of decode_request and, for pass-through, of the provider's build_request. */
    prism_string api;
} prism_route;

/* How a decode_request that returned PRISM_PENDING ends: call resume exactly once, from any
 * thread (also before decode_request has returned), with PRISM_OK, PRISM_TRANSLATE_ONLY,
 * PRISM_ANSWERED_LOCALLY or an error status, after writing the builder (and the error sink) decode_request received. Until then
 * that builder, this struct and the error sink stay valid and may be used from any thread; the
 * prism_request does not (copy what you need). */
typedef struct prism_decode_resume {
    uint32_t struct_size;
    void *context;
    void (*resume)(void *context, prism_status status);
} prism_decode_resume;

/*
 * Ingress: serves a client dialect (Anthropic Messages, OpenAI Responses, ...) on the routes it
 * claims. It authenticates nothing and routes nothing: it turns the client's request into the
 * canonical request (an OpenAI chat.completions body) that the middleware chain, the router and
 * the providers already understand, and turns the canonical answer, stream and errors back into
 * its dialect. For one client request the host calls exchange_new, decode_request, then (unless
 * decode answered locally) encode_response, or encode_event per canonical chunk and finish_stream,
 * or encode_error, any number of keep_alive and observe_native calls, and exchange_destroy exactly
 * once. Calls for one exchange never overlap; they may come from different threads.
 *
 * Pass-through: before translating, the host offers each attempt's provider the client's own body
 * under the route's `api` (prism_request.api, e.g. "anthropic.messages"). A provider that speaks
 * that dialect natively builds the upstream request from it (replacing only the model and the
 * credentials); the upstream's answer then goes to the client byte for byte (the ingress only
 * observes it through observe_native, for usage). A provider that returns PRISM_ERROR_UNSUPPORTED
 * gets the canonical request instead.
 */
typedef struct prism_ingress_v1 {
    uint32_t struct_size;
    prism_instance_new_function instance_new;         /* required */
    prism_instance_destroy_function instance_destroy; /* required */
    /* The routes this instance serves: `*out_count` entries, valid until instance_destroy. Called
     * on the control thread after instance_new. Routes the host serves itself (/v1/chat/completions,
     * /v1/models, /-/...) and routes another ingress claimed first are refused with a warning. */
    const prism_route *(*routes)(void *instance, size_t *out_count); /* required */
    prism_status (*exchange_new)(void *instance, void **out_exchange); /* required */
    void (*exchange_destroy)(void *exchange);                          /* required */
    /* The client's request (api = the route's api; body decoded from any Content-Encoding; model
     * empty). Returns:
     *  - PRISM_OK: `canonical` holds the canonical request: its body is an OpenAI chat.completions
     *    request (with "model", "messages", "stream"), its headers are set on (set_header) or added
     *    to (add_header) the client's headers as the middleware and providers see them (e.g.
     *    "authorization" from the dialect's own key header); status, method and url are ignored.
     *  - PRISM_ANSWERED_LOCALLY: `canonical` holds the client's answer (status, headers, body), e.g.
     *    a token count or a stored object. The middleware chain still runs first (with the client's
     *    body and this api); the answer is sent when every middleware continues.
     *    PRISM_OK with an error described through `error`: the canonical request cannot carry
     *    what the client asked (a hosted tool, logprobs): only a provider that takes the route's
     *    api natively (pass-through) serves it; when none does, the client gets that error.
     *  - PRISM_TRANSLATE_ONLY: as PRISM_OK, but never passed through (the canonical request
     *    carries what the client's body does not, e.g. a conversation the ingress stored).
     *  - PRISM_PENDING: the decision comes through `resume` (see prism_decode_resume).
     *  - an error status after describing it through `error`: the client gets encode_error's answer. */
    prism_status (*decode_request)(void *exchange, const prism_request *request,
                                   const prism_http_builder *canonical,
                                   const prism_decode_resume *resume,
                                   const prism_error_sink *error); /* required */
    /* The canonical answer (an OpenAI chat.completion, status 2xx) to the client's answer. */
    prism_status (*encode_response)(void *exchange, const prism_response *canonical,
                                    const prism_http_builder *client,
                                    const prism_error_sink *error); /* required */
    /* One canonical stream event (the JSON of one chat.completion.chunk, without "data: "): write
     * the client's bytes, framing included (e.g. "event: ...\ndata: ...\n\n"), zero or more. The
     * host sends the head (200, text/event-stream) before the first call. */
    prism_status (*encode_event)(void *exchange, prism_bytes chunk, const prism_bytes_sink *client,
                                 const prism_error_sink *error); /* required */
    /* The canonical stream ended well, with this usage: write the dialect's closing events (the
     * host writes nothing after them and ends the response). */
    prism_status (*finish_stream)(void *exchange, const prism_usage *usage,
                                  const prism_bytes_sink *client,
                                  const prism_error_sink *error); /* required */
    /* An error for the client in this dialect. `in_stream` 0: write status, headers and body of an
     * error answer; non-zero: the stream has started, write only the body bytes that end it (an
     * error event, framing included). The host adds its own x-prism-* headers. */
    void (*encode_error)(void *exchange, uint32_t http_status, prism_string type, prism_string code,
                         prism_string message, uint32_t in_stream,
                         const prism_http_builder *client); /* required */
    /* Optional. Bytes that keep a quiet stream alive (an SSE comment or the dialect's ping event);
     * NULL: the host writes ": keep-alive\n\n". */
    void (*keep_alive)(void *exchange, const prism_bytes_sink *client);
    /* Optional. A pass-through answer, as it goes to the client untouched: each upstream SSE event
     * (`event` its name) or, not streaming, the whole body (`event` empty). Update `*inout_usage`
     * with what the dialect reports (the request's usage, cost and budgets use it). */
    void (*observe_native)(void *exchange, prism_string event, prism_bytes data,
                           prism_usage *inout_usage);
    /* Optional: the configuration keys this component reads (as in prism_provider_v1). */
    const char *const *config_keys;
} prism_ingress_v1;

/* ---- The plugin descriptor ------------------------------------------------------------------- */

typedef struct prism_component {
    uint32_t struct_size;
    prism_component_kind kind;
    const char *name;   /* NUL-terminated; unique per kind across all loaded plugins */
    const void *vtable; /* prism_provider_v1, prism_middleware_v1, prism_router_v1 or (1.5) prism_ingress_v1 */
} prism_component;

typedef struct prism_plugin_descriptor {
    uint32_t struct_size;
    uint16_t abi_major;          /* PRISM_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;          /* PRISM_ABI_MINOR the plugin was built against */
    uint16_t min_host_abi_minor; /* oldest host minor the plugin works with */
    uint16_t flags;              /* zero; unknown bits are ignored */
    const char *id;              /* NUL-terminated, e.g. "dev.prism.provider.openai" */
    const char *version;         /* NUL-terminated, e.g. "1.0.0" */
    const prism_component *components;
    uint32_t component_count;
    uint32_t reserved;
} prism_plugin_descriptor;

/* The exported entry point: `prism_plugin_entry_v1`. Called once, on the control thread, before
 * any other call. Returns PRISM_OK and points `*out_descriptor` at plugin-static memory that stays
 * valid and unchanged until the process exits, or PRISM_ERROR_ABI to refuse this host. */
typedef prism_status (*prism_plugin_entry_function)(
    const prism_host_api *host, const prism_plugin_descriptor **out_descriptor);

#if defined(__GNUC__) || defined(__clang__)
#define PRISM_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PRISM_PLUGIN_EXPORT
#endif

/* The prototype C and C++ plugins implement (so the compiler checks the signature). Not declared
 * for Swift, which exports it with @c(prism_plugin_entry_v1) instead. */
#ifndef __swift__
PRISM_PLUGIN_EXPORT prism_status prism_plugin_entry_v1(const prism_host_api *host,
                                                       const prism_plugin_descriptor **out_descriptor);
#endif

/* ---- Frozen sizes ---------------------------------------------------------------------------- */

/*
 * The size of every struct that has a struct_size, as each minor that introduced or grew it
 * declared it: PRISM_<TYPE>_SIZE_<MAJOR>_<MINOR> is the struct_size a plugin built against that
 * minor's header sets (its sizeof, which on LP64 ends exactly after the last field of that minor).
 * A struct keeps the constant of the last minor that grew it: prism_router_v1 is
 * PRISM_ROUTER_V1_SIZE_1_1 in 1.1, 1.2 and 1.3.
 *
 * The host accepts a plugin's descriptor, components and function tables when their struct_size
 * is at least the _1_0 constant, so a plugin built against 1.0 loads into every 1.x host; it reads
 * a later field only when the struct_size covers it (PRISM_HAS_FIELD).
 * A plugin may compare a host struct's struct_size with these constants the same way. Values never
 * change: a later minor adds constants. Tests/fixtures/abi_layout.c asserts each one against the
 * layout, and Tests/integration/test_abi_history.py against the headers of the released minors.
 */

/* The struct_size that just covers `field`: what PRISM_HAS_FIELD compares struct_size with. */
#define PRISM_SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

#if defined(__LP64__) || defined(_LP64)
/* LP64 (Linux and macOS on x86_64 and aarch64): plain integers, so Swift imports them too. */
#define PRISM_HOST_API_SIZE_1_0 48                 /* through get_service */
#define PRISM_BYTES_SINK_SIZE_1_0 24               /* through write */
#define PRISM_KEY_VALUE_SERVICE_V1_SIZE_1_0 40     /* through increment */
#define PRISM_HTTP_BUILDER_SIZE_1_0 72             /* through clear_body */
#define PRISM_USAGE_SIZE_1_0 48                    /* through reasoning_tokens */
#define PRISM_STREAM_SINK_SIZE_1_0 40              /* through set_response_model */
#define PRISM_ERROR_SINK_SIZE_1_0 24               /* through set */
#define PRISM_REQUEST_CONTEXT_SIZE_1_0 40          /* through add_response_header */
#define PRISM_REQUEST_CONTEXT_SIZE_1_2 56          /* through watch_response */
#define PRISM_REQUEST_SIZE_1_0 128                 /* through request_id */
#define PRISM_RESPONSE_SIZE_1_0 40                 /* through body */
#define PRISM_EVENT_SIZE_1_0 56                    /* through id */
#define PRISM_COMPLETION_SIZE_1_0 64               /* through first_byte_nanoseconds */
#define PRISM_PROVIDER_V1_SIZE_1_0 88              /* through translate_error */
#define PRISM_MIDDLEWARE_V1_SIZE_1_0 40            /* through on_complete */
#define PRISM_MIDDLEWARE_V1_SIZE_1_2 56            /* through on_stream_event */
#define PRISM_CANDIDATE_SIZE_1_0 72                /* through error_rate; array element: frozen */
#define PRISM_ROUTER_V1_SIZE_1_0 40                /* through feedback */
#define PRISM_ROUTER_V1_SIZE_1_1 48                /* through parallel_attempts */
#define PRISM_COMPONENT_SIZE_1_0 24                /* through vtable; array element: frozen */
#define PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0 48        /* through reserved */
#define PRISM_WINDOW_CLAIM_SIZE_1_2 48             /* through cost; array element: frozen */
#define PRISM_WINDOW_USAGE_SIZE_1_2 40             /* through slot; array element: frozen */
#define PRISM_STATE_RESULT_SIZE_1_2 48             /* through window_count */
#define PRISM_SHARED_STATE_SERVICE_V1_SIZE_1_2 56  /* through set_value_capacity */
#define PRISM_METRICS_SERVICE_V1_SIZE_1_3 32       /* through histogram_observe */
#define PRISM_ERROR_SINK_SIZE_1_4 32               /* through add_header */
#define PRISM_PROVIDER_V1_SIZE_1_4 104             /* through model_patterns */
#define PRISM_MIDDLEWARE_V1_SIZE_1_4 64            /* through config_keys */
#define PRISM_ROUTER_V1_SIZE_1_4 56                /* through config_keys */
#define PRISM_ROUTE_SIZE_1_5 56                    /* through api; array element: frozen */
#define PRISM_DECODE_RESUME_SIZE_1_5 24            /* through resume */
#define PRISM_INGRESS_V1_SIZE_1_5 112              /* through config_keys */
#define PRISM_CLIENT_KEYS_SERVICE_V1_SIZE_1_6 16   /* through lookup */
#else
/* Other data models: the same fields, measured by the compiler. */
#define PRISM_HOST_API_SIZE_1_0 PRISM_SIZE_THROUGH(prism_host_api, get_service)
#define PRISM_BYTES_SINK_SIZE_1_0 PRISM_SIZE_THROUGH(prism_bytes_sink, write)
#define PRISM_KEY_VALUE_SERVICE_V1_SIZE_1_0 PRISM_SIZE_THROUGH(prism_key_value_service_v1, increment)
#define PRISM_HTTP_BUILDER_SIZE_1_0 PRISM_SIZE_THROUGH(prism_http_builder, clear_body)
#define PRISM_USAGE_SIZE_1_0 PRISM_SIZE_THROUGH(prism_usage, reasoning_tokens)
#define PRISM_STREAM_SINK_SIZE_1_0 PRISM_SIZE_THROUGH(prism_stream_sink, set_response_model)
#define PRISM_ERROR_SINK_SIZE_1_0 PRISM_SIZE_THROUGH(prism_error_sink, set)
#define PRISM_REQUEST_CONTEXT_SIZE_1_0 PRISM_SIZE_THROUGH(prism_request_context, add_response_header)
#define PRISM_REQUEST_CONTEXT_SIZE_1_2 PRISM_SIZE_THROUGH(prism_request_context, watch_response)
#define PRISM_REQUEST_SIZE_1_0 PRISM_SIZE_THROUGH(prism_request, request_id)
#define PRISM_RESPONSE_SIZE_1_0 PRISM_SIZE_THROUGH(prism_response, body)
#define PRISM_EVENT_SIZE_1_0 PRISM_SIZE_THROUGH(prism_event, id)
#define PRISM_COMPLETION_SIZE_1_0 PRISM_SIZE_THROUGH(prism_completion, first_byte_nanoseconds)
#define PRISM_PROVIDER_V1_SIZE_1_0 PRISM_SIZE_THROUGH(prism_provider_v1, translate_error)
#define PRISM_MIDDLEWARE_V1_SIZE_1_0 PRISM_SIZE_THROUGH(prism_middleware_v1, on_complete)
#define PRISM_MIDDLEWARE_V1_SIZE_1_2 PRISM_SIZE_THROUGH(prism_middleware_v1, on_stream_event)
#define PRISM_CANDIDATE_SIZE_1_0 PRISM_SIZE_THROUGH(prism_candidate, error_rate)
#define PRISM_ROUTER_V1_SIZE_1_0 PRISM_SIZE_THROUGH(prism_router_v1, feedback)
#define PRISM_ROUTER_V1_SIZE_1_1 PRISM_SIZE_THROUGH(prism_router_v1, parallel_attempts)
#define PRISM_COMPONENT_SIZE_1_0 PRISM_SIZE_THROUGH(prism_component, vtable)
#define PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0 PRISM_SIZE_THROUGH(prism_plugin_descriptor, reserved)
#define PRISM_WINDOW_CLAIM_SIZE_1_2 PRISM_SIZE_THROUGH(prism_window_claim, cost)
#define PRISM_WINDOW_USAGE_SIZE_1_2 PRISM_SIZE_THROUGH(prism_window_usage, slot)
#define PRISM_STATE_RESULT_SIZE_1_2 PRISM_SIZE_THROUGH(prism_state_result, window_count)
#define PRISM_SHARED_STATE_SERVICE_V1_SIZE_1_2 PRISM_SIZE_THROUGH(prism_shared_state_service_v1, set_value_capacity)
#define PRISM_METRICS_SERVICE_V1_SIZE_1_3 PRISM_SIZE_THROUGH(prism_metrics_service_v1, histogram_observe)
#define PRISM_ERROR_SINK_SIZE_1_4 PRISM_SIZE_THROUGH(prism_error_sink, add_header)
#define PRISM_PROVIDER_V1_SIZE_1_4 PRISM_SIZE_THROUGH(prism_provider_v1, model_patterns)
#define PRISM_MIDDLEWARE_V1_SIZE_1_4 PRISM_SIZE_THROUGH(prism_middleware_v1, config_keys)
#define PRISM_ROUTER_V1_SIZE_1_4 PRISM_SIZE_THROUGH(prism_router_v1, config_keys)
#define PRISM_ROUTE_SIZE_1_5 PRISM_SIZE_THROUGH(prism_route, api)
#define PRISM_DECODE_RESUME_SIZE_1_5 PRISM_SIZE_THROUGH(prism_decode_resume, resume)
#define PRISM_INGRESS_V1_SIZE_1_5 PRISM_SIZE_THROUGH(prism_ingress_v1, config_keys)
#define PRISM_CLIENT_KEYS_SERVICE_V1_SIZE_1_6 PRISM_SIZE_THROUGH(prism_client_keys_service_v1, lookup)
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PRISM_PLUGIN_H */
