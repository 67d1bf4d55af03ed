//! The provider itself, in safe Rust: what the C example (`examples/plugins/c_example_provider.c`)
//! does, for the component `rust-example`.
//!
//!  - `Instance::new` reads `name`, `base_url` and `api_key` from the provider's config JSON,
//!    ignores every other key, and fails when `base_url` is missing.
//!  - `build_request` sends chat.completions to `POST <base>/v1/chat/completions` and models.list to
//!    `GET <base>/v1/models`; every other API is unsupported. The client's body goes out unchanged,
//!    except that the top-level `model` is set to the model routing chose when the two differ
//!    (a `provider/model` name or an alias), as the header asks of a provider that forwards bodies.
//!  - Responses and stream events pass through unchanged (the upstream already speaks OpenAI);
//!    usage and the answering model are picked out of them for the host's accounting.
//!  - What is not an answer fails instead of passing through (PLUGIN_API.md, "Streaming answers"
//!    and "Errors"): a 200 whose body is not an OpenAI object or is an error object, a stream event
//!    that is not a JSON object or carries `error`, and a stream that ends without the upstream's
//!    `data: [DONE]` (cut). The host then fails over, or ends the stream with an error event.
//!  - `translate_error` turns an upstream error into a `provider_error` with the upstream message,
//!    and passes the upstream's `retry-after` on to the client (error sink `add_header`, ABI 1.4).
//!  - It logs through the host once per instance, counts requests in the host's key-value service
//!    and, on a 1.3 host, in its own Prometheus counter (`rust_example_requests_total{api}`).
//!
//! The plugin does no network I/O: the host sends the request described here.

use crate::abi::*;
use crate::ffi::{Event, Host, HttpBuilder, KeyValue, Metrics, Request, Response, StreamSink};
use crate::json;

/// Longest upstream text copied into an error message.
const MAX_ERROR_TEXT: usize = 512;
/// Longest model name passed to `set_response_model`.
const MAX_MODEL_NAME: usize = 256;

/// A failure, described to the host through the error sink before its status is returned.
#[derive(Debug)]
pub struct Failure {
    pub status: prism_status,
    /// 0 lets the host choose from `status`.
    pub http_status: u32,
    pub error_type: &'static str,
    pub code: &'static str,
    pub message: String,
    /// Headers for the client's error answer (sent when the host's error sink has `add_header`).
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl Failure {
    pub fn new(
        status: prism_status,
        http_status: u32,
        error_type: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Failure {
        Failure { status, http_status, error_type, code, message: message.into(), headers: Vec::new() }
    }

    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(PRISM_ERROR_INTERNAL, 0, "internal_error", "internal_error", message)
    }

    /// The upstream failed (before or after the first byte): a 502 provider_error.
    fn upstream(message: impl Into<String>) -> Failure {
        Failure::new(PRISM_ERROR_UPSTREAM, 502, "provider_error", "provider_error", message)
    }

    /// A sink function refused what the plugin gave it (a header value with a line break, ...).
    fn refused(status: prism_status) -> Failure {
        let mut failure = Failure::internal("rust-example: the host refused part of the upstream request");
        if status != PRISM_OK {
            failure.status = status;
        }
        failure
    }
}

/// One configured provider instance. Read-only after `new`, so many exchanges may use it at once.
pub struct Instance {
    host: Host,
    key_value: Option<KeyValue>,
    metrics: Option<Metrics>,
    name: String,
    /// e.g. `https://api.example.com/v1`, no trailing slash.
    base: String,
    chat_url: String,
    models_url: String,
    /// `Bearer <api_key>`, or None. Never logged, never put into an error message.
    authorization: Option<Vec<u8>>,
}

impl Instance {
    pub fn new(host: Host, instance_name: &[u8], config: &[u8]) -> Result<Instance, Failure> {
        let mut name = String::from_utf8_lossy(instance_name).into_owned();
        let failure = |name: &str, code: &'static str, detail: &str| {
            let message = format!("rust-example provider {name}: {detail}");
            Failure::new(PRISM_ERROR_INVALID_REQUEST, 0, "invalid_request_error", code, message)
        };
        if !json::is_object(config) {
            return Err(failure(&name, "invalid_config", "the config is not a JSON object"));
        }
        let object = json::skip_space(config, 0);

        // "name": added by the host; fall back to the instance name it passed.
        if let Some(value) = json::find(config, object, "name") {
            if config[value.start] == b'"' {
                name = json::decode_string(config, value.start, usize::MAX)
                    .ok_or_else(|| failure(&name, "invalid_config", "\"name\" is not a valid string"))?
                    .0;
            }
        }

        let base_url = match json::find(config, object, "base_url") {
            None => None,
            Some(value) if &config[value.clone()] == b"null" => None,
            Some(value) => Some(
                json::decode_string(config, value.start, usize::MAX)
                    .ok_or_else(|| failure(&name, "invalid_config", "base_url must be a string"))?
                    .0,
            ),
        };
        let Some(base_url) = base_url else {
            return Err(failure(
                &name,
                "missing_base_url",
                "base_url is required (the upstream's OpenAI-compatible address, e.g. http://localhost:8000/v1)",
            ));
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(failure(&name, "invalid_config", "base_url must start with http:// or https://"));
        }
        let base = normalize_base_url(&base_url);

        // "api_key": optional; an empty key (e.g. from "${KEY:-}") means no authorization header.
        // A key that YAML read as a number arrives as a JSON number: take its text.
        let authorization = match json::find(config, object, "api_key") {
            Some(value) if config[value.start] == b'"' => {
                let (key, _) = json::decode_string(config, value.start, usize::MAX)
                    .ok_or_else(|| failure(&name, "invalid_config", "api_key is not a valid string"))?;
                (!key.is_empty()).then(|| format!("Bearer {key}").into_bytes())
            }
            Some(value) if config[value.start].is_ascii_digit() => {
                let mut header = b"Bearer ".to_vec();
                header.extend_from_slice(&config[value]);
                Some(header)
            }
            _ => None,
        };

        // Host services: looked up once here; their tables stay valid until exit.
        let instance = Instance {
            host,
            key_value: host.key_value(),
            metrics: host.metrics(),
            chat_url: format!("{base}/chat/completions"),
            models_url: format!("{base}/models"),
            name,
            base,
            authorization,
        };
        instance
            .host
            .log(PRISM_LOG_INFO, &format!("rust-example provider {} ready for {}", instance.name, instance.base));
        Ok(instance)
    }

    /// Counts a request in the host's key-value store (namespaced to this plugin by the host) and,
    /// when the host has the metrics service, in `rust_example_requests_total{api}`.
    fn count_request(&self, api: &'static str) {
        if let Some(metrics) = self.metrics {
            metrics.counter_add("rust_example_requests_total", &[("api", api)], 1);
        }
        let Some(key_value) = self.key_value else { return };
        let Some(count) = key_value.increment("requests", 1, 0) else { return };
        if self.host.log_enabled(PRISM_LOG_DEBUG) {
            self.host.log(PRISM_LOG_DEBUG, &format!("rust-example provider {}: request number {count}", self.name));
        }
    }
}

/// Drops trailing slashes and appends `/v1` unless the URL already ends in it.
fn normalize_base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("/v1") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1")
    }
}

/// The state of one upstream attempt.
pub struct Exchange {
    /// The instance outlives every exchange made from it: the host calls instance_destroy only
    /// after the last exchange_destroy of that instance.
    instance: *const Instance,
    /// set_response_model was already called for this stream.
    model_reported: bool,
    /// The upstream's `data: [DONE]` arrived.
    saw_done: bool,
    /// The API build_request described ("chat.completions" or "models.list").
    api: &'static str,
}

impl Exchange {
    pub fn new(instance: *const Instance) -> Exchange {
        Exchange { instance, model_reported: false, saw_done: false, api: "" }
    }

    fn instance(&self) -> &Instance {
        // SAFETY: see the field's comment; exchange_new never receives NULL (checked in ffi.rs).
        unsafe { &*self.instance }
    }

    pub fn build_request(
        &mut self,
        request: &Request<'_>,
        upstream: &HttpBuilder<'_>,
    ) -> Result<prism_framing, Failure> {
        let api: &'static str = match request.api {
            b"chat.completions" => "chat.completions",
            b"models.list" => "models.list",
            other => {
                let shown = String::from_utf8_lossy(&other[..other.len().min(64)]).into_owned();
                let message = format!("the rust-example provider does not serve the \"{shown}\" API");
                return Err(Failure::new(
                    PRISM_ERROR_UNSUPPORTED,
                    0,
                    "invalid_request_error",
                    "unsupported_api",
                    message,
                ));
            }
        };
        let chat = api == "chat.completions";
        if chat && !json::is_object(request.body) {
            // The host checks the body before any plugin sees it; this is for other callers.
            let message = "the request body is not a JSON object";
            return Err(Failure::new(
                PRISM_ERROR_INVALID_REQUEST,
                400,
                "invalid_request_error",
                "invalid_json",
                message,
            ));
        }
        self.api = api;
        let instance = self.instance();

        upstream.set_method(if chat { "POST" } else { "GET" }).map_err(Failure::refused)?;
        upstream.set_url(if chat { &instance.chat_url } else { &instance.models_url }).map_err(Failure::refused)?;
        if chat {
            upstream.set_header("content-type", b"application/json").map_err(Failure::refused)?;
        }
        if let Some(authorization) = &instance.authorization {
            upstream.set_header("authorization", authorization).map_err(Failure::refused)?;
        }
        if chat {
            write_body_with_model(upstream, request.body, request.model).map_err(Failure::refused)?;
        }

        instance.count_request(api);
        Ok(if chat && request.streaming() { PRISM_FRAMING_SSE } else { PRISM_FRAMING_NONE })
    }

    /// A 2xx answer to a non-streaming request: passed through, usage picked out. A body that is
    /// no answer fails with PRISM_ERROR_UPSTREAM, so the host fails over and caches nothing.
    pub fn translate_response(
        &mut self,
        response: &Response<'_>,
        client: &HttpBuilder<'_>,
    ) -> Result<Option<prism_usage>, Failure> {
        let body = response.body;
        let (what, member) =
            if self.api == "models.list" { ("model list", "data") } else { ("chat completion", "choices") };
        if !json::is_object(body) {
            return Err(Failure::upstream(format!(
                "the upstream answered HTTP {} with something that is not an OpenAI {what}: {}",
                response.status,
                shown(body, 120)
            )));
        }
        if let Some(text) = error_text(body) {
            return Err(Failure::upstream(format!(
                "the upstream answered HTTP {} with an error: {text}",
                response.status
            )));
        }
        if json::find(body, json::skip_space(body, 0), member).is_none() {
            return Err(Failure::upstream(format!("the upstream's {what} has no \"{member}\"")));
        }
        let content_type = response.headers.get(b"content-type").unwrap_or(b"application/json");
        client.set_status(200).map_err(Failure::refused)?;
        client.set_header("content-type", content_type).map_err(Failure::refused)?;
        if !response.body.is_empty() {
            client.write_body(response.body).map_err(Failure::refused)?;
        }
        Ok(read_usage(response.body))
    }

    pub fn translate_event(&mut self, event: &Event<'_>, client: &StreamSink<'_>) -> Result<(), Failure> {
        let data = json::trim(event.data);
        // Nothing to say, or the upstream's end marker: the host writes its own [DONE].
        if data.is_empty() {
            return Ok(());
        }
        if data == b"[DONE]" {
            self.saw_done = true;
            return Ok(());
        }

        // Anything but a JSON object is not OpenAI's format: never pass it on as a chunk.
        if !json::is_object(data) {
            return Err(Failure::upstream(format!(
                "the upstream sent a stream event that is not a JSON object: {}",
                shown(data, 120)
            )));
        }
        // OpenAI reports a failure after the first byte as an event {"error": {...}}.
        if let Some(text) = error_text(data) {
            return Err(Failure::upstream(format!("the upstream reported an error mid-stream: {text}")));
        }
        // Usage (the final chunk when stream_options.include_usage is on) and the answering model.
        if let Some(usage) = read_usage(data) {
            client.report_usage(&usage);
        }
        if !self.model_reported {
            if let Some(model) = json::find(data, 0, "model") {
                if let Some((name, _)) = json::decode_string(data, model.start, MAX_MODEL_NAME) {
                    self.model_reported = client.set_response_model(name.as_bytes());
                }
            }
        }

        // A client event carries no line breaks. Valid JSON has them only as white space between
        // tokens (a multi-line `data:` field is joined with "\n"), so they become spaces.
        if !event.data.iter().any(|&c| c == b'\n' || c == b'\r') {
            return client.emit_event(event.data).map_err(Failure::refused);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(data.len()).map_err(|_| Failure::internal("rust-example: out of memory"))?;
        copy.extend(data.iter().map(|&c| if c == b'\n' || c == b'\r' { b' ' } else { c }));
        client.emit_event(&copy).map_err(Failure::refused)
    }

    pub fn finish_stream(&mut self) -> Result<(), Failure> {
        if self.saw_done {
            return Ok(());
        }
        Err(Failure::upstream("the upstream stream ended without data: [DONE]"))
    }

    /// A non-2xx upstream answer, as a provider_error carrying the upstream's message.
    pub fn translate_error(&self, response: &Response<'_>) -> Failure {
        let text = error_text(response.body).unwrap_or_else(|| shown(response.body, MAX_ERROR_TEXT));
        let status = response.status;
        let http_status = if (400..=599).contains(&status) { status } else { 502 };
        let message = format!("upstream returned HTTP {status}: {text}");
        let mut failure = Failure::new(PRISM_ERROR_UPSTREAM, http_status, "provider_error", "provider_error", message);
        // The upstream's wait hint (a 429 or 503) reaches the client.
        if let Some(retry_after) = response.headers.get(b"retry-after") {
            failure.headers.push(("retry-after", retry_after.to_vec()));
        }
        failure
    }
}

/// The message of an OpenAI error object, `{"error":{"message":"..."}}`, or of the shape some
/// servers send, `{"error":"..."}`; `None` when `document` is not an object with an `error`.
fn error_text(document: &[u8]) -> Option<String> {
    let object = json::skip_space(document, 0);
    if document.get(object) != Some(&b'{') {
        return None;
    }
    let mut value = json::find(document, object, "error")?;
    match document[value.start] {
        b'{' => {
            value = json::find(document, value.start, "message").unwrap_or(value);
        }
        b'n' => return None, // "error": null
        _ => {}
    }
    if document[value.start] == b'"' {
        json::decode_string(document, value.start, MAX_ERROR_TEXT).map(|(text, _)| text)
    } else {
        Some(shown(&document[value], MAX_ERROR_TEXT))
    }
}

/// At most `limit` bytes of `bytes` as text, cut at a UTF-8 boundary.
fn shown(bytes: &[u8], limit: usize) -> String {
    let mut cut = bytes.len().min(limit);
    while cut > 0 && cut < bytes.len() && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    String::from_utf8_lossy(&bytes[..cut]).into_owned()
}

/// Writes the client's body with every top-level `model` member set to `model`. When the body
/// already names that model (the usual case) it goes out byte for byte, in one piece; otherwise in
/// pieces around the replaced values, so the body is never copied.
fn write_body_with_model(upstream: &HttpBuilder<'_>, body: &[u8], model: &[u8]) -> Result<(), prism_status> {
    let stale: Vec<std::ops::Range<usize>> = if model.is_empty() {
        Vec::new()
    } else {
        json::members(body, 0)
            .filter(|m| m.name == b"model")
            .filter(|m| match json::decode_string(body, m.value.start, model.len() + 1) {
                Some((current, false)) => current.as_bytes() != model,
                _ => true,
            })
            .map(|m| m.value)
            .collect()
    };
    if stale.is_empty() {
        return upstream.write_body(body);
    }
    let quoted = json::quote(model);
    let mut at = 0;
    for value in stale {
        upstream.write_body(&body[at..value.start])?;
        upstream.write_body(&quoted)?;
        at = value.end;
    }
    upstream.write_body(&body[at..])
}

/// The OpenAI `usage` object of a response or chunk, when there is one.
fn read_usage(document: &[u8]) -> Option<prism_usage> {
    let object = json::skip_space(document, 0);
    if document.get(object) != Some(&b'{') {
        return None;
    }
    let usage = json::find(document, object, "usage")?;
    if document[usage.start] != b'{' {
        return None; // "usage": null on the chunks before the last
    }
    let count =
        |within: usize, name: &str| json::find(document, within, name).map_or(0, |v| json::read_count(document, v));
    let details = |name: &str| json::find(document, usage.start, name).filter(|v| document[v.start] == b'{');
    Some(prism_usage {
        struct_size: std::mem::size_of::<prism_usage>() as u32,
        reserved: 0,
        input_tokens: count(usage.start, "prompt_tokens"),
        output_tokens: count(usage.start, "completion_tokens"),
        cached_input_tokens: details("prompt_tokens_details").map_or(0, |d| count(d.start, "cached_tokens")),
        cache_write_tokens: 0,
        reasoning_tokens: details("completion_tokens_details").map_or(0, |d| count(d.start, "reasoning_tokens")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(normalize_base_url("http://h:1"), "http://h:1/v1");
        assert_eq!(normalize_base_url("http://h:1/"), "http://h:1/v1");
        assert_eq!(normalize_base_url("http://h:1/v1//"), "http://h:1/v1");
        assert_eq!(normalize_base_url("https://h/openai"), "https://h/openai/v1");
    }

    #[test]
    fn usage_is_read_from_openai_shapes() {
        let body = br#"{"id":"x","usage":{"prompt_tokens":13,"completion_tokens":7,
            "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let usage = read_usage(body).unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (13, 7));
        assert_eq!((usage.cached_input_tokens, usage.reasoning_tokens), (4, 2));
        assert!(read_usage(br#"{"usage":null}"#).is_none());
        assert!(read_usage(b"[DONE]").is_none());
    }
}
