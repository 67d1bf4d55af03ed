//! The boundary: safe wrappers around what the host hands over, and the `extern "C"` functions of
//! the provider's function table.
//!
//! Rules kept here (PLUGIN_API.md, "Buffer ownership" and "Errors"):
//!  - Inputs are borrowed. A view (`prism_string`, `prism_bytes`, a header array, an input struct)
//!    becomes a Rust slice or wrapper whose lifetime ends with the call; whatever the plugin keeps
//!    is copied into Rust-owned memory (`String`, `Vec`).
//!  - Sinks are borrowed too. `HttpBuilder<'a>`, `StreamSink<'a>` and `ErrorSink<'a>` carry the
//!    call's lifetime, so the compiler refuses code that stores one beyond the call.
//!  - Host structs are read field by field, each only when the host's `struct_size` covers it
//!    (`has_field!` / `read_field!`, the header's PRISM_HAS_FIELD), never as a whole: a host built
//!    against an older minor may hand over a struct shorter than the Rust mirror (the 1.4 error
//!    sink has `add_header`, a 1.3 host's does not).
//!  - Everything the plugin passes to a sink or host function is plugin memory that the host copies
//!    before it returns: slices of Rust values are passed as views, never handed over.
//!  - Host memory is never freed, and plugin memory is freed only by the plugin: the instance and
//!    the exchange are `Box`es that go back to `Box::from_raw` in `*_destroy`.
//!  - Nothing unwinds into the host: every `extern "C"` function runs its body inside
//!    `std::panic::catch_unwind` (`guard`), and a panic becomes `PRISM_ERROR_INTERNAL`.

use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::abi::*;
use crate::provider::{Exchange, Failure, Instance};
use crate::{has_field, read_field};

// ---- Views ---------------------------------------------------------------------------------------

/// A borrowed byte view as a slice. NULL or zero-length is the empty slice (the host may pass
/// `{NULL, 0}`, and `slice::from_raw_parts` must never see a NULL pointer).
///
/// # Safety
/// `data` must point at `length` readable bytes that stay valid for `'a`.
pub unsafe fn bytes<'a>(data: *const u8, length: usize) -> &'a [u8] {
    if data.is_null() || length == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(data, length)
    }
}

/// # Safety
/// As for [`bytes`].
pub unsafe fn string_bytes<'a>(s: prism_string) -> &'a [u8] {
    bytes(s.data.cast(), s.length)
}

/// # Safety
/// `items` must point at `count` elements valid for `'a` (or be NULL with any count: empty).
pub unsafe fn array<'a, T>(items: *const T, count: usize) -> &'a [T] {
    if items.is_null() || count == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(items, count)
    }
}

/// A view of plugin memory for the host. The host copies it before the call returns.
pub fn view(s: &[u8]) -> prism_string {
    prism_string { data: s.as_ptr().cast(), length: s.len() }
}

pub fn byte_view(s: &[u8]) -> prism_bytes {
    prism_bytes { data: s.as_ptr(), length: s.len() }
}

/// Reads field `$field` of the host struct at `$raw`; the caller has checked with `has_field!`.
macro_rules! field {
    ($raw:expr, $field:ident) => {
        // SAFETY: the caller checked with has_field! that the host's struct contains the field.
        unsafe { ::std::ptr::addr_of!((*$raw).$field).read() }
    };
}

/// Calls function `$function` of the host sink at `$sink.raw` with the sink's own context, or
/// returns `None` when the host's struct is too short to contain it (an older host) or the
/// pointer is NULL. Host structs are never read as a whole: a field is read only when the host's
/// `struct_size` covers it, so a Rust mirror that has grown past an older host's struct is sound.
macro_rules! sink_call {
    ($sink:expr, $type:ty, $function:ident $(, $argument:expr)*) => {{
        let raw: *const $type = $sink.raw;
        match (read_field!(raw, $type, context), read_field!(raw, $type, $function)) {
            // SAFETY: a host sink function, called with its own context inside the call that
            // received the sink.
            (Some(context), Some(Some(function))) => Some(unsafe { function(context $(, $argument)*) }),
            _ => None,
        }
    }};
}

// ---- Inputs --------------------------------------------------------------------------------------

/// Header array of a request or response. Names are lower-case on input from the host.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    items: &'a [prism_header],
}

impl<'a> Headers<'a> {
    /// The first value of header `name` (lower-case).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.items.iter().find_map(|h| {
            // SAFETY: the views in a host header array live as long as the array ('a).
            let (n, v) = unsafe { (string_bytes(h.name), string_bytes(h.value)) };
            (n == name).then_some(v)
        })
    }
}

/// `prism_request` for the length of one call. (The whole view; this provider reads only some of it.)
#[allow(dead_code)]
pub struct Request<'a> {
    pub api: &'a [u8],
    pub flags: u32,
    pub attempt: u32,
    pub headers: Headers<'a>,
    pub body: &'a [u8],
    pub model: &'a [u8],
    pub request_id: &'a [u8],
}

impl<'a> Request<'a> {
    /// `None` when `raw` is NULL or shorter than ABI 1.0's request (fail closed).
    ///
    /// # Safety
    /// `raw` is NULL or a host `prism_request` valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_request) -> Option<Request<'a>> {
        if !has_field!(raw, prism_request, request_id) {
            return None;
        }
        let body: prism_bytes = field!(raw, body);
        Some(Request {
            api: string_bytes(field!(raw, api)),
            flags: field!(raw, flags),
            attempt: field!(raw, attempt),
            headers: Headers { items: array(field!(raw, headers), field!(raw, header_count)) },
            body: bytes(body.data, body.length),
            model: string_bytes(field!(raw, model)),
            request_id: string_bytes(field!(raw, request_id)),
        })
    }

    pub fn streaming(&self) -> bool {
        self.flags & PRISM_REQUEST_STREAM != 0
    }
}

/// `prism_response` (an upstream answer, buffered) for the length of one call.
pub struct Response<'a> {
    pub status: u32,
    pub headers: Headers<'a>,
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// # Safety
    /// `raw` is NULL or a host `prism_response` valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_response) -> Option<Response<'a>> {
        if !has_field!(raw, prism_response, body) {
            return None;
        }
        let body: prism_bytes = field!(raw, body);
        Some(Response {
            status: field!(raw, status),
            // Model discovery passes headers = NULL, header_count = 0: `array` allows that.
            headers: Headers { items: array(field!(raw, headers), field!(raw, header_count)) },
            body: bytes(body.data, body.length),
        })
    }
}

/// One upstream stream event for the length of one call.
#[allow(dead_code)]
pub struct Event<'a> {
    pub event: &'a [u8],
    pub data: &'a [u8],
    pub id: &'a [u8],
}

impl<'a> Event<'a> {
    /// # Safety
    /// `raw` is NULL or a host `prism_event` valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_event) -> Option<Event<'a>> {
        if !has_field!(raw, prism_event, id) {
            return None;
        }
        let data: prism_bytes = field!(raw, data);
        Some(Event {
            event: string_bytes(field!(raw, event)),
            data: bytes(data.data, data.length),
            id: string_bytes(field!(raw, id)),
        })
    }
}

// ---- Sinks ---------------------------------------------------------------------------------------

/// Converts a sink's status into a `Result`. An absent sink function counts as a refusal.
fn checked(status: Option<prism_status>) -> Result<(), prism_status> {
    match status {
        Some(PRISM_OK) => Ok(()),
        Some(other) => Err(other),
        None => Err(PRISM_ERROR_INTERNAL),
    }
}

/// `prism_http_builder`: the upstream request (build_request) or the client's answer
/// (translate_response). The lifetime is the call's: the wrapper cannot be kept beyond it.
pub struct HttpBuilder<'a> {
    raw: *const prism_http_builder,
    _call: PhantomData<&'a prism_http_builder>,
}

impl<'a> HttpBuilder<'a> {
    /// # Safety
    /// `raw` is NULL or a host builder valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_http_builder) -> Option<HttpBuilder<'a>> {
        (!raw.is_null()).then_some(HttpBuilder { raw, _call: PhantomData })
    }
    pub fn set_status(&self, status: u32) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_http_builder, set_status, status))
    }
    pub fn set_method(&self, method: &str) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_http_builder, set_method, view(method.as_bytes())))
    }
    pub fn set_url(&self, url: &str) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_http_builder, set_url, view(url.as_bytes())))
    }
    pub fn set_header(&self, name: &str, value: &[u8]) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_http_builder, set_header, view(name.as_bytes()), view(value)))
    }
    pub fn write_body(&self, data: &[u8]) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_http_builder, write_body, byte_view(data)))
    }
}

/// `prism_stream_sink`: client events while a stream is translated.
pub struct StreamSink<'a> {
    raw: *const prism_stream_sink,
    _call: PhantomData<&'a prism_stream_sink>,
}

impl<'a> StreamSink<'a> {
    /// # Safety
    /// `raw` is NULL or a host stream sink valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_stream_sink) -> Option<StreamSink<'a>> {
        (!raw.is_null()).then_some(StreamSink { raw, _call: PhantomData })
    }
    pub fn emit_event(&self, data: &[u8]) -> Result<(), prism_status> {
        checked(sink_call!(self, prism_stream_sink, emit_event, byte_view(data)))
    }
    pub fn report_usage(&self, usage: &prism_usage) {
        sink_call!(self, prism_stream_sink, report_usage, usage);
    }
    /// Returns false when the host has no such function.
    pub fn set_response_model(&self, model: &[u8]) -> bool {
        sink_call!(self, prism_stream_sink, set_response_model, view(model)).is_some()
    }
}

/// `prism_error_sink`: describes a failure before an error status is returned. NULL is allowed
/// (then nothing is described).
#[derive(Clone, Copy)]
pub struct ErrorSink<'a> {
    raw: *const prism_error_sink,
    _call: PhantomData<&'a prism_error_sink>,
}

impl<'a> ErrorSink<'a> {
    /// # Safety
    /// `raw` is NULL or a host error sink valid for `'a`.
    pub unsafe fn from_raw(raw: *const prism_error_sink) -> ErrorSink<'a> {
        ErrorSink { raw, _call: PhantomData }
    }

    fn none() -> ErrorSink<'static> {
        ErrorSink { raw: ptr::null(), _call: PhantomData }
    }

    /// Describes `failure` and returns its status, for `return error.report(&failure)`. Its
    /// headers go through `add_header` (ABI 1.4); an older host's sink has none, and they are
    /// left out.
    pub fn report(&self, failure: &Failure) -> prism_status {
        sink_call!(
            self,
            prism_error_sink,
            set,
            failure.http_status,
            view(failure.error_type.as_bytes()),
            view(failure.code.as_bytes()),
            view(failure.message.as_bytes())
        );
        for (name, value) in &failure.headers {
            sink_call!(self, prism_error_sink, add_header, view(name.as_bytes()), view(value));
        }
        failure.status
    }
}

// ---- Host services -------------------------------------------------------------------------------

/// A `prism_host_api` table: valid until the process exits, every function thread-safe. Fields are
/// read one by one with `read_field!` (PRISM_HAS_FIELD), so a shorter table from an older host is
/// never read past its end.
#[derive(Clone, Copy)]
pub struct Host {
    raw: *const prism_host_api,
}

// SAFETY: the host's tables stay valid until exit and their functions may be called from any
// thread (PLUGIN_API.md, "Host services").
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl Host {
    pub fn new(raw: *const prism_host_api) -> Host {
        Host { raw }
    }

    pub fn log(&self, level: prism_log_level, message: &str) {
        if let Some(Some(log)) = read_field!(self.raw, prism_host_api, log) {
            unsafe { log(level, view(message.as_bytes())) }
        }
    }

    pub fn log_enabled(&self, level: prism_log_level) -> bool {
        match read_field!(self.raw, prism_host_api, log_enabled) {
            Some(Some(enabled)) => unsafe { enabled(level) != 0 },
            _ => false,
        }
    }

    /// A service table by id, or NULL when this host has no `get_service` or no such service.
    fn service(&self, id: &CStr) -> *const c_void {
        match read_field!(self.raw, prism_host_api, get_service) {
            Some(Some(get)) => unsafe { get(id.as_ptr()) },
            _ => ptr::null(),
        }
    }

    /// `prism.key_value.v1`, when the host offers it with `increment`.
    pub fn key_value(&self) -> Option<KeyValue> {
        let table = self.service(c"prism.key_value.v1").cast::<prism_key_value_service_v1>();
        match read_field!(table, prism_key_value_service_v1, increment) {
            Some(Some(increment)) => Some(KeyValue { increment }),
            _ => None,
        }
    }

    /// `prism.metrics.v1` (ABI 1.3), when the host offers it with `counter_add`. A 1.0 to 1.2 host
    /// returns NULL from get_service, and the plugin simply records nothing.
    pub fn metrics(&self) -> Option<Metrics> {
        let table = self.service(c"prism.metrics.v1").cast::<prism_metrics_service_v1>();
        match read_field!(table, prism_metrics_service_v1, counter_add) {
            Some(Some(counter_add)) => Some(Metrics { counter_add }),
            _ => None,
        }
    }
}

type IncrementFn = unsafe extern "C" fn(prism_string, i64, u64, *mut i64) -> prism_status;
type CounterAddFn = unsafe extern "C" fn(prism_string, *const prism_header, usize, u64) -> prism_status;

/// The key-value service's `increment` (the table is valid until exit; functions thread-safe).
#[derive(Clone, Copy)]
pub struct KeyValue {
    increment: IncrementFn,
}

impl KeyValue {
    /// Adds `delta` to the counter at `key` (namespaced to this plugin by the host).
    pub fn increment(&self, key: &str, delta: i64, ttl_milliseconds: u64) -> Option<i64> {
        let mut value = 0i64;
        let status = unsafe { (self.increment)(view(key.as_bytes()), delta, ttl_milliseconds, &mut value) };
        (status == PRISM_OK).then_some(value)
    }
}

/// The metrics service's `counter_add`.
#[derive(Clone, Copy)]
pub struct Metrics {
    counter_add: CounterAddFn,
}

impl Metrics {
    pub fn counter_add(&self, name: &str, labels: &[(&str, &str)], amount: u64) -> bool {
        let labels: Vec<prism_header> =
            labels.iter().map(|(n, v)| prism_header { name: view(n.as_bytes()), value: view(v.as_bytes()) }).collect();
        let status = unsafe { (self.counter_add)(view(name.as_bytes()), labels.as_ptr(), labels.len(), amount) };
        status == PRISM_OK
    }
}

// ---- The panic barrier ---------------------------------------------------------------------------

/// Runs `body` and turns a panic into `PRISM_ERROR_INTERNAL`, described through `error`. The
/// panic's own message goes to the gateway's stderr (the default panic hook), never to the client.
pub fn guard(error: ErrorSink<'_>, body: impl FnOnce() -> prism_status) -> prism_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(_) => error.report(&Failure::internal("rust-example: internal error (the plugin panicked)")),
    }
}

/// The barrier for functions that return nothing.
pub fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

// ---- The provider's function table ---------------------------------------------------------------

/// The exchange behind the host's `void *exchange`.
///
/// # Safety
/// `exchange` is NULL or a pointer that `exchange_new` returned and `exchange_destroy` has not
/// freed; calls for one exchange never overlap (the host's promise), so `&mut` is exclusive.
unsafe fn exchange_mut<'a>(exchange: *mut c_void) -> Option<&'a mut Exchange> {
    exchange.cast::<Exchange>().as_mut()
}

fn missing_argument() -> Failure {
    Failure::internal("rust-example: the host passed a NULL or too short argument")
}

pub unsafe extern "C" fn instance_new(
    host: *const prism_host_api,
    instance_name: prism_string,
    config_json: prism_bytes,
    out_instance: *mut *mut c_void,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        if out_instance.is_null() {
            return error.report(&missing_argument());
        }
        out_instance.write(ptr::null_mut());
        let name = string_bytes(instance_name);
        let config = bytes(config_json.data, config_json.length);
        match Instance::new(Host::new(host), name, config) {
            Ok(instance) => {
                out_instance.write(Box::into_raw(Box::new(instance)).cast());
                PRISM_OK
            }
            Err(failure) => error.report(&failure),
        }
    })
}

pub unsafe extern "C" fn instance_destroy(instance: *mut c_void) {
    guard_void(|| {
        if !instance.is_null() {
            // SAFETY: made by Box::into_raw in instance_new; the host destroys it once, after its
            // last exchange.
            drop(Box::from_raw(instance.cast::<Instance>()));
        }
    })
}

pub unsafe extern "C" fn exchange_new(instance: *mut c_void, out_exchange: *mut *mut c_void) -> prism_status {
    guard(ErrorSink::none(), || {
        if instance.is_null() || out_exchange.is_null() {
            return PRISM_ERROR_INTERNAL;
        }
        // The instance outlives all of its exchanges (the host destroys it only after the last).
        let exchange = Exchange::new(instance.cast::<Instance>().cast_const());
        out_exchange.write(Box::into_raw(Box::new(exchange)).cast());
        PRISM_OK
    })
}

pub unsafe extern "C" fn exchange_destroy(exchange: *mut c_void) {
    guard_void(|| {
        if !exchange.is_null() {
            // SAFETY: made by Box::into_raw in exchange_new; destroyed exactly once.
            drop(Box::from_raw(exchange.cast::<Exchange>()));
        }
    })
}

pub unsafe extern "C" fn build_request(
    exchange: *mut c_void,
    request: *const prism_request,
    upstream: *const prism_http_builder,
    out_framing: *mut prism_framing,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        let (Some(exchange), Some(request), Some(upstream)) =
            (exchange_mut(exchange), Request::from_raw(request), HttpBuilder::from_raw(upstream))
        else {
            return error.report(&missing_argument());
        };
        if out_framing.is_null() {
            return error.report(&missing_argument());
        }
        match exchange.build_request(&request, &upstream) {
            Ok(framing) => {
                out_framing.write(framing);
                PRISM_OK
            }
            Err(failure) => error.report(&failure),
        }
    })
}

pub unsafe extern "C" fn translate_response(
    exchange: *mut c_void,
    response: *const prism_response,
    client: *const prism_http_builder,
    out_usage: *mut prism_usage,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        let (Some(exchange), Some(response), Some(client)) =
            (exchange_mut(exchange), Response::from_raw(response), HttpBuilder::from_raw(client))
        else {
            return error.report(&missing_argument());
        };
        match exchange.translate_response(&response, &client) {
            Ok(usage) => {
                if let Some(usage) = usage {
                    store_usage(out_usage, &usage);
                }
                PRISM_OK
            }
            Err(failure) => error.report(&failure),
        }
    })
}

/// Writes `usage` into the host's `*out_usage`, only the fields its struct_size covers.
unsafe fn store_usage(out: *mut prism_usage, usage: &prism_usage) {
    macro_rules! store {
        ($field:ident) => {
            if has_field!(out.cast_const(), prism_usage, $field) {
                ptr::addr_of_mut!((*out).$field).write(usage.$field);
            }
        };
    }
    store!(input_tokens);
    store!(output_tokens);
    store!(cached_input_tokens);
    store!(cache_write_tokens);
    store!(reasoning_tokens);
}

pub unsafe extern "C" fn translate_event(
    exchange: *mut c_void,
    event: *const prism_event,
    client: *const prism_stream_sink,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        let (Some(exchange), Some(event), Some(client)) =
            (exchange_mut(exchange), Event::from_raw(event), StreamSink::from_raw(client))
        else {
            return error.report(&missing_argument());
        };
        match exchange.translate_event(&event, &client) {
            Ok(()) => PRISM_OK,
            Err(failure) => error.report(&failure),
        }
    })
}

pub unsafe extern "C" fn finish_stream(
    exchange: *mut c_void,
    client: *const prism_stream_sink,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        let (Some(exchange), Some(_client)) = (exchange_mut(exchange), StreamSink::from_raw(client)) else {
            return error.report(&missing_argument());
        };
        match exchange.finish_stream() {
            Ok(()) => PRISM_OK,
            Err(failure) => error.report(&failure),
        }
    })
}

pub unsafe extern "C" fn translate_error(
    exchange: *mut c_void,
    response: *const prism_response,
    error: *const prism_error_sink,
) -> prism_status {
    let error = ErrorSink::from_raw(error);
    guard(error, || {
        let (Some(exchange), Some(response)) = (exchange_mut(exchange), Response::from_raw(response)) else {
            return error.report(&missing_argument());
        };
        error.report(&exchange.translate_error(&response))
    })
}
