//! Hand-written `#[repr(C)]` mirrors of `Sources/PrismPluginABI/include/prism_plugin.h` (ABI 1.5).
//!
//! Every type keeps the header's C name and every field the header's field name, so the layout
//! test (`src/layout_test.rs`, run by `cargo test`) can compile a C program against the real
//! header and compare `sizeof`, `_Alignof` and `offsetof` of each field with this file. The test
//! also fails when the header gains a struct, a field or a constant that this file lacks, so a
//! header change the Rust side missed cannot go unnoticed.
//!
//! Function pointers are `Option<unsafe extern "C" fn ...>`: a NULL pointer is a valid value of
//! that type (`None`), while a bare Rust `fn` pointer must never be NULL. `Option<fn>` has the same
//! size and representation as a C function pointer (the null-pointer optimisation is guaranteed).
//!
//! The signatures of the function pointers are checked by hand against the header (the layout
//! test can see sizes and offsets, not parameter lists).

#![allow(non_camel_case_types, dead_code)]

use std::ffi::{c_char, c_void};

// ---- Versions and the entry symbol ----------------------------------------------------------------

pub const PRISM_ABI_MAJOR: u16 = 1;
pub const PRISM_ABI_MINOR: u16 = 6;
pub const PRISM_PLUGIN_ENTRY_SYMBOL: &str = "prism_plugin_entry_v1";

// ---- Scalars ----------------------------------------------------------------------------------------

pub type prism_status = i32;
pub const PRISM_OK: prism_status = 0;
pub const PRISM_ANSWERED_LOCALLY: prism_status = 1;
pub const PRISM_ERROR_INVALID_REQUEST: prism_status = -1;
pub const PRISM_ERROR_UNSUPPORTED: prism_status = -2;
pub const PRISM_ERROR_UPSTREAM: prism_status = -3;
pub const PRISM_ERROR_DENIED: prism_status = -4;
pub const PRISM_ERROR_LIMIT: prism_status = -5;
pub const PRISM_ERROR_INTERNAL: prism_status = -6;
pub const PRISM_ERROR_ABI: prism_status = -7;
pub const PRISM_ERROR_UNAVAILABLE: prism_status = -8;
/// 1.5: only from an ingress's decode_request: the decision comes through prism_decode_resume.
pub const PRISM_PENDING: prism_status = 3;
pub const PRISM_TRANSLATE_ONLY: prism_status = 4;

pub type prism_action = i32;
pub const PRISM_CONTINUE: prism_action = 0;
pub const PRISM_RESPOND: prism_action = 1;
pub const PRISM_PAUSE: prism_action = 2;

pub type prism_component_kind = i32;
pub const PRISM_COMPONENT_PROVIDER: prism_component_kind = 1;
pub const PRISM_COMPONENT_MIDDLEWARE: prism_component_kind = 2;
pub const PRISM_COMPONENT_ROUTER: prism_component_kind = 3;
pub const PRISM_COMPONENT_INGRESS: prism_component_kind = 4; // 1.5

pub type prism_framing = i32;
pub const PRISM_FRAMING_NONE: prism_framing = 0;
pub const PRISM_FRAMING_SSE: prism_framing = 1;
pub const PRISM_FRAMING_NDJSON: prism_framing = 2;
pub const PRISM_FRAMING_RAW: prism_framing = 3;

pub type prism_log_level = i32;
pub const PRISM_LOG_DEBUG: prism_log_level = 0;
pub const PRISM_LOG_INFO: prism_log_level = 1;
pub const PRISM_LOG_WARN: prism_log_level = 2;
pub const PRISM_LOG_ERROR: prism_log_level = 3;

pub const PRISM_REQUEST_STREAM: u32 = 0x1;
pub const PRISM_REQUEST_RETRY: u32 = 0x2;

// ---- Borrowed views ----------------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_string {
    pub data: *const c_char,
    pub length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_bytes {
    pub data: *const u8,
    pub length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_header {
    pub name: prism_string,
    pub value: prism_string,
}

// ---- Host services -----------------------------------------------------------------------------------

#[repr(C)]
pub struct prism_host_api {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub log: Option<unsafe extern "C" fn(level: prism_log_level, message: prism_string)>,
    pub log_enabled: Option<unsafe extern "C" fn(level: prism_log_level) -> i32>,
    pub monotonic_nanoseconds: Option<unsafe extern "C" fn() -> u64>,
    pub wall_clock_milliseconds: Option<unsafe extern "C" fn() -> u64>,
    pub get_service: Option<unsafe extern "C" fn(service_id: *const c_char) -> *const c_void>,
}

#[repr(C)]
pub struct prism_bytes_sink {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub write: Option<unsafe extern "C" fn(context: *mut c_void, value: prism_bytes)>,
}

pub const PRISM_KEY_VALUE_SERVICE_V1: &str = "prism.key_value.v1";
pub const PRISM_KEY_NOT_FOUND: prism_status = 2;

#[repr(C)]
pub struct prism_key_value_service_v1 {
    pub struct_size: u32,
    pub get: Option<unsafe extern "C" fn(key: prism_string, out: *const prism_bytes_sink) -> prism_status>,
    pub set: Option<unsafe extern "C" fn(key: prism_string, value: prism_bytes, ttl_milliseconds: u64) -> prism_status>,
    pub remove: Option<unsafe extern "C" fn(key: prism_string) -> prism_status>,
    pub increment: Option<
        unsafe extern "C" fn(key: prism_string, delta: i64, ttl_milliseconds: u64, out_value: *mut i64) -> prism_status,
    >,
}

pub const PRISM_SHARED_STATE_SERVICE_V1: &str = "prism.shared_state.v1";
pub const PRISM_STATE_LOCAL_FALLBACK: u32 = 0x1;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_window_claim {
    pub struct_size: u32,
    pub reserved: u32,
    pub key: prism_string,
    pub window_milliseconds: u64,
    pub limit: i64,
    pub cost: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_window_usage {
    pub struct_size: u32,
    pub granted: u32,
    pub used: i64,
    pub retry_after_milliseconds: u64,
    pub reset_milliseconds: u64,
    pub slot: u64,
}

#[repr(C)]
pub struct prism_state_result {
    pub struct_size: u32,
    pub status: prism_status,
    pub flags: u32,
    pub reserved: u32,
    pub value: prism_bytes,
    pub windows: *const prism_window_usage,
    pub window_count: usize,
}

pub type prism_state_callback = Option<unsafe extern "C" fn(user_data: *mut c_void, result: *const prism_state_result)>;

#[repr(C)]
pub struct prism_shared_state_service_v1 {
    pub struct_size: u32,
    pub get: Option<unsafe extern "C" fn(key: prism_string, done: prism_state_callback, user_data: *mut c_void)>,
    pub set: Option<
        unsafe extern "C" fn(
            key: prism_string,
            value: prism_bytes,
            ttl_milliseconds: u64,
            done: prism_state_callback,
            user_data: *mut c_void,
        ),
    >,
    pub remove: Option<unsafe extern "C" fn(key: prism_string, done: prism_state_callback, user_data: *mut c_void)>,
    pub window_take: Option<
        unsafe extern "C" fn(
            claims: *const prism_window_claim,
            claim_count: usize,
            done: prism_state_callback,
            user_data: *mut c_void,
        ),
    >,
    pub window_adjust: Option<unsafe extern "C" fn(key: prism_string, window_milliseconds: u64, slot: u64, delta: i64)>,
    pub set_value_capacity: Option<unsafe extern "C" fn(max_values: u64)>,
}

pub const PRISM_CLIENT_KEYS_SERVICE_V1: &str = "prism.client_keys.v1";

/// 1.6: the admin API's client keys, looked up by the SHA-256 of a presented key.
#[repr(C)]
pub struct prism_client_keys_service_v1 {
    pub struct_size: u32,
    pub lookup: Option<unsafe extern "C" fn(sha256: prism_bytes, out: *const prism_bytes_sink) -> prism_status>,
}

pub const PRISM_METRICS_SERVICE_V1: &str = "prism.metrics.v1";

#[repr(C)]
pub struct prism_metrics_service_v1 {
    pub struct_size: u32,
    pub counter_add: Option<
        unsafe extern "C" fn(
            name: prism_string,
            labels: *const prism_header,
            label_count: usize,
            amount: u64,
        ) -> prism_status,
    >,
    pub gauge_set: Option<
        unsafe extern "C" fn(
            name: prism_string,
            labels: *const prism_header,
            label_count: usize,
            value: f64,
        ) -> prism_status,
    >,
    pub histogram_observe: Option<
        unsafe extern "C" fn(
            name: prism_string,
            labels: *const prism_header,
            label_count: usize,
            value: f64,
        ) -> prism_status,
    >,
}

// ---- Sinks the host gives to plugins -------------------------------------------------------------

#[repr(C)]
pub struct prism_http_builder {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub set_status: Option<unsafe extern "C" fn(context: *mut c_void, status: u32) -> prism_status>,
    pub set_method: Option<unsafe extern "C" fn(context: *mut c_void, method: prism_string) -> prism_status>,
    pub set_url: Option<unsafe extern "C" fn(context: *mut c_void, absolute_url: prism_string) -> prism_status>,
    pub set_header:
        Option<unsafe extern "C" fn(context: *mut c_void, name: prism_string, value: prism_string) -> prism_status>,
    pub add_header:
        Option<unsafe extern "C" fn(context: *mut c_void, name: prism_string, value: prism_string) -> prism_status>,
    pub write_body: Option<unsafe extern "C" fn(context: *mut c_void, data: prism_bytes) -> prism_status>,
    pub clear_body: Option<unsafe extern "C" fn(context: *mut c_void) -> prism_status>,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct prism_usage {
    pub struct_size: u32,
    pub reserved: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

#[repr(C)]
pub struct prism_stream_sink {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub emit_event: Option<unsafe extern "C" fn(context: *mut c_void, data: prism_bytes) -> prism_status>,
    pub report_usage: Option<unsafe extern "C" fn(context: *mut c_void, usage: *const prism_usage)>,
    pub set_response_model: Option<unsafe extern "C" fn(context: *mut c_void, model: prism_string)>,
}

#[repr(C)]
pub struct prism_error_sink {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub set: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            http_status: u32,
            type_: prism_string,
            code: prism_string,
            message: prism_string,
        ),
    >,
    /// Added in 1.4: a header for the client's error answer (e.g. the upstream's retry-after).
    pub add_header:
        Option<unsafe extern "C" fn(context: *mut c_void, name: prism_string, value: prism_string) -> prism_status>,
}

#[repr(C)]
pub struct prism_request_context {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub set_attribute:
        Option<unsafe extern "C" fn(context: *mut c_void, name: prism_string, value: prism_string) -> prism_status>,
    pub get_attribute: Option<
        unsafe extern "C" fn(context: *mut c_void, name: prism_string, out: *const prism_bytes_sink) -> prism_status,
    >,
    pub add_response_header:
        Option<unsafe extern "C" fn(context: *mut c_void, name: prism_string, value: prism_string) -> prism_status>,
    pub resume: Option<unsafe extern "C" fn(context: *mut c_void, action: prism_action)>,
    pub watch_response: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

// ---- Inputs the host gives to plugins ---------------------------------------------------------------

#[repr(C)]
pub struct prism_request {
    pub struct_size: u32,
    pub flags: u32,
    pub attempt: u32,
    pub reserved: u32,
    pub api: prism_string,
    pub method: prism_string,
    pub path: prism_string,
    pub headers: *const prism_header,
    pub header_count: usize,
    pub body: prism_bytes,
    pub model: prism_string,
    pub request_id: prism_string,
}

#[repr(C)]
pub struct prism_response {
    pub struct_size: u32,
    pub status: u32,
    pub headers: *const prism_header,
    pub header_count: usize,
    pub body: prism_bytes,
}

#[repr(C)]
pub struct prism_event {
    pub struct_size: u32,
    pub reserved: u32,
    pub event: prism_string,
    pub data: prism_bytes,
    pub id: prism_string,
}

#[repr(C)]
pub struct prism_completion {
    pub struct_size: u32,
    pub status: u32,
    pub provider: prism_string,
    pub model: prism_string,
    pub usage: *const prism_usage,
    pub latency_nanoseconds: u64,
    pub first_byte_nanoseconds: u64,
}

// ---- Component function tables -------------------------------------------------------------------

pub type prism_instance_new_function = Option<
    unsafe extern "C" fn(
        host: *const prism_host_api,
        instance_name: prism_string,
        config_json: prism_bytes,
        out_instance: *mut *mut c_void,
        error: *const prism_error_sink,
    ) -> prism_status,
>;
pub type prism_instance_destroy_function = Option<unsafe extern "C" fn(instance: *mut c_void)>;

#[repr(C)]
pub struct prism_provider_v1 {
    pub struct_size: u32,
    pub instance_new: prism_instance_new_function,
    pub instance_destroy: prism_instance_destroy_function,
    pub exchange_new:
        Option<unsafe extern "C" fn(instance: *mut c_void, out_exchange: *mut *mut c_void) -> prism_status>,
    pub exchange_destroy: Option<unsafe extern "C" fn(exchange: *mut c_void)>,
    pub build_request: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            request: *const prism_request,
            upstream: *const prism_http_builder,
            out_framing: *mut prism_framing,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub translate_response: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            response: *const prism_response,
            client: *const prism_http_builder,
            out_usage: *mut prism_usage,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub translate_event: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            event: *const prism_event,
            client: *const prism_stream_sink,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub translate_chunk: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            chunk: prism_bytes,
            client: *const prism_stream_sink,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub finish_stream: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            client: *const prism_stream_sink,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub translate_error: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            response: *const prism_response,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    /// Added in 1.4 (optional): the configuration keys the component reads, a NULL-terminated
    /// array of NUL-terminated names, static until exit. NULL: not declared.
    pub config_keys: *const *const c_char,
    /// Added in 1.4 (optional): the model-name patterns this instance serves (`*` globs), a
    /// NULL-terminated array valid until instance_destroy. None: configured models only.
    pub model_patterns: Option<unsafe extern "C" fn(instance: *mut c_void) -> *const *const c_char>,
}

#[repr(C)]
pub struct prism_middleware_v1 {
    pub struct_size: u32,
    pub instance_new: prism_instance_new_function,
    pub instance_destroy: prism_instance_destroy_function,
    pub on_request: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            request: *const prism_request,
            context: *const prism_request_context,
            local_response: *const prism_http_builder,
        ) -> prism_action,
    >,
    pub on_complete: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            request: *const prism_request,
            context: *const prism_request_context,
            completion: *const prism_completion,
        ),
    >,
    pub on_response: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            request: *const prism_request,
            context: *const prism_request_context,
            response: *const prism_response,
        ),
    >,
    pub on_stream_event: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            request: *const prism_request,
            context: *const prism_request_context,
            event: prism_bytes,
        ),
    >,
    /// Added in 1.4 (optional), as in `prism_provider_v1`.
    pub config_keys: *const *const c_char,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_candidate {
    pub struct_size: u32,
    pub weight: u32,
    pub provider: prism_string,
    pub model: prism_string,
    pub healthy: u32,
    pub reserved: u32,
    pub in_flight: u64,
    pub latency_milliseconds: f64,
    pub error_rate: f64,
}

#[repr(C)]
pub struct prism_router_v1 {
    pub struct_size: u32,
    pub instance_new: prism_instance_new_function,
    pub instance_destroy: prism_instance_destroy_function,
    pub select: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            request: *const prism_request,
            candidates: *const prism_candidate,
            candidate_count: usize,
            out_order: *mut u32,
            inout_count: *mut usize,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub feedback: Option<unsafe extern "C" fn(instance: *mut c_void, outcome: *const prism_completion)>,
    pub parallel_attempts: Option<unsafe extern "C" fn(instance: *mut c_void) -> u32>,
    /// Added in 1.4 (optional), as in `prism_provider_v1`.
    pub config_keys: *const *const c_char,
}

// ---- Ingress (1.5): client dialects -----------------------------------------------------------

/// `prism_route.flags`: `path` is a prefix ("/v1/responses/" matches "/v1/responses/abc").
pub const PRISM_ROUTE_PREFIX: u32 = 0x1;

/// One route an ingress claims. Array element: frozen.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct prism_route {
    pub struct_size: u32,
    pub flags: u32,
    pub method: prism_string,
    pub path: prism_string,
    pub api: prism_string,
}

/// How a decode_request that returned PRISM_PENDING ends: `resume` exactly once, from any thread.
#[repr(C)]
pub struct prism_decode_resume {
    pub struct_size: u32,
    pub context: *mut c_void,
    pub resume: Option<unsafe extern "C" fn(context: *mut c_void, status: prism_status)>,
}

#[repr(C)]
pub struct prism_ingress_v1 {
    pub struct_size: u32,
    pub instance_new: prism_instance_new_function,
    pub instance_destroy: prism_instance_destroy_function,
    pub routes: Option<unsafe extern "C" fn(instance: *mut c_void, out_count: *mut usize) -> *const prism_route>,
    pub exchange_new:
        Option<unsafe extern "C" fn(instance: *mut c_void, out_exchange: *mut *mut c_void) -> prism_status>,
    pub exchange_destroy: Option<unsafe extern "C" fn(exchange: *mut c_void)>,
    pub decode_request: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            request: *const prism_request,
            canonical: *const prism_http_builder,
            resume: *const prism_decode_resume,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub encode_response: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            canonical: *const prism_response,
            client: *const prism_http_builder,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub encode_event: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            chunk: prism_bytes,
            client: *const prism_bytes_sink,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub finish_stream: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            usage: *const prism_usage,
            client: *const prism_bytes_sink,
            error: *const prism_error_sink,
        ) -> prism_status,
    >,
    pub encode_error: Option<
        unsafe extern "C" fn(
            exchange: *mut c_void,
            http_status: u32,
            type_: prism_string,
            code: prism_string,
            message: prism_string,
            in_stream: u32,
            client: *const prism_http_builder,
        ),
    >,
    /// Optional: bytes that keep a quiet stream alive. None: the host writes ": keep-alive\n\n".
    pub keep_alive: Option<unsafe extern "C" fn(exchange: *mut c_void, client: *const prism_bytes_sink)>,
    /// Optional: a pass-through answer's event (or whole body), for the dialect's usage.
    pub observe_native: Option<
        unsafe extern "C" fn(exchange: *mut c_void, event: prism_string, data: prism_bytes, inout_usage: *mut prism_usage),
    >,
    /// Optional, as in `prism_provider_v1`.
    pub config_keys: *const *const c_char,
}

// ---- The plugin descriptor ----------------------------------------------------------------------

#[repr(C)]
pub struct prism_component {
    pub struct_size: u32,
    pub kind: prism_component_kind,
    pub name: *const c_char,
    pub vtable: *const c_void,
}

#[repr(C)]
pub struct prism_plugin_descriptor {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub min_host_abi_minor: u16,
    pub flags: u16,
    pub id: *const c_char,
    pub version: *const c_char,
    pub components: *const prism_component,
    pub component_count: u32,
    pub reserved: u32,
}

// The descriptor, its components and the function tables are plugin-static and never written
// after compilation; the pointers in them point at other statics. Sharing them between threads is
// therefore sound.
unsafe impl Sync for prism_component {}
unsafe impl Sync for prism_plugin_descriptor {}
unsafe impl Sync for prism_provider_v1 {}
unsafe impl Sync for prism_middleware_v1 {}
unsafe impl Sync for prism_router_v1 {}
unsafe impl Sync for prism_ingress_v1 {}
unsafe impl Sync for prism_route {}

pub type prism_plugin_entry_function = Option<
    unsafe extern "C" fn(
        host: *const prism_host_api,
        out_descriptor: *mut *const prism_plugin_descriptor,
    ) -> prism_status,
>;

// ---- PRISM_HAS_FIELD ---------------------------------------------------------------------------

/// The size of field `$field` of `$type`, without a value of that type.
#[macro_export]
#[doc(hidden)]
macro_rules! field_size {
    ($type:ty, $field:ident) => {{
        fn size_of_target<T, F>(_: impl Fn(&T) -> &F) -> usize {
            ::std::mem::size_of::<F>()
        }
        size_of_target(|s: &$type| &s.$field)
    }};
}

/// `PRISM_HAS_FIELD(pointer, type, field)`: true when `$pointer` is non-NULL and its
/// `struct_size` reaches past the end of `$field`. Reads only `struct_size` (which every struct has
/// at offset 0), never the whole struct, so it is sound on a host struct that is shorter than the
/// Rust mirror.
#[macro_export]
macro_rules! has_field {
    ($pointer:expr, $type:ty, $field:ident) => {{
        let pointer: *const $type = $pointer;
        !pointer.is_null() && {
            // SAFETY: the caller passes a pointer from the host, valid for the current call;
            // struct_size is the first field of every ABI struct.
            let size = unsafe { ::std::ptr::addr_of!((*pointer).struct_size).read() } as usize;
            size >= ::std::mem::offset_of!($type, $field) + $crate::field_size!($type, $field)
        }
    }};
}

/// Reads `$field` of a host struct when `has_field!` allows it, else `None`.
#[macro_export]
macro_rules! read_field {
    ($pointer:expr, $type:ty, $field:ident) => {{
        let pointer: *const $type = $pointer;
        if $crate::has_field!(pointer, $type, $field) {
            // SAFETY: has_field! checked that the host's struct contains the field.
            Some(unsafe { ::std::ptr::addr_of!((*pointer).$field).read() })
        } else {
            None
        }
    }};
}

// ---- Frozen sizes ----------------------------------------------------------------------------------

// PRISM_<TYPE>_SIZE_<MAJOR>_<MINOR>: the struct_size of each struct as the minor that introduced or
// grew it declared it. The header states them as plain integers on LP64 (and computes them
// elsewhere); these are the LP64 values, which the layout test compares with the header's.
#[cfg(target_pointer_width = "64")]
mod frozen_sizes {
    pub const PRISM_HOST_API_SIZE_1_0: usize = 48;
    pub const PRISM_BYTES_SINK_SIZE_1_0: usize = 24;
    pub const PRISM_KEY_VALUE_SERVICE_V1_SIZE_1_0: usize = 40;
    pub const PRISM_HTTP_BUILDER_SIZE_1_0: usize = 72;
    pub const PRISM_USAGE_SIZE_1_0: usize = 48;
    pub const PRISM_STREAM_SINK_SIZE_1_0: usize = 40;
    pub const PRISM_ERROR_SINK_SIZE_1_0: usize = 24;
    pub const PRISM_REQUEST_CONTEXT_SIZE_1_0: usize = 40;
    pub const PRISM_REQUEST_CONTEXT_SIZE_1_2: usize = 56;
    pub const PRISM_REQUEST_SIZE_1_0: usize = 128;
    pub const PRISM_RESPONSE_SIZE_1_0: usize = 40;
    pub const PRISM_EVENT_SIZE_1_0: usize = 56;
    pub const PRISM_COMPLETION_SIZE_1_0: usize = 64;
    pub const PRISM_PROVIDER_V1_SIZE_1_0: usize = 88;
    pub const PRISM_MIDDLEWARE_V1_SIZE_1_0: usize = 40;
    pub const PRISM_MIDDLEWARE_V1_SIZE_1_2: usize = 56;
    pub const PRISM_CANDIDATE_SIZE_1_0: usize = 72;
    pub const PRISM_ROUTER_V1_SIZE_1_0: usize = 40;
    pub const PRISM_ROUTER_V1_SIZE_1_1: usize = 48;
    pub const PRISM_COMPONENT_SIZE_1_0: usize = 24;
    pub const PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0: usize = 48;
    pub const PRISM_WINDOW_CLAIM_SIZE_1_2: usize = 48;
    pub const PRISM_WINDOW_USAGE_SIZE_1_2: usize = 40;
    pub const PRISM_STATE_RESULT_SIZE_1_2: usize = 48;
    pub const PRISM_SHARED_STATE_SERVICE_V1_SIZE_1_2: usize = 56;
    pub const PRISM_METRICS_SERVICE_V1_SIZE_1_3: usize = 32;
    pub const PRISM_ERROR_SINK_SIZE_1_4: usize = 32;
    pub const PRISM_PROVIDER_V1_SIZE_1_4: usize = 104;
    pub const PRISM_MIDDLEWARE_V1_SIZE_1_4: usize = 64;
    pub const PRISM_ROUTER_V1_SIZE_1_4: usize = 56;
    pub const PRISM_ROUTE_SIZE_1_5: usize = 56;
    pub const PRISM_DECODE_RESUME_SIZE_1_5: usize = 24;
    pub const PRISM_INGRESS_V1_SIZE_1_5: usize = 112;
    pub const PRISM_CLIENT_KEYS_SERVICE_V1_SIZE_1_6: usize = 16;
}
#[cfg(target_pointer_width = "64")]
pub use frozen_sizes::*;

// A compile-time tripwire for edits to this file: each mirror is as large as the header's newest
// size for it. (The layout test compares every field with the header itself.)
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<prism_host_api>() == PRISM_HOST_API_SIZE_1_0);
    assert!(size_of::<prism_http_builder>() == PRISM_HTTP_BUILDER_SIZE_1_0);
    assert!(size_of::<prism_usage>() == PRISM_USAGE_SIZE_1_0);
    assert!(size_of::<prism_stream_sink>() == PRISM_STREAM_SINK_SIZE_1_0);
    assert!(size_of::<prism_error_sink>() == PRISM_ERROR_SINK_SIZE_1_4);
    assert!(size_of::<prism_request>() == PRISM_REQUEST_SIZE_1_0);
    assert!(size_of::<prism_response>() == PRISM_RESPONSE_SIZE_1_0);
    assert!(size_of::<prism_event>() == PRISM_EVENT_SIZE_1_0);
    assert!(size_of::<prism_provider_v1>() == PRISM_PROVIDER_V1_SIZE_1_4);
    assert!(size_of::<prism_component>() == PRISM_COMPONENT_SIZE_1_0);
    assert!(size_of::<prism_plugin_descriptor>() == PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0);
    assert!(size_of::<prism_route>() == PRISM_ROUTE_SIZE_1_5);
    assert!(size_of::<prism_decode_resume>() == PRISM_DECODE_RESUME_SIZE_1_5);
    assert!(size_of::<prism_ingress_v1>() == PRISM_INGRESS_V1_SIZE_1_5);
    assert!(size_of::<prism_client_keys_service_v1>() == PRISM_CLIENT_KEYS_SERVICE_V1_SIZE_1_6);
};
