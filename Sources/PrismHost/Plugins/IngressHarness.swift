import PrismPluginABI
import PrismSupport
import PrismWire

/// Drives ingress plugins (client dialects) through the C ABI the way the gateway does, without
/// a server: for the translation benchmark's dialect rows.
extension TranslationHarness {
    /// Ingress component names, sorted.
    public var ingressComponents: [String] { registry.ingresses.keys.sorted() }

    public func ingress(_ component: String, configuration: JSONValue = .object([])) throws(InstanceError) -> HarnessIngress {
        guard let loaded = registry.ingresses[component] else {
            throw InstanceError(message: "no loaded plugin provides ingress '\(component)'")
        }
        return HarnessIngress(try IngressInstance(name: component, component: loaded, registry: registry,
                                                  configuration: configuration))
    }
}

public final class HarnessIngress {
    let instance: IngressInstance

    init(_ instance: IngressInstance) { self.instance = instance }

    /// The routes it claims: (method, path, api).
    public var routes: [(method: String, path: String, api: String)] { instance.routes.map { ($0.method, $0.path, $0.api) } }

    /// One exchange for a client request on `api` (exchange_destroy runs when it is released).
    public func newExchange() -> HarnessIngressExchange? {
        instance.newExchange().map(HarnessIngressExchange.init)
    }
}

public final class HarnessIngressExchange {
    let exchange: IngressExchange

    init(_ exchange: IngressExchange) { self.exchange = exchange }

    /// decode_request, answered at once (a decode that stays pending reports PRISM_PENDING).
    public func decode(api: String, path: String, body: [UInt8], headers: [(String, String)] = []) -> (status: Int32, canonical: [UInt8]) {
        let view = RequestView(api: api, method: "POST", path: path, headers: [("content-type", "application/json")] + headers,
                               body: body, model: "", requestID: "bench-request")
        let decision = IngressExchange.Decision()
        let status = exchange.decode(view, into: decision) { _ in } ?? PRISM_PENDING
        return (status, decision.builder.body)
    }

    /// encode_response on a canonical answer: the client's answer.
    public func encodeResponse(status: Int, body: [UInt8]) -> (status: Int32, answerStatus: UInt32, body: [UInt8]) {
        let client = MessageBuilder()
        let error = ErrorCapture()
        let result = HeaderBlock([("content-type", "application/json")]).withViews { views, count in
            body.withUnsafeBufferPointer { buffer in
                var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(status),
                                              headers: views, header_count: count,
                                              body: prism_bytes(data: buffer.baseAddress, length: buffer.count))
                return exchange.encodeResponse(&response, into: client, error: error)
            }
        }
        return (result, client.status, client.body)
    }

    /// finish_stream with `usage`: the closing bytes.
    public func finishStream(usage: prism_usage = prism_usage()) -> (status: Int32, output: [UInt8]) {
        var output: [UInt8] = []
        let status = exchange.finishStream(usage: usage, into: &output, error: ErrorCapture())
        return (status, output)
    }

    /// encode_error, before (`inStream` false) or after the first byte.
    public func encodeError(status: Int, type: String, code: String, message: String, inStream: Bool)
        -> (status: UInt32, body: [UInt8])
    {
        let answer = exchange.encodeError(status: status, type: type, code: code, message: message, inStream: inStream)
        return (answer.status, answer.body)
    }

    /// observe_native on a pass-through answer's event (or whole body): the usage it reads.
    public func observeNative(event: String, data: [UInt8]) -> prism_usage {
        var usage = prism_usage()
        data.withUnsafeBytes { exchange.observeNative(event: event, data: $0, usage: &usage) }
        return usage
    }

    /// encode_event on one canonical chunk: the client's bytes.
    @discardableResult
    public func encodeEvent(_ chunk: [UInt8]) -> (status: Int32, output: [UInt8]) {
        var output: [UInt8] = []
        let error = ErrorCapture()
        let status = chunk.withUnsafeBytes { exchange.encodeEvent($0, into: &output, error: error) }
        return (status, output)
    }
}
