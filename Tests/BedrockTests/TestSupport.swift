import PrismPluginABI
import PrismWire
import XCTest
import PluginKit
import PrismProviderBedrock

/// Host-side doubles for driving the plugin's Swift API as the host drives it over the ABI.
enum Host {
    /// What a plugin emitted through a stream sink.
    final class Stream {
        var events: [JSONValue] = []
        var usage: prism_usage?
    }

    static func withSink(_ stream: Stream, _ body: (StreamSink) throws -> Void) rethrows {
        var sink = prism_stream_sink(
            struct_size: UInt32(MemoryLayout<prism_stream_sink>.size),
            context: Unmanaged.passUnretained(stream).toOpaque(),
            emit_event: { context, data in
                let box = Unmanaged<Stream>.fromOpaque(context!).takeUnretainedValue()
                box.events.append(try! JSONValue.parse(Array(data.buffer)))
                return PRISM_OK
            },
            report_usage: { context, usage in
                Unmanaged<Stream>.fromOpaque(context!).takeUnretainedValue().usage = usage?.pointee
            },
            set_response_model: { _, _ in })
        try withUnsafePointer(to: &sink) { try body(StreamSink($0)) }
    }

    /// An HTTP message written through a builder.
    final class Message {
        var status: UInt32 = 0
        var method = ""
        var url = ""
        var headers: [(String, String)] = []
        var body: [UInt8] = []

        func header(_ name: String) -> String? { headers.last { $0.0 == name }?.1 }
        var json: JSONValue { try! JSONValue.parse(body) }
    }

    static func withBuilder<Result>(_ message: Message, _ body: (HTTPBuilder) throws -> Result) rethrows -> Result {
        func box(_ context: UnsafeMutableRawPointer?) -> Message { Unmanaged<Message>.fromOpaque(context!).takeUnretainedValue() }
        var builder = prism_http_builder(
            struct_size: UInt32(MemoryLayout<prism_http_builder>.size),
            context: Unmanaged.passUnretained(message).toOpaque(),
            set_status: { context, status in box(context).status = status; return PRISM_OK },
            set_method: { context, method in box(context).method = method.swiftString; return PRISM_OK },
            set_url: { context, url in box(context).url = url.swiftString; return PRISM_OK },
            set_header: { context, name, value in
                let message = box(context)
                message.headers.removeAll { $0.0 == name.swiftString }
                message.headers.append((name.swiftString, value.swiftString))
                return PRISM_OK
            },
            add_header: { context, name, value in
                box(context).headers.append((name.swiftString, value.swiftString))
                return PRISM_OK
            },
            write_body: { context, data in box(context).body.append(contentsOf: data.buffer); return PRISM_OK },
            clear_body: { context in box(context).body = []; return PRISM_OK })
        return try withUnsafePointer(to: &builder) { try body(HTTPBuilder($0)) }
    }

    /// Bytes copied to memory that stays put until the value goes away (the host's borrowed views).
    final class Pinned {
        let pointer: UnsafeMutableBufferPointer<UInt8>
        let length: Int

        init(text: String) {
            length = text.utf8.count
            pointer = .allocate(capacity: max(length, 1))
            _ = pointer.initialize(from: text.utf8)
        }

        deinit { pointer.deallocate() }

        var string: prism_string {
            prism_string(data: UnsafeRawPointer(pointer.baseAddress!).assumingMemoryBound(to: CChar.self), length: length)
        }
        var bytes: prism_bytes { prism_bytes(data: pointer.baseAddress, length: length) }
    }

    /// Calls `body` with a PluginRequest as the host would pass it.
    static func withRequest<Result>(api: String = "chat.completions", body json: String, model: String, attempt: UInt32 = 0,
                                    stream: Bool = false, _ body: (PluginRequest) throws -> Result) rethrows -> Result
    {
        let parts = [api, "POST", "/v1/chat/completions", model, "req-1", json].map { Pinned(text: $0) }
        return try withExtendedLifetime(parts) {
            var request = prism_request(
                struct_size: UInt32(MemoryLayout<prism_request>.size),
                flags: (stream ? PRISM_REQUEST_STREAM : 0) | (attempt > 0 ? PRISM_REQUEST_RETRY : 0),
                attempt: attempt, reserved: 0, api: parts[0].string, method: parts[1].string, path: parts[2].string,
                headers: nil, header_count: 0, body: parts[5].bytes, model: parts[3].string, request_id: parts[4].string)
            return try withUnsafePointer(to: &request) { try body(PluginRequest($0)) }
        }
    }

    /// Calls `body` with a PluginResponse (status, headers, body).
    static func withResponse<Result>(status: UInt32, headers: [(String, String)] = [], body text: String,
                                     _ body: (PluginResponse) throws -> Result) rethrows -> Result
    {
        let names = headers.map { Pinned(text: $0.0) }, values = headers.map { Pinned(text: $0.1) }
        let content = Pinned(text: text)
        return try withExtendedLifetime((names, values, content)) {
            let list = zip(names, values).map { prism_header(name: $0.string, value: $1.string) }
            return try list.withUnsafeBufferPointer { headerPointer in
                var response = prism_response(
                    struct_size: UInt32(MemoryLayout<prism_response>.size), status: status,
                    headers: headerPointer.baseAddress, header_count: list.count, body: content.bytes)
                return try withUnsafePointer(to: &response) { try body(PluginResponse($0)) }
            }
        }
    }

    /// A host that answers every service with defaults and a fixed wall clock.
    nonisolated(unsafe) static let api: UnsafeMutablePointer<prism_host_api> = {
        let api = UnsafeMutablePointer<prism_host_api>.allocate(capacity: 1)
        api.initialize(to: prism_host_api(
            struct_size: UInt32(MemoryLayout<prism_host_api>.size), abi_major: UInt16(PRISM_ABI_MAJOR),
            abi_minor: UInt16(PRISM_ABI_MINOR), log: { _, _ in }, log_enabled: { _ in 0 },
            monotonic_nanoseconds: { 0 }, wall_clock_milliseconds: { 1_787_313_600_000 }, // 2026-08-21T12:00:00Z
            get_service: { _ in nil }))
        return api
    }()

    static var pluginHost: PluginHost { PluginHost(UnsafePointer(api)) }
}

extension JSONValue {
    /// A JSON literal as a value (test convenience).
    init(_ text: String) { self = try! JSONValue.parse(text) }
}

/// Parses a request body and translates it (or returns the error).
func converse(_ json: String, defaultMaxTokens: Int? = nil) throws -> JSONValue {
    let chat = try Array(json.utf8).withUnsafeBytes { try ChatRequest.parse($0) }
    return try JSONValue.parse(try BedrockRequest.converse(chat, defaultMaxTokens: defaultMaxTokens).body)
}

func XCTAssertJSON(_ actual: JSONValue, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
    let expectedValue = JSONValue(expected)
    XCTAssert(actual == expectedValue, "\n\(actual.jsonText)\n  is not\n\(expectedValue.jsonText)", file: file, line: line)
}
