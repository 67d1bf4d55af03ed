import PrismPluginABI
import PrismWire

// Conversions between the ABI's borrowed views and Swift values, and wrappers around the sinks the
// host hands to plugins. Nothing here outlives the call that received the pointers.

extension prism_string {
    /// The string's bytes as a Swift String (a copy).
    public var swiftString: String {
        guard let data, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }

    /// A borrowed view of the bytes; valid only during the call that received them.
    public var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length)
    }
}

extension prism_bytes {
    /// A borrowed view of the bytes; valid only during the call that received them.
    public var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length)
    }

    public var array: [UInt8] { Array(buffer) }
}

/// Calls `body` with a prism_string viewing `text` (valid only inside `body`).
@inline(__always)
public func withPrismString<Result>(_ text: String, _ body: (prism_string) -> Result) -> Result {
    var text = text
    return text.withUTF8 { utf8 in
        body(prism_string(data: UnsafeRawPointer(utf8.baseAddress)?.assumingMemoryBound(to: CChar.self),
                          length: utf8.count))
    }
}

/// Calls `body` with a prism_bytes viewing `bytes` (valid only inside `body`).
@inline(__always)
public func withPrismBytes<Result>(_ bytes: [UInt8], _ body: (prism_bytes) -> Result) -> Result {
    bytes.withUnsafeBufferPointer { buffer in
        body(prism_bytes(data: buffer.baseAddress, length: buffer.count))
    }
}

/// Calls a host function that answers through a `prism_bytes_sink`; returns the bytes it wrote,
/// or nil unless it returned PRISM_OK.
func collectBytes(_ call: (UnsafePointer<prism_bytes_sink>) -> prism_status) -> [UInt8]? {
    final class Collector { var value: [UInt8] = [] }
    let collector = Collector()
    var sink = prism_bytes_sink(
        struct_size: UInt32(MemoryLayout<prism_bytes_sink>.size),
        context: Unmanaged.passUnretained(collector).toOpaque(),
        write: { context, value in
            Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue().value.append(contentsOf: value.buffer)
        })
    let status = withUnsafePointer(to: &sink) { call($0) }
    return status == PRISM_OK ? collector.value : nil
}

/// The failure a plugin reports: it becomes the status returned over the ABI and the details
/// written to the host's error sink.
public struct PluginError: Error, Sendable {
    public var status: prism_status
    public var httpStatus: UInt32
    public var type: String
    public var code: String
    public var message: String
    /// Headers for the client's error answer (e.g. the upstream's retry-after); ABI 1.4 hosts.
    public var headers: [(name: String, value: String)] = []

    public init(status: prism_status, httpStatus: UInt32 = 0, type: String, code: String, message: String) {
        self.status = status
        self.httpStatus = httpStatus
        self.type = type
        self.code = code
        self.message = message
    }

    public static func invalidRequest(_ message: String, code: String = "invalid_request") -> PluginError {
        PluginError(status: PRISM_ERROR_INVALID_REQUEST, httpStatus: 400, type: "invalid_request_error",
                    code: code, message: message)
    }

    public static func unsupported(_ message: String) -> PluginError {
        PluginError(status: PRISM_ERROR_UNSUPPORTED, httpStatus: 501, type: "invalid_request_error",
                    code: "not_supported", message: message)
    }

    public static func configuration(_ message: String) -> PluginError {
        PluginError(status: PRISM_ERROR_INVALID_REQUEST, type: "configuration_error", code: "invalid_config",
                    message: message)
    }

    public static func upstream(status: UInt32, message: String, type: String = "provider_error",
                                code: String = "provider_error") -> PluginError
    {
        PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: status, type: type, code: code, message: message)
    }

    public static func internalError(_ message: String) -> PluginError {
        PluginError(status: PRISM_ERROR_INTERNAL, httpStatus: 500, type: "internal_error", code: "internal_error",
                    message: message)
    }

    /// Writes the details to the host's sink (if any) and returns the status to hand back.
    func report(to sink: UnsafePointer<prism_error_sink>?) -> prism_status {
        if let sink, let set = sink.pointee.set {
            withPrismString(type) { type in
                withPrismString(code) { code in
                    withPrismString(message) { message in
                        set(sink.pointee.context, httpStatus, type, code, message)
                    }
                }
            }
            let headerField = MemoryLayout<prism_error_sink>.offset(of: \prism_error_sink.add_header)!
            if !headers.isEmpty, Int(sink.pointee.struct_size) >= headerField + MemoryLayout<UnsafeRawPointer>.size,
               let add = sink.pointee.add_header
            {
                for header in headers {
                    withPrismString(header.name) { name in
                        withPrismString(header.value) { value in _ = add(sink.pointee.context, name, value) }
                    }
                }
            }
        }
        return status
    }
}

/// The host's services as given to one plugin instance (log, clocks, key-value store).
public struct PluginHost: @unchecked Sendable {
    // The table lives until the process exits, and its functions are thread-safe.
    let api: UnsafePointer<prism_host_api>

    package init(_ api: UnsafePointer<prism_host_api>) { self.api = api }

    public enum LogLevel: Int32, Sendable {
        case debug = 0, info = 1, warn = 2, error = 3
    }

    public func isLogging(_ level: LogLevel) -> Bool {
        guard let enabled = api.pointee.log_enabled else { return false }
        return enabled(level.rawValue) != 0
    }

    /// Logs one line; the message is only built when the level is enabled.
    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isLogging(level), let log = api.pointee.log else { return }
        withPrismString(message()) { log(level.rawValue, $0) }
    }

    public var monotonicNanoseconds: UInt64 { api.pointee.monotonic_nanoseconds?() ?? 0 }
    public var wallClockMilliseconds: UInt64 { api.pointee.wall_clock_milliseconds?() ?? 0 }

    /// The host's shared state ("prism.shared_state.v1", across replicas when the operator
    /// configured Redis); nil if the host is older than ABI 1.2.
    public var sharedState: SharedState? {
        guard let get = api.pointee.get_service,
              let table = get(PRISM_SHARED_STATE_SERVICE_V1)
        else { return nil }
        return SharedState(table.assumingMemoryBound(to: prism_shared_state_service_v1.self))
    }

    /// The host's metrics ("prism.metrics.v1", exported at GET /-/metrics); nil before ABI 1.3.
    public var metrics: Metrics? {
        guard let get = api.pointee.get_service, let table = get(PRISM_METRICS_SERVICE_V1) else { return nil }
        return Metrics(table.assumingMemoryBound(to: prism_metrics_service_v1.self))
    }

    /// The host's key-value service, namespaced to this plugin; nil if the host has none.
    public var keyValueStore: KeyValueStore? {
        guard let get = api.pointee.get_service,
              let table = get(PRISM_KEY_VALUE_SERVICE_V1)
        else { return nil }
        return KeyValueStore(table.assumingMemoryBound(to: prism_key_value_service_v1.self))
    }

    /// The admin API's client keys ("prism.client_keys.v1", 1.6); nil when the admin API is off
    /// or the host is older.
    public var clientKeys: ClientKeys? {
        guard let get = api.pointee.get_service, let table = get(PRISM_CLIENT_KEYS_SERVICE_V1) else { return nil }
        return ClientKeys(table.assumingMemoryBound(to: prism_client_keys_service_v1.self))
    }
}

/// The client keys an operator created with the admin API, by the SHA-256 of a presented key.
public struct ClientKeys: @unchecked Sendable {
    let table: UnsafePointer<prism_client_keys_service_v1>

    init(_ table: UnsafePointer<prism_client_keys_service_v1>) { self.table = table }

    /// The key's record (a JSON object: name, owner, models, rate_limit_rpm, rate_limit_tpm,
    /// expires_at), or nil when no live key of this instance's organization has that digest.
    public func lookup(sha256 digest: [UInt8]) -> [UInt8]? {
        guard let lookup = table.pointee.lookup else { return nil }
        return collectBytes { sink in withPrismBytes(digest) { lookup($0, sink) } }
    }
}

/// Shared state with expiry, through the host ("prism.key_value.v1").
public struct KeyValueStore: @unchecked Sendable {
    let table: UnsafePointer<prism_key_value_service_v1>

    init(_ table: UnsafePointer<prism_key_value_service_v1>) { self.table = table }

    public func get(_ key: String) -> [UInt8]? {
        guard let get = table.pointee.get else { return nil }
        return collectBytes { sink in withPrismString(key) { get($0, sink) } }
    }

    @discardableResult
    public func set(_ key: String, _ value: [UInt8], ttlMilliseconds: UInt64 = 0) -> Bool {
        guard let set = table.pointee.set else { return false }
        return withPrismString(key) { key in withPrismBytes(value) { set(key, $0, ttlMilliseconds) } } == PRISM_OK
    }

    @discardableResult
    public func remove(_ key: String) -> Bool {
        guard let remove = table.pointee.remove else { return false }
        return withPrismString(key) { remove($0) } == PRISM_OK
    }

    /// Adds `delta` to a counter and returns the new value (nil on failure).
    public func increment(_ key: String, by delta: Int64 = 1, ttlMilliseconds: UInt64 = 0) -> Int64? {
        guard let increment = table.pointee.increment else { return nil }
        var result: Int64 = 0
        let status = withPrismString(key) { increment($0, delta, ttlMilliseconds, &result) }
        return status == PRISM_OK ? result : nil
    }
}

/// A borrowed view of the request the host passes to a plugin call.
public struct PluginRequest {
    let raw: UnsafePointer<prism_request>

    package init(_ raw: UnsafePointer<prism_request>) { self.raw = raw }

    public var api: String { raw.pointee.api.swiftString }
    public var model: String { raw.pointee.model.swiftString }
    public var requestID: String { raw.pointee.request_id.swiftString }
    public var method: String { raw.pointee.method.swiftString }
    public var path: String { raw.pointee.path.swiftString }
    public var isStreaming: Bool { raw.pointee.flags & PRISM_REQUEST_STREAM != 0 }
    public var attempt: UInt32 { raw.pointee.attempt }
    /// The client's body; valid only during the call.
    public var body: UnsafeRawBufferPointer { raw.pointee.body.buffer }

    /// The first value of header `name` (lower-case).
    public func header(_ name: String) -> String? {
        withHeaderValue(name) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// The first header named `name` (lower-case) as borrowed bytes, nil when absent; no copy, for
    /// checks on every request.
    public func withHeaderValue<Result>(_ name: String, _ body: (UnsafeRawBufferPointer?) -> Result) -> Result {
        guard let headers = raw.pointee.headers else { return body(nil) }
        var wanted = name
        return wanted.withUTF8 { wantedBytes in
            for index in 0..<raw.pointee.header_count {
                let header = headers[index]
                guard header.name.length == wantedBytes.count,
                      header.name.buffer.elementsEqual(UnsafeRawBufferPointer(wantedBytes))
                else { continue }
                return body(header.value.buffer)
            }
            return body(nil)
        }
    }
}

/// A borrowed view of an upstream response.
public struct PluginResponse {
    let raw: UnsafePointer<prism_response>

    package init(_ raw: UnsafePointer<prism_response>) { self.raw = raw }

    public var status: UInt32 { raw.pointee.status }
    public var body: UnsafeRawBufferPointer { raw.pointee.body.buffer }

    public func header(_ name: String) -> String? {
        guard let headers = raw.pointee.headers else { return nil }
        for index in 0..<raw.pointee.header_count where headers[index].name.swiftString == name {
            return headers[index].value.swiftString
        }
        return nil
    }
}

/// A borrowed view of one upstream stream event.
public struct PluginEvent {
    let raw: UnsafePointer<prism_event>

    init(_ raw: UnsafePointer<prism_event>) { self.raw = raw }

    public var event: String { raw.pointee.event.swiftString }
    public var data: UnsafeRawBufferPointer { raw.pointee.data.buffer }
    public var id: String { raw.pointee.id.swiftString }
}

/// The host's HTTP message builder (upstream request, or client response).
public struct HTTPBuilder {
    let raw: UnsafePointer<prism_http_builder>

    package init(_ raw: UnsafePointer<prism_http_builder>) { self.raw = raw }

    public func setStatus(_ status: UInt32) { _ = raw.pointee.set_status?(raw.pointee.context, status) }
    public func setMethod(_ method: String) {
        withPrismString(method) { _ = raw.pointee.set_method?(raw.pointee.context, $0) }
    }
    public func setURL(_ url: String) {
        withPrismString(url) { _ = raw.pointee.set_url?(raw.pointee.context, $0) }
    }
    public func setHeader(_ name: String, _ value: String) {
        withPrismString(name) { name in
            withPrismString(value) { value in _ = raw.pointee.set_header?(raw.pointee.context, name, value) }
        }
    }
    public func addHeader(_ name: String, _ value: String) {
        withPrismString(name) { name in
            withPrismString(value) { value in _ = raw.pointee.add_header?(raw.pointee.context, name, value) }
        }
    }
    public func writeBody(_ bytes: UnsafeRawBufferPointer) {
        _ = raw.pointee.write_body?(raw.pointee.context,
                                    prism_bytes(data: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                length: bytes.count))
    }
    public func writeBody(_ bytes: [UInt8]) { bytes.withUnsafeBytes { writeBody($0) } }
    public func clearBody() { _ = raw.pointee.clear_body?(raw.pointee.context) }
}

/// The host's client-stream sink.
public struct StreamSink {
    let raw: UnsafePointer<prism_stream_sink>

    package init(_ raw: UnsafePointer<prism_stream_sink>) { self.raw = raw }

    /// Emits one client event: the compact JSON of one chat.completion.chunk.
    public func emit(_ json: UnsafeRawBufferPointer) {
        _ = raw.pointee.emit_event?(raw.pointee.context,
                                    prism_bytes(data: json.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                length: json.count))
    }
    public func emit(_ json: [UInt8]) { json.withUnsafeBytes { emit($0) } }

    public func reportUsage(_ usage: Usage) {
        var raw = usage.abiValue
        withUnsafePointer(to: &raw) { self.raw.pointee.report_usage?(self.raw.pointee.context, $0) }
    }

    public func setResponseModel(_ model: String) {
        withPrismString(model) { raw.pointee.set_response_model?(raw.pointee.context, $0) }
    }
}

/// Per-request attributes and extra response headers (middleware).
public struct RequestContext {
    let raw: UnsafePointer<prism_request_context>

    init(_ raw: UnsafePointer<prism_request_context>) { self.raw = raw }

    public func setAttribute(_ name: String, _ value: String) {
        withPrismString(name) { name in
            withPrismString(value) { value in _ = raw.pointee.set_attribute?(raw.pointee.context, name, value) }
        }
    }

    public func attribute(_ name: String) -> String? {
        guard let get = raw.pointee.get_attribute else { return nil }
        return collectBytes { sink in withPrismString(name) { get(raw.pointee.context, $0, sink) } }
            .map { String(decoding: $0, as: UTF8.self) }
    }

    public func addResponseHeader(_ name: String, _ value: String) {
        withPrismString(name) { name in
            withPrismString(value) { value in _ = raw.pointee.add_response_header?(raw.pointee.context, name, value) }
        }
    }

    /// Identifies this request to this middleware in every call about it, and differs between
    /// requests in flight: the key for per-request state (the request id may come from the client).
    public var requestKey: UInt { UInt(bitPattern: raw) }

    /// Whether the host offers the 1.2 functions (resume, watch_response).
    public var supportsPause: Bool {
        Int(raw.pointee.struct_size) >= MemoryLayout<prism_request_context>.offset(of: \.watch_response)! + 8
    }

    /// Asks the host for this request's answer (Middleware.onResponse / onStreamEvent).
    public func watchResponse() {
        guard supportsPause else { return }
        raw.pointee.watch_response?(raw.pointee.context)
    }

    func resume(_ action: prism_action) {
        guard supportsPause else { return }
        raw.pointee.resume?(raw.pointee.context, action)
    }
}

/// Token counts reported to the host.
public struct Usage: Sendable, Equatable {
    public var inputTokens: UInt64 = 0
    public var outputTokens: UInt64 = 0
    public var cachedInputTokens: UInt64 = 0
    public var cacheWriteTokens: UInt64 = 0
    public var reasoningTokens: UInt64 = 0

    public init(inputTokens: UInt64 = 0, outputTokens: UInt64 = 0, cachedInputTokens: UInt64 = 0,
                cacheWriteTokens: UInt64 = 0, reasoningTokens: UInt64 = 0)
    {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.reasoningTokens = reasoningTokens
    }

    var abiValue: prism_usage {
        prism_usage(struct_size: UInt32(MemoryLayout<prism_usage>.size), reserved: 0,
                    input_tokens: inputTokens, output_tokens: outputTokens,
                    cached_input_tokens: cachedInputTokens, cache_write_tokens: cacheWriteTokens,
                    reasoning_tokens: reasoningTokens)
    }
}

/// One routing candidate, copied from the host's view.
public struct Candidate: Sendable {
    public var provider: String
    public var model: String
    public var weight: UInt32
    public var healthy: Bool
    public var inFlight: UInt64
    public var latencyMilliseconds: Double
    public var errorRate: Double
}

/// The end-of-request summary.
public struct Completion: Sendable {
    public var status: UInt32
    public var provider: String
    public var model: String
    public var usage: Usage
    public var latencyNanoseconds: UInt64
}
