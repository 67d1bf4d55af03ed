import PrismPluginABI
import PrismWire

/// One route an ingress instance serves (copied from the plugin's prism_route array).
package struct IngressRoute: Sendable, Equatable {
    package let method: String
    package let path: String
    package let api: String
    package let isPrefix: Bool

    package func matches(method: String, path: String) -> Bool {
        guard method == self.method else { return false }
        return isPrefix ? path.hasPrefix(self.path) && path.count > self.path.count : path == self.path
    }
}

/// One client dialect (an ingress component's instance, ABI 1.5).
public final class IngressInstance: @unchecked Sendable {
    // The plugin promises the instance is thread-safe; the host only reads these fields.
    public let name: String
    let table: UnsafePointer<prism_ingress_v1>
    let instance: UnsafeMutableRawPointer
    package let routes: [IngressRoute]

    package init(name: String, component: LoadedComponent<prism_ingress_v1>, registry: PluginRegistry, configuration: JSONValue,
         scope: String = "") throws(InstanceError)
    {
        self.name = name
        table = component.table
        let host = registry.hostTable(pluginID: component.pluginID, component: component.name, instance: name, scope: scope)
        let created = try createInstance(table.pointee.instance_new, host: host, name: name, configuration: configuration)
        instance = created
        var count = 0
        var routes: [IngressRoute] = []
        if let list = table.pointee.routes?(created, &count) {
            // Array elements are stepped by their frozen 1.5 size.
            let stride = Int(PRISM_ROUTE_SIZE_1_5)
            for index in 0..<min(count, 64) {
                let route = (UnsafeRawPointer(list) + index * stride).assumingMemoryBound(to: prism_route.self).pointee
                guard Int(route.struct_size) >= stride else { continue }
                routes.append(IngressRoute(method: route.method.hostString, path: route.path.hostString,
                                           api: route.api.hostString, isPrefix: route.flags & PRISM_ROUTE_PREFIX != 0))
            }
        }
        self.routes = routes
    }

    deinit { table.pointee.instance_destroy?(instance) }

    package func newExchange() -> IngressExchange? {
        var state: UnsafeMutableRawPointer?
        guard table.pointee.exchange_new?(instance, &state) == PRISM_OK, let state else { return nil }
        return IngressExchange(ingress: self, state: state)
    }
}

/// One request's translation state in an ingress plugin; `exchange_destroy` runs exactly once,
/// with the last reference.
package final class IngressExchange: @unchecked Sendable {
    package let ingress: IngressInstance
    private let state: UnsafeMutableRawPointer
    private var table: prism_ingress_v1 { ingress.table.pointee }

    init(ingress: IngressInstance, state: UnsafeMutableRawPointer) {
        self.ingress = ingress
        self.state = state
    }

    deinit { table.exchange_destroy?(state) }

    /// The decision of decode_request: the canonical request (or the client's answer) is in
    /// `decision.builder`, a failure in `decision.error`.
    package final class Decision: @unchecked Sendable {
        package let builder = MessageBuilder()
        package let error = ErrorCapture()
        let latch = ResumeLatch()

        package init() {}
        private(set) lazy var resumeTable: UnsafePointer<prism_decode_resume> = {
            let table = UnsafeMutablePointer<prism_decode_resume>.allocate(capacity: 1)
            table.initialize(to: prism_decode_resume(
                struct_size: UInt32(MemoryLayout<prism_decode_resume>.size),
                context: Unmanaged.passUnretained(self).toOpaque(),
                resume: { context, status in
                    Unmanaged<Decision>.fromOpaque(context!).takeUnretainedValue().latch.resume(status)
                }))
            resumeStorage = table
            return UnsafePointer(table)
        }()

        private var resumeStorage: UnsafeMutablePointer<prism_decode_resume>?
        deinit { resumeStorage?.deallocate() }
    }

    /// Calls decode_request. Returns the status, or nil when the plugin decides later: then
    /// `later` runs once, on the resuming thread.
    package func decode(_ request: RequestView, into decision: Decision,
                later: @escaping @Sendable (prism_status) -> Void) -> prism_status?
    {
        let status = table.decode_request?(state, request.pointer, decision.builder.persistentBuilder,
                                           decision.resumeTable, decision.error.persistentSink) ?? PRISM_ERROR_INTERNAL
        guard status == PRISM_PENDING else { return status }
        return decision.latch.paused(keepAlive: decision, continuation: later)
    }

    package func encodeResponse(_ response: UnsafePointer<prism_response>, into client: MessageBuilder,
                        error: ErrorCapture) -> prism_status
    {
        client.withBuilder { builder in
            error.withSink { sink in table.encode_response?(state, response, builder, sink) ?? PRISM_ERROR_INTERNAL }
        }
    }

    package func encodeEvent(_ chunk: UnsafeRawBufferPointer, into output: inout [UInt8], error: ErrorCapture) -> prism_status {
        withBytesSink(&output) { sink in
            error.withSink { errorSink in
                table.encode_event?(state, prism_bytes(data: chunk.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                       length: chunk.count), sink, errorSink) ?? PRISM_ERROR_INTERNAL
            }
        }
    }

    package func finishStream(usage: prism_usage, into output: inout [UInt8], error: ErrorCapture) -> prism_status {
        var usage = usage
        usage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
        return withBytesSink(&output) { sink in
            error.withSink { errorSink in table.finish_stream?(state, &usage, sink, errorSink) ?? PRISM_ERROR_INTERNAL }
        }
    }

    /// The dialect's error answer (or, `inStream`, the bytes that end a started stream).
    package func encodeError(status: Int, type: String, code: String, message: String, inStream: Bool) -> MessageBuilder {
        let client = MessageBuilder()
        client.withBuilder { builder in
            type.withPrismString { type in
                code.withPrismString { code in
                    message.withPrismString { message in
                        table.encode_error?(state, UInt32(status), type, code, message, inStream ? 1 : 0, builder)
                    }
                }
            }
        }
        return client
    }

    package func keepAlive(into output: inout [UInt8]) {
        guard let keepAlive = table.keep_alive else {
            output.append(contentsOf: ": keep-alive\n\n".utf8)
            return
        }
        withBytesSink(&output) { sink in keepAlive(state, sink) }
    }

    /// A pass-through answer's event (or whole body, `event` empty), for the dialect's usage.
    package func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout prism_usage) {
        guard let observe = table.observe_native else { return }
        usage.struct_size = UInt32(MemoryLayout<prism_usage>.size)
        event.withPrismString { name in
            observe(state, name, prism_bytes(data: data.baseAddress?.assumingMemoryBound(to: UInt8.self), length: data.count),
                    &usage)
        }
    }

    var observesNative: Bool { table.observe_native != nil }
}

/// Calls `body` with a prism_bytes_sink appending to `output`.
func withBytesSink<Result>(_ output: inout [UInt8], _ body: (UnsafePointer<prism_bytes_sink>) -> Result) -> Result {
    withUnsafeMutablePointer(to: &output) { target in
        var sink = prism_bytes_sink(
            struct_size: UInt32(MemoryLayout<prism_bytes_sink>.size),
            context: UnsafeMutableRawPointer(target),
            write: { context, value in
                context!.assumingMemoryBound(to: [UInt8].self).pointee.append(contentsOf: value.hostBuffer)
            })
        return withUnsafePointer(to: &sink) { body($0) }
    }
}
