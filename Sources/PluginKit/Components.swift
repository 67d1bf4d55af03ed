import PrismPluginABI
import PrismWire

/// A provider adapter: translation between OpenAI's format and one provider's wire format. One
/// instance per configured provider; shared by all requests, so it must be thread-safe.
public protocol ProviderAdapter: AnyObject, Sendable {
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    /// Per-request translation state.
    func makeExchange() -> any ProviderExchange
}

/// What build_request decided.
public struct UpstreamPlan: Sendable {
    public var framing: prism_framing
    /// True when the adapter answered itself (wrote the upstream answer into the builder).
    public var answeredLocally: Bool

    public init(framing: prism_framing, answeredLocally: Bool = false) {
        self.framing = framing
        self.answeredLocally = answeredLocally
    }

    public static let notStreaming = UpstreamPlan(framing: PRISM_FRAMING_NONE)
    public static let serverSentEvents = UpstreamPlan(framing: PRISM_FRAMING_SSE)
}

/// The translation of one client request. Calls never overlap.
public protocol ProviderExchange: AnyObject {
    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan
    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage
    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError)
    func translateChunk(_ chunk: UnsafeRawBufferPointer, client: StreamSink) throws(PluginError)
    func finishStream(client: StreamSink) throws(PluginError)
    /// A non-2xx upstream answer, described as an error.
    func translateError(_ response: PluginResponse) -> PluginError
}

extension ProviderExchange {
    public func translateChunk(_ chunk: UnsafeRawBufferPointer, client: StreamSink) throws(PluginError) {
        throw PluginError.unsupported("this provider does not take raw stream chunks")
    }

    public func finishStream(client: StreamSink) throws(PluginError) {}

    public func translateError(_ response: PluginResponse) -> PluginError {
        OpenAIShapes.upstreamError(status: response.status, body: Array(response.body))
    }
}

public enum MiddlewareAction: Sendable {
    case proceed
    /// Answer the client now with what was written to the local response.
    case respond
}

/// A middleware: runs before routing for every request. Thread-safe.
public protocol Middleware: AnyObject, Sendable {
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    func onRequest(_ request: PluginRequest, context: RequestContext, localResponse: HTTPBuilder) -> MiddlewareAction
    func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion)
}

extension Middleware {
    public func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion) {}
}

/// A routing strategy: ranks candidates for a request. Called concurrently.
public protocol RoutingStrategy: AnyObject, Sendable {
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    /// Candidate indices, best first.
    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int]
    func feedback(_ outcome: Completion)
    /// How many top candidates the host should race (first answer wins); 1 = one at a time.
    var parallelAttempts: UInt32 { get }
}

extension RoutingStrategy {
    public func feedback(_ outcome: Completion) {}
    public var parallelAttempts: UInt32 { 1 }
}

/// One component a plugin exports.
public enum ComponentDeclaration {
    case provider(String, any ProviderAdapter.Type)
    case middleware(String, any Middleware.Type)
    case router(String, any RoutingStrategy.Type)
}
