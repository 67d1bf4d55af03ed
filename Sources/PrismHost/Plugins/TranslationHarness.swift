import Logging
import PrismPluginABI
import PrismSupport
import PrismWire

/// Drives provider plugins through the C ABI the way the gateway does (the same loader, host
/// function tables, request view and sinks) but without network, server or routing: for the
/// translation benchmark and for tools that want to see what a plugin sends and emits.
public final class TranslationHarness {
    let registry: PluginRegistry

    /// Loads every `*.so` in `pluginsDirectory`; refused files are listed in `refusals`.
    public init(pluginsDirectory: String) {
        var logger = Logger(label: "prism.translation-harness")
        logger.logLevel = .error
        registry = PluginRegistry(logger: logger)
        registry.loadDirectory(pluginsDirectory)
    }

    /// Loads one plugin file (for `prism-gateway plugin-test`); a refusal is in `refusals`.
    public init(pluginFile: String) {
        var logger = Logger(label: "prism.plugin-test")
        logger.logLevel = .error
        registry = PluginRegistry(logger: logger)
        do { try registry.load(pluginFile) } catch { registry.recordRefusal(error) }
    }

    /// Provider component names, sorted.
    public var providerComponents: [String] { registry.providers.keys.sorted() }

    /// The file that provides `component`.
    public func file(of component: String) -> String? { registry.providers[component]?.file }

    public var refusals: [(file: String, reason: String)] { registry.refusals.map { ($0.file, $0.reason) } }

    /// Creates an instance of provider `component` with `configuration` (a provider section as
    /// config.yaml would give it, e.g. {"api_key": "...", "base_url": "..."}).
    public func provider(_ component: String, configuration: JSONValue) throws(InstanceError) -> HarnessProvider {
        guard let loaded = registry.providers[component] else {
            throw InstanceError(message: "no loaded plugin provides provider '\(component)'")
        }
        var section = configuration
        if case var .object(members) = section {
            members.removeAll { $0.0 == "name" }
            members.append(("name", .string(component)))
            section = .object(members)
        }
        let settings = ProviderSettings(name: component, apiFormat: component, type: nil, models: [],
                                        defaultTimeout: nil, maxConcurrent: nil, connectionPoolSize: nil,
                                        section: section, location: SourceLocation(file: "harness", line: 0, column: 0))
        return HarnessProvider(try ProviderInstance(settings: settings, component: loaded, registry: registry,
                                                    timeoutMilliseconds: 60_000))
    }
}

/// One provider instance under the harness.
public final class HarnessProvider {
    let instance: ProviderInstance

    init(_ instance: ProviderInstance) { self.instance = instance }

    /// A client request as the gateway hands it to providers (the request view is built once per
    /// client request; each attempt gets its own exchange).
    public func request(api: String = "chat.completions", model: String, body: [UInt8], stream: Bool,
                        requestID: String = "bench-request") -> HarnessRequest
    {
        let path = api == "embeddings" ? "/v1/embeddings" : api == "models.list" ? "/v1/models" : "/v1/chat/completions"
        let view = RequestView(api: api, method: api == "models.list" ? "GET" : "POST", path: path,
                               headers: [("content-type", "application/json")],
                               body: body, model: model, requestID: requestID)
        if stream { view.pointer.pointee.flags |= PRISM_REQUEST_STREAM }
        return HarnessRequest(provider: instance, view: view)
    }
}

public final class HarnessRequest {
    let provider: ProviderInstance
    let view: RequestView

    init(provider: ProviderInstance, view: RequestView) {
        self.provider = provider
        self.view = view
    }

    /// exchange_new (exchange_destroy runs when the result is released).
    public func newExchange() -> HarnessExchange? {
        provider.newExchange().map { HarnessExchange(exchange: $0, view: view) }
    }
}

/// One exchange: build the upstream request, then feed it upstream events.
public final class HarnessExchange {
    let exchange: ProviderExchange
    let view: RequestView
    let collector = StreamCollector()

    init(exchange: ProviderExchange, view: RequestView) {
        self.exchange = exchange
        self.view = view
    }

    public struct BuiltRequest {
        public let status: Int32
        public let framing: Int32
        public let method: String
        public let url: String
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]
        public let errorMessage: String?
        /// PRISM_ANSWERED_LOCALLY: the status of the answer the builder holds.
        public var answerStatus = 0
    }

    /// build_request into a fresh upstream builder, as the gateway does for each attempt.
    @discardableResult
    public func buildRequest() -> BuiltRequest {
        let upstream = MessageBuilder()
        let error = ErrorCapture()
        let (status, framing) = exchange.buildRequest(view, into: upstream, error: error)
        return BuiltRequest(status: status, framing: framing, method: upstream.method, url: upstream.url,
                            headers: upstream.headers, body: upstream.body,
                            errorMessage: error.isSet ? error.message : nil,
                            answerStatus: Int(upstream.status == 0 ? 200 : upstream.status))
    }

    /// translate_response (a 2xx) or translate_error (otherwise), as the gateway calls them for a
    /// buffered upstream answer. `translated` is false when a non-2xx met no translate_error.
    public func answer(status: Int, headers: [(String, String)] = [("content-type", "application/json")], body: [UInt8])
        -> (status: Int32, translated: Bool, clientStatus: Int, clientBody: [UInt8], usage: prism_usage,
            error: (status: UInt32, type: String, code: String, message: String)?)
    {
        let client = MessageBuilder()
        let error = ErrorCapture()
        var usage = prism_usage()
        var translated = true
        let result: Int32 = HeaderBlock(headers).withViews { views, count in
            body.withUnsafeBufferPointer { bodyBuffer in
                var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(status),
                                              headers: views, header_count: count,
                                              body: prism_bytes(data: bodyBuffer.baseAddress, length: bodyBuffer.count))
                if (200..<300).contains(status) {
                    let outcome = exchange.translateResponse(&response, into: client, error: error)
                    usage = outcome.usage
                    return outcome.status
                }
                translated = exchange.translateError(&response, error: error)
                return PRISM_ERROR_UPSTREAM
            }
        }
        return (result, translated, Int(client.status == 0 ? 200 : client.status), client.body, usage,
                error.isSet ? (error.httpStatus, error.type, error.code, error.message) : nil)
    }

    /// finish_stream: the client bytes it produced, and the plugin's error message, if any.
    public func finishStream() -> (status: Int32, output: [UInt8], error: String?) {
        let error = ErrorCapture()
        let status = exchange.finishStream(into: collector, error: error)
        defer { collector.pending.removeAll() }
        return (status, collector.pending, error.isSet ? error.message : nil)
    }

    /// translate_chunk (PRISM_FRAMING_RAW): raw upstream bytes.
    public func translateChunk(_ bytes: [UInt8]) -> (status: Int32, output: [UInt8], error: String?) {
        let error = ErrorCapture()
        let status = bytes.withUnsafeBytes { exchange.translateChunk($0, into: collector, error: error) }
        defer { collector.pending.removeAll() }
        return (status, collector.pending, error.isSet ? error.message : nil)
    }

    /// The usage the stream reported so far.
    public var streamUsage: prism_usage { collector.usage }

    /// translate_event for one upstream event, with the host's stream sink. Returns the status,
    /// the number of client bytes produced (SSE-framed; then dropped, like a flushed write), the
    /// bytes themselves when `keepOutput` is set, and the plugin's error message, if any.
    @discardableResult
    public func translateEvent(_ event: ServerSentEvent, keepOutput: Bool = false)
        -> (status: Int32, produced: Int, output: [UInt8], error: String?)
    {
        let error = ErrorCapture()
        let status = exchange.translateEvent(event, into: collector, error: error)
        let produced = collector.pending.count
        let output = keepOutput ? collector.pending : []
        collector.pending.removeAll(keepingCapacity: !keepOutput)
        return (status, produced, output, error.isSet ? error.message : nil)
    }
}
