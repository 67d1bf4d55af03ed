#if canImport(Glibc)
import Glibc
#endif
import PrismPluginABI
import PrismSupport
import PrismWire
import Synchronization

// The host side of the sinks plugins write into. Each is a Swift object behind the sink's
// `context`; the C functions are non-capturing thunks that copy what they are given.

/// Collects what a plugin reports through prism_error_sink.
package final class ErrorCapture {
    package var httpStatus: UInt32 = 0
    package var type = ""
    package var code = ""
    package var message = ""
    package var isSet = false
    /// Headers for the client's error answer (1.4 `add_header`, e.g. the upstream's Retry-After).
    package var headers: [(String, String)] = []

    package init() {}

    package func withSink<Result>(_ body: (UnsafePointer<prism_error_sink>) -> Result) -> Result {
        var sink = makeSink()
        return withUnsafePointer(to: &sink) { body($0) }
    }

    /// A sink that stays valid for this object's lifetime (for a decode that resumes later).
    private(set) lazy var persistentSink: UnsafePointer<prism_error_sink> = {
        let table = UnsafeMutablePointer<prism_error_sink>.allocate(capacity: 1)
        table.initialize(to: makeSink())
        persistentTable = table
        return UnsafePointer(table)
    }()

    private var persistentTable: UnsafeMutablePointer<prism_error_sink>?

    deinit { persistentTable?.deallocate() }

    private func makeSink() -> prism_error_sink {
        prism_error_sink(
            struct_size: UInt32(MemoryLayout<prism_error_sink>.size),
            context: Unmanaged.passUnretained(self).toOpaque(),
            set: { context, status, type, code, message in
                let capture = Unmanaged<ErrorCapture>.fromOpaque(context!).takeUnretainedValue()
                capture.httpStatus = status
                capture.type = type.hostString
                capture.code = code.hostString
                capture.message = message.hostString
                capture.isSet = true
            },
            add_header: { context, name, value in
                guard let lowered = validatedHeaderName(name, value: value) else { return PRISM_ERROR_INVALID_REQUEST }
                Unmanaged<ErrorCapture>.fromOpaque(context!).takeUnretainedValue().headers.append((lowered, value.hostString))
                return PRISM_OK
            })
    }
}

/// An HTTP message a plugin builds: the upstream request, or a response for the client.
package final class MessageBuilder {
    package var status: UInt32 = 0
    package var method = "POST"
    package var url = ""
    // Unchecked exclusivity, like StreamCollector's buffer: each access is one short sink call
    // from the plugin, and no sink call reaches them again. A paused middleware or a pending
    // decode writes them on its own thread before it resumes; the host reads them only after the
    // resume has handed control back to the request's loop.
    @exclusivity(unchecked) package var headers: [(name: String, value: String)] = []
    @exclusivity(unchecked) package var body: [UInt8] = []
    /// What the first body write reserves: an upstream request's body is about the size of the
    /// client's, and a plugin writes it in pieces (a megabyte must not be regrown and copied).
    private var expectedBodySize = 0

    package init(expectedBodySize: Int = 0) { self.expectedBodySize = expectedBodySize }

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// Room for a request's or an answer's usual headers at the first one, not grown 1, 2, 4, 8.
    private func append(header name: String, _ value: String) {
        if headers.capacity == 0 { headers.reserveCapacity(8) }
        headers.append((name, value))
    }

    /// A builder table that stays valid for this object's lifetime (for a paused middleware).
    package private(set) lazy var persistentBuilder: UnsafePointer<prism_http_builder> = {
        let table = UnsafeMutablePointer<prism_http_builder>.allocate(capacity: 1)
        table.initialize(to: makeBuilder())
        persistentTable = table
        return UnsafePointer(table)
    }()

    private var persistentTable: UnsafeMutablePointer<prism_http_builder>?

    deinit { persistentTable?.deallocate() }

    package func withBuilder<Result>(_ body: (UnsafePointer<prism_http_builder>) -> Result) -> Result {
        var builder = makeBuilder()
        return withUnsafePointer(to: &builder) { body($0) }
    }

    private func makeBuilder() -> prism_http_builder {
        prism_http_builder(
            struct_size: UInt32(MemoryLayout<prism_http_builder>.size),
            context: Unmanaged.passUnretained(self).toOpaque(),
            set_status: { context, status in
                MessageBuilder.from(context).status = status
                return PRISM_OK
            },
            set_method: { context, method in
                MessageBuilder.from(context).method = method.hostString
                return PRISM_OK
            },
            set_url: { context, url in
                MessageBuilder.from(context).url = url.hostString
                return PRISM_OK
            },
            set_header: { context, name, value in
                guard let lowered = validatedHeaderName(name, value: value) else { return PRISM_ERROR_INVALID_REQUEST }
                let message = MessageBuilder.from(context)
                if message.headers.contains(where: { $0.name == lowered }) { message.headers.removeAll { $0.name == lowered } }
                message.append(header: lowered, value.hostString)
                return PRISM_OK
            },
            add_header: { context, name, value in
                guard let lowered = validatedHeaderName(name, value: value) else { return PRISM_ERROR_INVALID_REQUEST }
                MessageBuilder.from(context).append(header: lowered, value.hostString)
                return PRISM_OK
            },
            write_body: { context, data in
                let message = MessageBuilder.from(context)
                if message.body.isEmpty, message.expectedBodySize > 0 {
                    message.body.reserveCapacity(max(message.expectedBodySize, data.length))
                    message.expectedBodySize = 0
                }
                message.body.append(contentsOf: data.hostBuffer)
                return PRISM_OK
            },
            clear_body: { context in
                MessageBuilder.from(context).body.removeAll()
                return PRISM_OK
            })
    }

    @inline(__always)
    static func from(_ context: UnsafeMutableRawPointer?) -> MessageBuilder {
        Unmanaged<MessageBuilder>.fromOpaque(context!).takeUnretainedValue()
    }
}

/// Header names and values a plugin sets must not smuggle line breaks into the HTTP message.
/// The name is checked as the plugin gave it (lower-casing an ASCII letter changes nothing here).
private func isValidHeader(_ name: prism_string, _ value: prism_string) -> Bool {
    let nameBytes = name.hostBuffer
    guard !nameBytes.isEmpty else { return false }
    for byte in nameBytes where byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: ":") { return false }
    // memchr, not a byte loop through a closure: three headers an upstream request, about 300
    // instructions each that way.
    let bytes = value.hostBuffer
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return true }
    return memchr(base, 0x0A, bytes.count) == nil && memchr(base, 0x0D, bytes.count) == nil
        && memchr(base, 0, bytes.count) == nil
}

extension prism_string {
    var hostBuffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length) }
}

/// Receives client events while a provider translates a stream: frames each as SSE into
/// `pending`, which the caller writes to the client after the plugin call returns.
package final class StreamCollector {
    // Unchecked exclusivity (no runtime access tracking, about 140 instructions an access, once
    // an event): touched only by this class's own short methods and by the request that owns it,
    // on its loop's thread, and no access spans a call that could reach it again (the encoder
    // writes into the `inout` it is given and never sees the collector).
    @exclusivity(unchecked) package var pending: [UInt8] = []
    package var usage = prism_usage()
    package var responseModel: String?
    /// Set when a middleware watches the response: the raw event payloads since the last flush.
    package var recordsEvents = false
    /// Set when the answer has a price: the usage chunk (`"choices":[]` with `usage`) gets its
    /// cost added to `usage` as it passes, since a stream's cost is known only at its end.
    package var pricesUsageChunk: ((UnsafeRawBufferPointer) -> [UInt8]?)?
    package var recorded: [[UInt8]] = []
    /// The client's dialect, when an ingress serves the request: it writes each chunk's bytes
    /// (framing included) instead of the OpenAI `data:` frame.
    package var encoder: ((UnsafeRawBufferPointer, inout [UInt8]) -> prism_status)?
    /// The first failure of `encoder` (the host ends the stream with an error).
    package var encoderStatus = PRISM_OK

    package init() {}

    /// One chunk for the client, in its dialect.
    func write(_ payload: UnsafeRawBufferPointer) {
        guard let encoder else { return ServerSentEventWriter.frame(payload, into: &pending) }
        let status = encoder(payload, &pending)
        if status != PRISM_OK, encoderStatus == PRISM_OK { encoderStatus = status }
    }

    func withSink<Result>(_ body: (UnsafePointer<prism_stream_sink>) -> Result) -> Result {
        var sink = prism_stream_sink(
            struct_size: UInt32(MemoryLayout<prism_stream_sink>.size),
            context: Unmanaged.passUnretained(self).toOpaque(),
            emit_event: { context, data in
                let collector = Unmanaged<StreamCollector>.fromOpaque(context!).takeUnretainedValue()
                let payload = data.hostBuffer
                // A payload with a line break would end the SSE event early: refuse it.
                if nextLineBreak(payload, from: 0) < payload.count { return PRISM_ERROR_INVALID_REQUEST }
                if let price = collector.pricesUsageChunk, let priced = price(payload) {
                    priced.withUnsafeBytes { collector.write($0) }
                    if collector.recordsEvents { collector.recorded.append(priced) }
                    return PRISM_OK
                }
                collector.write(payload)
                if collector.recordsEvents { collector.recorded.append(Array(payload)) }
                return PRISM_OK
            },
            report_usage: { context, usage in
                guard let usage else { return }
                let collector = Unmanaged<StreamCollector>.fromOpaque(context!).takeUnretainedValue()
                collector.usage = usage.pointee
            },
            set_response_model: { context, model in
                Unmanaged<StreamCollector>.fromOpaque(context!).takeUnretainedValue().responseModel = model.hostString
            })
        return withUnsafePointer(to: &sink) { body($0) }
    }
}

/// Per-request attributes (key name, owner, ...) and headers middleware add to the response.
/// Locked: a paused middleware may write them from a service callback on another thread.
package final class RequestAttributes: Sendable {
    private struct Storage {
        var values: [String: String] = [:]
        var responseHeaders: [(String, String)] = []
    }

    private let storage = Mutex(Storage())

    package init() {}

    package subscript(name: String) -> String? {
        get { storage.withLock { $0.values[name] } }
        set { storage.withLock { $0.values[name] = newValue } }
    }

    package var responseHeaders: [(String, String)] { storage.withLock { $0.responseHeaders } }

    package func addResponseHeader(_ name: String, _ value: String) {
        storage.withLock { $0.responseHeaders.append((name, value)) }
    }
}

/// The checks a header name and value from a plugin must pass (no line breaks smuggled in).
package func validatedHeaderName(_ name: prism_string, value: prism_string) -> String? {
    isValidHeader(name, value) ? asciiLowercased(name.hostBuffer) : nil
}

/// A `prism_request` and everything it points at, in memory that stays put while plugins read it:
/// one block holds the struct, the header array, every string and room for the model (a request
/// sets its model up to three times: the client's, then each attempt's upstream model).
package final class RequestView {
    private let block: UnsafeMutableRawPointer
    /// The model's bytes: the block's slot while it fits there, else a larger allocation.
    private var modelSlot: UnsafeMutableRawPointer
    private var modelCapacity: Int
    private var modelAllocated = false
    /// The body plugins read: the request's own bytes, not a copy.
    private let body: PinnedBytes
    package let pointer: UnsafeMutablePointer<prism_request>

    /// Room past the first model, so that a longer upstream model name usually fits too.
    private static let modelSlack = 48

    package convenience init(api: String, method: String, path: String, headers: [(String, String)], body: [UInt8],
                     model: String, requestID: String)
    {
        self.init(api: api, method: method, path: path, headers: headers, body: PinnedBytes(body), model: model,
                  requestID: requestID)
    }

    package init(api: String, method: String, path: String, headers: [(String, String)], body: PinnedBytes,
         model: String, requestID: String)
    {
        self.body = body
        let texts = headers.reduce(api.utf8.count + method.utf8.count + path.utf8.count + requestID.utf8.count) {
            $0 + $1.0.utf8.count + $1.1.utf8.count
        }
        let headersOffset = MemoryLayout<prism_request>.stride
        let textOffset = headersOffset + MemoryLayout<prism_header>.stride * headers.count
        modelCapacity = model.utf8.count + RequestView.modelSlack
        let block = UnsafeMutableRawPointer.allocate(byteCount: textOffset + texts + modelCapacity,
                                                     alignment: max(MemoryLayout<prism_request>.alignment,
                                                                    MemoryLayout<prism_header>.alignment))
        self.block = block
        modelSlot = block + textOffset + texts
        // Every string copied in, header names lower-cased as they are (no temporary strings:
        // this runs for every request).
        var cursor = block + textOffset
        func place(_ text: String, lowercased: Bool = false) -> prism_string {
            let start = cursor
            var text = text
            let count = text.withUTF8 { utf8 in
                guard let base = utf8.baseAddress else { return 0 }
                if lowercased {
                    copyASCIILowercased(UnsafeRawBufferPointer(utf8), to: start)
                } else {
                    start.copyMemory(from: base, byteCount: utf8.count)
                }
                return utf8.count
            }
            cursor += count
            return prism_string(data: start.assumingMemoryBound(to: CChar.self), length: count)
        }
        let apiView = place(api), methodView = place(method), pathView = place(path), idView = place(requestID)
        let headerArray = (block + headersOffset).bindMemory(to: prism_header.self, capacity: headers.count)
        for (index, header) in headers.enumerated() {
            let name = place(header.0, lowercased: true)
            let value = place(header.1)
            (headerArray + index).initialize(to: prism_header(name: name, value: value))
        }
        let pointer = block.bindMemory(to: prism_request.self, capacity: 1)
        self.pointer = pointer
        pointer.initialize(to: prism_request(
            struct_size: UInt32(MemoryLayout<prism_request>.size), flags: 0, attempt: 0, reserved: 0,
            api: apiView, method: methodView, path: pathView, headers: UnsafePointer(headerArray),
            header_count: headers.count,
            body: prism_bytes(data: (body.bytes.baseAddress ?? UnsafeRawPointer(block)).assumingMemoryBound(to: UInt8.self),
                              length: body.count),
            model: prism_string(data: nil, length: 0), request_id: idView))
        setModel(model)
    }

    /// The model plugins see: the client's for middleware and routers, the upstream's for providers.
    package func setModel(_ model: String) {
        let count = model.utf8.count
        if count > modelCapacity {
            if modelAllocated { modelSlot.deallocate() }
            modelSlot = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 1)
            modelCapacity = count
            modelAllocated = true
        }
        let slot = modelSlot
        var model = model
        model.withUTF8 { utf8 in
            if let base = utf8.baseAddress { slot.copyMemory(from: base, byteCount: count) }
        }
        pointer.pointee.model = prism_string(data: slot.assumingMemoryBound(to: CChar.self), length: count)
    }

    deinit { // prism_request and prism_header are plain C structs: nothing to deinitialize
        if modelAllocated { modelSlot.deallocate() }
        block.deallocate()
    }
}

extension HeaderBlock {
    /// The fields as the ABI's header views, pointing into the block's bytes (no copy, no
    /// `String`), valid while `body` runs: every header a plugin call is given comes this way.
    package func withViews<Result>(_ body: (UnsafePointer<prism_header>, Int) -> Result) -> Result {
        bytes.withUnsafeBytes { text in
            // prism_header is a plain C struct: nothing to deinitialize afterwards.
            withUnsafeTemporaryAllocation(of: prism_header.self, capacity: max(count, 1)) { views in
                let base = (text.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
                for (index, field) in fields.enumerated() {
                    views.initializeElement(at: index, to: prism_header(
                        name: prism_string(data: base + field.name.lowerBound, length: field.name.count),
                        value: prism_string(data: base + field.value.lowerBound, length: field.value.count)))
                }
                return body(UnsafePointer(views.baseAddress!), count)
            }
        }
    }
}
