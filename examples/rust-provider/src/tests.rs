//! Unit tests that drive the real `extern "C"` functions with a fake host: sinks that record what
//! the plugin wrote, and a host table with a log and a key-value counter. (The integration test in
//! Tests/integration/test_rust_example.py loads the built .so into the real gateway.)

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::mem::size_of;
use std::ptr;

use crate::abi::*;
use crate::ffi;

// ---- A fake host ---------------------------------------------------------------------------------

thread_local! {
    static LOGS: RefCell<Vec<(prism_log_level, String)>> = const { RefCell::new(Vec::new()) };
    static COUNTER: RefCell<i64> = const { RefCell::new(0) };
}

unsafe fn text(s: prism_string) -> String {
    String::from_utf8_lossy(ffi::string_bytes(s)).into_owned()
}

unsafe extern "C" fn host_log(level: prism_log_level, message: prism_string) {
    let line = text(message);
    LOGS.with(|logs| logs.borrow_mut().push((level, line)));
}
unsafe extern "C" fn host_log_enabled(_: prism_log_level) -> i32 {
    1
}
unsafe extern "C" fn host_clock() -> u64 {
    0
}
unsafe extern "C" fn kv_increment(key: prism_string, delta: i64, _ttl: u64, out: *mut i64) -> prism_status {
    assert_eq!(text(key), "requests");
    COUNTER.with(|c| {
        *c.borrow_mut() += delta;
        *out = *c.borrow();
    });
    PRISM_OK
}

struct SyncTable(prism_key_value_service_v1);
unsafe impl Sync for SyncTable {}
static KEY_VALUE: SyncTable = SyncTable(prism_key_value_service_v1 {
    struct_size: size_of::<prism_key_value_service_v1>() as u32,
    get: None,
    set: None,
    remove: None,
    increment: Some(kv_increment),
});

unsafe extern "C" fn host_get_service(id: *const c_char) -> *const c_void {
    if CStr::from_ptr(id).to_bytes() == b"prism.key_value.v1" {
        &KEY_VALUE.0 as *const prism_key_value_service_v1 as *const c_void
    } else {
        ptr::null() // no metrics service: the plugin must cope
    }
}

fn host_api(struct_size: u32) -> prism_host_api {
    prism_host_api {
        struct_size,
        abi_major: 1,
        abi_minor: 3,
        log: Some(host_log),
        log_enabled: Some(host_log_enabled),
        monotonic_nanoseconds: Some(host_clock),
        wall_clock_milliseconds: Some(host_clock),
        get_service: Some(host_get_service),
    }
}

fn logs() -> Vec<String> {
    LOGS.with(|logs| logs.borrow().iter().map(|(_, l)| l.clone()).collect())
}

// ---- Recording sinks -----------------------------------------------------------------------------

#[derive(Default)]
struct Recorder {
    status: u32,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    events: Vec<String>,
    usage: Option<prism_usage>,
    models: Vec<String>,
    error: Option<(u32, String, String, String)>,
    error_headers: Vec<(String, String)>,
}

unsafe fn recorder<'a>(context: *mut c_void) -> &'a mut Recorder {
    &mut *context.cast::<Recorder>()
}

unsafe extern "C" fn set_status(c: *mut c_void, status: u32) -> prism_status {
    recorder(c).status = status;
    PRISM_OK
}
unsafe extern "C" fn set_method(c: *mut c_void, method: prism_string) -> prism_status {
    recorder(c).method = text(method);
    PRISM_OK
}
unsafe extern "C" fn set_url(c: *mut c_void, url: prism_string) -> prism_status {
    recorder(c).url = text(url);
    PRISM_OK
}
unsafe extern "C" fn set_header(c: *mut c_void, name: prism_string, value: prism_string) -> prism_status {
    let value = text(value);
    if value.contains(['\r', '\n', '\0']) {
        return PRISM_ERROR_INVALID_REQUEST; // as the host does
    }
    let name = text(name);
    let headers = &mut recorder(c).headers;
    headers.retain(|(n, _)| *n != name);
    headers.push((name, value));
    PRISM_OK
}
unsafe extern "C" fn write_body(c: *mut c_void, data: prism_bytes) -> prism_status {
    recorder(c).body.extend_from_slice(ffi::bytes(data.data, data.length));
    PRISM_OK
}
unsafe extern "C" fn clear_body(c: *mut c_void) -> prism_status {
    recorder(c).body.clear();
    PRISM_OK
}
unsafe extern "C" fn emit_event(c: *mut c_void, data: prism_bytes) -> prism_status {
    let event = String::from_utf8_lossy(ffi::bytes(data.data, data.length)).into_owned();
    if event.contains(['\r', '\n']) {
        return PRISM_ERROR_INVALID_REQUEST;
    }
    recorder(c).events.push(event);
    PRISM_OK
}
unsafe extern "C" fn report_usage(c: *mut c_void, usage: *const prism_usage) {
    recorder(c).usage = Some(*usage);
}
unsafe extern "C" fn set_response_model(c: *mut c_void, model: prism_string) {
    recorder(c).models.push(text(model));
}
unsafe extern "C" fn add_error_header(c: *mut c_void, name: prism_string, value: prism_string) -> prism_status {
    recorder(c).error_headers.push((text(name), text(value)));
    PRISM_OK
}
unsafe extern "C" fn set_error(
    c: *mut c_void,
    status: u32,
    t: prism_string,
    code: prism_string,
    message: prism_string,
) {
    recorder(c).error = Some((status, text(t), text(code), text(message)));
}

fn builder(r: &mut Recorder) -> prism_http_builder {
    prism_http_builder {
        struct_size: size_of::<prism_http_builder>() as u32,
        context: (r as *mut Recorder).cast(),
        set_status: Some(set_status),
        set_method: Some(set_method),
        set_url: Some(set_url),
        set_header: Some(set_header),
        add_header: Some(set_header),
        write_body: Some(write_body),
        clear_body: Some(clear_body),
    }
}

fn stream_sink(r: &mut Recorder) -> prism_stream_sink {
    prism_stream_sink {
        struct_size: size_of::<prism_stream_sink>() as u32,
        context: (r as *mut Recorder).cast(),
        emit_event: Some(emit_event),
        report_usage: Some(report_usage),
        set_response_model: Some(set_response_model),
    }
}

fn error_sink(r: &mut Recorder) -> prism_error_sink {
    prism_error_sink {
        struct_size: size_of::<prism_error_sink>() as u32,
        context: (r as *mut Recorder).cast(),
        set: Some(set_error),
        add_header: Some(add_error_header),
    }
}

fn s(text: &str) -> prism_string {
    ffi::view(text.as_bytes())
}
fn b(text: &[u8]) -> prism_bytes {
    ffi::byte_view(text)
}

// ---- Driving the provider ------------------------------------------------------------------------

fn provider() -> &'static prism_provider_v1 {
    let host = host_api(size_of::<prism_host_api>() as u32);
    let mut descriptor: *const prism_plugin_descriptor = ptr::null();
    assert_eq!(unsafe { crate::prism_plugin_entry_v1(&host, &mut descriptor) }, PRISM_OK);
    let descriptor = unsafe { &*descriptor };
    let component = unsafe { &*descriptor.components };
    unsafe { &*component.vtable.cast::<prism_provider_v1>() }
}

struct Instance {
    pointer: *mut c_void,
    _host: Box<prism_host_api>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        unsafe { provider().instance_destroy.unwrap()(self.pointer) }
    }
}

#[allow(clippy::result_large_err)]
fn instance_with(config: &str, host_size: u32) -> Result<Instance, (prism_status, Recorder)> {
    LOGS.with(|logs| logs.borrow_mut().clear());
    COUNTER.with(|c| *c.borrow_mut() = 0);
    let host = Box::new(host_api(host_size));
    let mut errors = Recorder::default();
    let sink = error_sink(&mut errors);
    let mut pointer = ptr::null_mut();
    let status =
        unsafe { provider().instance_new.unwrap()(&*host, s("local"), b(config.as_bytes()), &mut pointer, &sink) };
    if status == PRISM_OK {
        assert!(!pointer.is_null());
        Ok(Instance { pointer, _host: host })
    } else {
        assert!(pointer.is_null());
        Err((status, errors))
    }
}

fn instance(config: &str) -> Instance {
    instance_with(config, size_of::<prism_host_api>() as u32)
        .unwrap_or_else(|(status, r)| panic!("instance_new failed with {status}: {:?}", r.error))
}

const CONFIG: &str = r#"{"api_format":"rust-example","base_url":"http://up:1/","api_key":"sk-secret",
                         "models":["m"],"name":"local","timeout_ms":60000}"#;

struct Exchange<'i> {
    pointer: *mut c_void,
    _instance: &'i Instance,
}

impl<'i> Exchange<'i> {
    fn new(instance: &'i Instance) -> Exchange<'i> {
        let mut pointer = ptr::null_mut();
        assert_eq!(unsafe { provider().exchange_new.unwrap()(instance.pointer, &mut pointer) }, PRISM_OK);
        Exchange { pointer, _instance: instance }
    }

    fn build(&self, api: &str, model: &str, body: &str, flags: u32) -> (prism_status, prism_framing, Recorder) {
        let request = prism_request {
            struct_size: size_of::<prism_request>() as u32,
            flags,
            attempt: 0,
            reserved: 0,
            api: s(api),
            method: s("POST"),
            path: s("/v1/chat/completions"),
            headers: ptr::null(),
            header_count: 0,
            body: b(body.as_bytes()),
            model: s(model),
            request_id: s("req-1"),
        };
        let mut r = Recorder::default();
        let upstream = builder(&mut r);
        let mut errors = Recorder::default();
        let error = error_sink(&mut errors);
        let mut framing = -1;
        let status =
            unsafe { provider().build_request.unwrap()(self.pointer, &request, &upstream, &mut framing, &error) };
        r.error = errors.error;
        (status, framing, r)
    }

    fn event(&self, data: &str, r: &mut Recorder) -> prism_status {
        let event = prism_event {
            struct_size: size_of::<prism_event>() as u32,
            reserved: 0,
            event: s(""),
            data: b(data.as_bytes()),
            id: s(""),
        };
        let sink = stream_sink(r);
        let mut errors = Recorder::default();
        let error = error_sink(&mut errors);
        unsafe { provider().translate_event.unwrap()(self.pointer, &event, &sink, &error) }
    }

    fn finish(&self) -> (prism_status, Option<(u32, String, String, String)>) {
        let mut r = Recorder::default();
        let sink = stream_sink(&mut r);
        let mut errors = Recorder::default();
        let error = error_sink(&mut errors);
        let status = unsafe { provider().finish_stream.unwrap()(self.pointer, &sink, &error) };
        (status, errors.error)
    }

    fn error(&self, status: u32, body: &[u8]) -> (prism_status, (u32, String, String, String)) {
        let (result, errors) = self.error_with(status, &[], body, size_of::<prism_error_sink>() as u32);
        (result, errors.error.expect("translate_error describes the failure"))
    }

    fn error_with(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        sink_size: u32,
    ) -> (prism_status, Recorder) {
        let headers: Vec<prism_header> =
            headers.iter().map(|(n, v)| prism_header { name: s(n), value: s(v) }).collect();
        let response = prism_response {
            struct_size: size_of::<prism_response>() as u32,
            status,
            headers: headers.as_ptr(),
            header_count: headers.len(),
            body: b(body),
        };
        let mut errors = Recorder::default();
        let mut error = error_sink(&mut errors);
        error.struct_size = sink_size;
        let result = unsafe { provider().translate_error.unwrap()(self.pointer, &response, &error) };
        (result, errors)
    }

    /// translate_response after a non-streaming chat build_request.
    fn answer(&self, body: &[u8]) -> (prism_status, Recorder, Recorder) {
        let response = prism_response {
            struct_size: size_of::<prism_response>() as u32,
            status: 200,
            headers: ptr::null(),
            header_count: 0,
            body: b(body),
        };
        let mut r = Recorder::default();
        let client = builder(&mut r);
        let mut errors = Recorder::default();
        let error = error_sink(&mut errors);
        let mut usage = prism_usage { struct_size: size_of::<prism_usage>() as u32, ..Default::default() };
        let status =
            unsafe { provider().translate_response.unwrap()(self.pointer, &response, &client, &mut usage, &error) };
        r.usage = Some(usage);
        (status, r, errors)
    }
}

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        unsafe { provider().exchange_destroy.unwrap()(self.pointer) }
    }
}

// ---- Tests ---------------------------------------------------------------------------------------

#[test]
fn entry_describes_one_provider_and_refuses_other_majors() {
    let mut host = host_api(size_of::<prism_host_api>() as u32);
    let mut descriptor: *const prism_plugin_descriptor = ptr::null();
    assert_eq!(unsafe { crate::prism_plugin_entry_v1(&host, &mut descriptor) }, PRISM_OK);
    let d = unsafe { &*descriptor };
    assert_eq!(d.struct_size as usize, size_of::<prism_plugin_descriptor>());
    assert_eq!((d.abi_major, d.abi_minor, d.min_host_abi_minor), (1, PRISM_ABI_MINOR, 0));
    assert_eq!(unsafe { CStr::from_ptr(d.id) }.to_str().unwrap(), "dev.prism.example.rust-provider");
    assert_eq!(unsafe { CStr::from_ptr(d.version) }.to_str().unwrap(), "1.0.0");
    assert_eq!(d.component_count, 1);
    let component = unsafe { &*d.components };
    assert_eq!(component.kind, PRISM_COMPONENT_PROVIDER);
    assert_eq!(unsafe { CStr::from_ptr(component.name) }.to_str().unwrap(), "rust-example");
    let table = unsafe { &*component.vtable.cast::<prism_provider_v1>() };
    assert_eq!(table.struct_size as usize, size_of::<prism_provider_v1>());
    assert!(table.translate_chunk.is_none() && table.translate_error.is_some());
    let mut keys = Vec::new();
    let mut key = table.config_keys;
    while !unsafe { *key }.is_null() {
        keys.push(unsafe { CStr::from_ptr(*key) }.to_str().unwrap());
        key = unsafe { key.add(1) };
    }
    assert_eq!(keys, ["base_url", "api_key"]);

    host.abi_major = 2;
    assert_eq!(unsafe { crate::prism_plugin_entry_v1(&host, &mut descriptor) }, PRISM_ERROR_ABI);
    assert_eq!(unsafe { crate::prism_plugin_entry_v1(ptr::null(), &mut descriptor) }, PRISM_ERROR_ABI);
    assert_eq!(unsafe { crate::prism_plugin_entry_v1(&host, ptr::null_mut()) }, PRISM_ERROR_ABI);
}

#[test]
fn configuration_problems_are_described() {
    for (config, code, words) in [
        (r#"{"name":"local"}"#, "missing_base_url", "base_url is required"),
        (r#"{"base_url":null}"#, "missing_base_url", "base_url is required"),
        (r#"{"base_url":42}"#, "invalid_config", "base_url must be a string"),
        (r#"{"base_url":"ftp://x"}"#, "invalid_config", "must start with http://"),
        ("[1]", "invalid_config", "not a JSON object"),
        ("", "invalid_config", "not a JSON object"),
    ] {
        let Err((status, r)) = instance_with(config, size_of::<prism_host_api>() as u32) else {
            panic!("{config} was accepted")
        };
        assert_eq!(status, PRISM_ERROR_INVALID_REQUEST);
        let (_, kind, got_code, message) = r.error.expect("described");
        assert_eq!((kind.as_str(), got_code.as_str()), ("invalid_request_error", code), "{config}");
        assert!(message.starts_with("rust-example provider local: ") && message.contains(words), "{message}");
    }
}

#[test]
fn an_instance_logs_once_and_never_its_key() {
    let _instance = instance(CONFIG);
    let logs = logs();
    assert!(logs.contains(&"rust-example provider local ready for http://up:1/v1".to_string()), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("sk-secret")));
}

#[test]
fn an_older_or_minimal_host_table_is_read_only_as_far_as_it_goes() {
    // struct_size 8: abi_major and abi_minor only, no log, no get_service.
    let instance = instance_with(CONFIG, 8).unwrap_or_else(|_| panic!("refused"));
    assert!(logs().is_empty());
    let (status, _, r) = Exchange::new(&instance).build("chat.completions", "m", r#"{"model":"m"}"#, 0);
    assert_eq!(status, PRISM_OK);
    assert_eq!(r.body, br#"{"model":"m"}"#);
}

#[test]
fn chat_is_forwarded_unchanged() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let body = r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;
    let (status, framing, r) = exchange.build("chat.completions", "m", body, 0);
    assert_eq!((status, framing), (PRISM_OK, PRISM_FRAMING_NONE));
    assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "http://up:1/v1/chat/completions"));
    assert!(r.headers.contains(&("authorization".into(), "Bearer sk-secret".into())));
    assert!(r.headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(r.body, body.as_bytes());
    // The key-value counter counts requests; debug logging shows the count.
    let (_, _, _) = Exchange::new(&instance).build("chat.completions", "m", body, 0);
    assert!(logs().iter().any(|l| l == "rust-example provider local: request number 2"), "{:?}", logs());
}

#[test]
fn the_routed_model_replaces_the_clients() {
    let instance = instance(CONFIG);
    let body = r#"{"model":"alias","stream":true,"messages":[],"model" :"again"}"#;
    let (status, framing, r) =
        Exchange::new(&instance).build("chat.completions", "real\"name", body, PRISM_REQUEST_STREAM);
    assert_eq!((status, framing), (PRISM_OK, PRISM_FRAMING_SSE));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"model":"real\"name","stream":true,"messages":[],"model" :"real\"name"}"#
    );
}

#[test]
fn models_list_and_unsupported_apis() {
    let instance = instance(r#"{"base_url":"https://up/v1","api_key":12345}"#);
    let (status, framing, r) = Exchange::new(&instance).build("models.list", "", "", 0);
    assert_eq!((status, framing), (PRISM_OK, PRISM_FRAMING_NONE));
    assert_eq!((r.method.as_str(), r.url.as_str()), ("GET", "https://up/v1/models"));
    assert!(r.headers.contains(&("authorization".into(), "Bearer 12345".into())));
    assert!(r.body.is_empty());

    let (status, _, r) = Exchange::new(&instance).build("embeddings", "m", "{}", 0);
    assert_eq!(status, PRISM_ERROR_UNSUPPORTED);
    let (_, _, code, message) = r.error.unwrap();
    assert_eq!(code, "unsupported_api");
    assert!(message.contains("\"embeddings\""), "{message}");
}

#[test]
fn a_header_the_host_refuses_fails_the_request() {
    let instance = instance(r#"{"base_url":"http://up","api_key":"bad\r\nkey"}"#);
    let (status, _, r) = Exchange::new(&instance).build("chat.completions", "m", "{}", 0);
    assert_eq!(status, PRISM_ERROR_INVALID_REQUEST);
    assert!(r.error.unwrap().3.contains("refused"));
}

#[test]
fn responses_pass_through_with_usage_even_without_headers() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    assert_eq!(exchange.build("chat.completions", "m", r#"{"model":"m"}"#, 0).0, PRISM_OK);
    let body = br#"{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":13,"completion_tokens":7}}"#;
    let response = prism_response {
        struct_size: size_of::<prism_response>() as u32,
        status: 200,
        headers: ptr::null(), // as model discovery passes it
        header_count: 0,
        body: b(body),
    };
    let mut r = Recorder::default();
    let client = builder(&mut r);
    let mut errors = Recorder::default();
    let error = error_sink(&mut errors);
    // An older host's prism_usage that ends after input_tokens: nothing beyond it is written.
    let mut usage = [0xAAu8; size_of::<prism_usage>()];
    let short = 16u32;
    usage[..4].copy_from_slice(&short.to_ne_bytes());
    let status = unsafe {
        provider().translate_response.unwrap()(exchange.pointer, &response, &client, usage.as_mut_ptr().cast(), &error)
    };
    assert_eq!(status, PRISM_OK);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers, vec![("content-type".to_string(), "application/json".to_string())]);
    assert_eq!(r.body, body);
    assert_eq!(u64::from_ne_bytes(usage[8..16].try_into().unwrap()), 13);
    assert!(usage[16..].iter().all(|&x| x == 0xAA), "wrote past the host's struct_size");
}

#[test]
fn stream_events_pass_through_and_the_end_marker_is_checked() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let mut r = Recorder::default();
    let chunk = r#"{"model":"m-2024","choices":[{"delta":{"content":"Hi"}}],"usage":null}"#;
    assert_eq!(exchange.event(chunk, &mut r), PRISM_OK);
    assert_eq!(exchange.event("{\"model\":\"other\",\n\"choices\":[]}", &mut r), PRISM_OK);
    let last = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    assert_eq!(exchange.event(last, &mut r), PRISM_OK);
    assert_eq!(exchange.event("", &mut r), PRISM_OK);
    assert_eq!(r.events, vec![chunk.to_string(), r#"{"model":"other", "choices":[]}"#.to_string(), last.to_string()]);
    assert_eq!(r.models, vec!["m-2024".to_string()], "the model is reported once");
    assert_eq!(r.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((3, 2)));

    let (status, error) = exchange.finish();
    assert_eq!(status, PRISM_ERROR_UPSTREAM, "a stream without [DONE] was cut");
    assert!(error.unwrap().3.contains("without data: [DONE]"));
    assert_eq!(exchange.event(" [DONE] ", &mut r), PRISM_OK);
    assert_eq!(r.events.len(), 3, "[DONE] is not passed on");
    assert_eq!(exchange.finish().0, PRISM_OK);
}

#[test]
fn upstream_errors_become_provider_errors() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let (status, (http, kind, code, message)) =
        exchange.error(429, br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#);
    assert_eq!(
        (status, http, kind.as_str(), code.as_str()),
        (PRISM_ERROR_UPSTREAM, 429, "provider_error", "provider_error")
    );
    assert_eq!(message, "upstream returned HTTP 429: slow down");
    let (_, (_, _, _, message)) = exchange.error(500, br#"{"error":"plain"}"#);
    assert_eq!(message, "upstream returned HTTP 500: plain");
    let (_, (http, _, _, message)) = exchange.error(302, "é".repeat(400).as_bytes());
    assert_eq!(http, 502);
    assert_eq!(message, format!("upstream returned HTTP 302: {}", "é".repeat(256)));
}

#[test]
fn retry_after_reaches_the_client_through_a_1_4_error_sink_only() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let body = br#"{"error":{"message":"slow down"}}"#;
    let headers = [("content-type", "application/json"), ("retry-after", "7")];
    let (status, r) = exchange.error_with(429, &headers, body, size_of::<prism_error_sink>() as u32);
    assert_eq!(status, PRISM_ERROR_UPSTREAM);
    assert_eq!(r.error_headers, vec![("retry-after".to_string(), "7".to_string())]);
    // A 1.3 host's error sink ends after `set`: the header is left out, the error still described.
    let (status, r) = exchange.error_with(429, &headers, body, PRISM_ERROR_SINK_SIZE_1_0 as u32);
    assert_eq!(status, PRISM_ERROR_UPSTREAM);
    assert!(r.error_headers.is_empty());
    assert_eq!(r.error.unwrap().3, "upstream returned HTTP 429: slow down");
}

#[test]
fn a_200_that_is_no_answer_fails_over_instead_of_passing_through() {
    let instance = instance(CONFIG);
    for (body, words) in [
        (&b"<html><body>login</body></html>"[..], "not an OpenAI chat completion: <html>"),
        (br#"{"error":{"message":"quota exceeded","type":"insufficient_quota"}}"#, "with an error: quota exceeded"),
        (b"", "not an OpenAI chat completion"),
        (br#"{"id":"x","object":"chat.completion"}"#, "has no \"choices\""),
    ] {
        let exchange = Exchange::new(&instance);
        assert_eq!(exchange.build("chat.completions", "m", r#"{"model":"m"}"#, 0).0, PRISM_OK);
        let (status, r, errors) = exchange.answer(body);
        assert_eq!(status, PRISM_ERROR_UPSTREAM, "{}", String::from_utf8_lossy(body));
        assert!(r.body.is_empty(), "nothing reaches the client");
        let (http, _, code, message) = errors.error.unwrap();
        assert_eq!((http, code.as_str()), (502, "provider_error"));
        assert!(message.contains(words), "{message}");
    }
    // A model list is an object with "data".
    let exchange = Exchange::new(&instance);
    assert_eq!(exchange.build("models.list", "", "", 0).0, PRISM_OK);
    assert_eq!(exchange.answer(br#"{"object":"list","data":[]}"#).0, PRISM_OK);
    assert_eq!(exchange.answer(br#"{"object":"list"}"#).0, PRISM_ERROR_UPSTREAM);
}

#[test]
fn garbage_and_error_events_end_the_stream_with_an_error() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let mut r = Recorder::default();
    assert_eq!(exchange.event("this is not the upstream's format {", &mut r), PRISM_ERROR_UPSTREAM);
    assert_eq!(exchange.event("{\"choices\":", &mut r), PRISM_ERROR_UPSTREAM);
    let overloaded = r#"{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}"#;
    assert_eq!(exchange.event(overloaded, &mut r), PRISM_ERROR_UPSTREAM);
    assert!(r.events.is_empty(), "nothing but chunks reaches the client: {:?}", r.events);
}

#[test]
fn a_body_that_is_not_json_is_refused() {
    let instance = instance(CONFIG);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"#;
    let (status, _, r) = Exchange::new(&instance).build("chat.completions", "m", body, 0);
    assert_eq!(status, PRISM_ERROR_INVALID_REQUEST);
    assert!(r.url.is_empty() && r.body.is_empty());
    assert_eq!(r.error.unwrap().2, "invalid_json");
}

#[test]
fn a_short_input_struct_is_refused_not_read_past() {
    let instance = instance(CONFIG);
    let exchange = Exchange::new(&instance);
    let request = prism_request {
        struct_size: 16, // ends before `api`
        flags: 0,
        attempt: 0,
        reserved: 0,
        api: s("chat.completions"),
        method: s(""),
        path: s(""),
        headers: ptr::null(),
        header_count: 0,
        body: b(b""),
        model: s(""),
        request_id: s(""),
    };
    let mut r = Recorder::default();
    let upstream = builder(&mut r);
    let mut errors = Recorder::default();
    let error = error_sink(&mut errors);
    let mut framing = 0;
    let status =
        unsafe { provider().build_request.unwrap()(exchange.pointer, &request, &upstream, &mut framing, &error) };
    assert_eq!(status, PRISM_ERROR_INTERNAL);
    assert!(errors.error.is_some() && r.url.is_empty());
}

#[test]
fn a_panic_becomes_an_internal_error_not_an_unwind() {
    let mut r = Recorder::default();
    let sink = error_sink(&mut r);
    let error = unsafe { ffi::ErrorSink::from_raw(&sink) };
    let status = ffi::guard(error, || panic!("boom"));
    assert_eq!(status, PRISM_ERROR_INTERNAL);
    let (_, kind, _, message) = r.error.unwrap();
    assert_eq!(kind, "internal_error");
    assert!(message.contains("panicked") && !message.contains("boom"));
}
