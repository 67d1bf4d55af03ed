import PrismPluginABI
import PrismWire

/// A provider adapter: translation between OpenAI's format and one provider's wire format. One
/// instance per configured provider; shared by all requests, so it must be thread-safe.
public protocol ProviderAdapter: AnyObject, Sendable {
    /// The configuration keys this adapter reads besides the gateway's own (api_key, base_url,
    /// models, headers, ...): the host warns about any other key (ABI 1.4 config_keys). nil: not
    /// declared, nothing is warned.
    static var configurationKeys: [String]? { get }
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    /// Per-request translation state.
    func makeExchange() -> any ProviderExchange
    /// The model names this instance serves by pattern (`*` matches any run of characters), for a
    /// client model no `models` list names (ABI 1.4 model_patterns). Empty: configured models only.
    var modelPatterns: [String] { get }
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

extension ProviderAdapter {
    public static var configurationKeys: [String]? { nil }
    public var modelPatterns: [String] { [] }
}

extension Middleware {
    public static var configurationKeys: [String]? { nil }
}

extension RoutingStrategy {
    public static var configurationKeys: [String]? { nil }
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
    /// Decide later through a `PendingDecision` made in this call (after a service callback).
    case pause
}

/// A middleware: runs before routing for every request. Thread-safe.
public protocol Middleware: AnyObject, Sendable {
    /// The keys of its configuration it reads (ABI 1.4 config_keys); nil: not declared.
    static var configurationKeys: [String]? { get }
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    func onRequest(_ request: PluginRequest, context: RequestContext, localResponse: HTTPBuilder) -> MiddlewareAction
    func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion)
    /// The successful non-streaming answer, for requests that called `context.watchResponse()`.
    func onResponse(_ request: PluginRequest, context: RequestContext, response: PluginResponse)
    /// One event of a streamed answer (chat.completion.chunk JSON), for watching requests.
    func onStreamEvent(_ request: PluginRequest, context: RequestContext, event: UnsafeRawBufferPointer)
}

extension Middleware {
    public func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion) {}
    public func onResponse(_ request: PluginRequest, context: RequestContext, response: PluginResponse) {}
    public func onStreamEvent(_ request: PluginRequest, context: RequestContext, event: UnsafeRawBufferPointer) {}
}

/// The decision of a middleware that returned `.pause`: its context and local response stay
/// valid until `proceed()` or `respond()` is called, exactly once, from any thread.
public struct PendingDecision: @unchecked Sendable {
    public let context: RequestContext
    public let localResponse: HTTPBuilder

    public init(context: RequestContext, localResponse: HTTPBuilder) {
        self.context = context
        self.localResponse = localResponse
    }

    public func proceed() { context.resume(PRISM_CONTINUE) }
    /// Answers the client with what was written to `localResponse`.
    public func respond() { context.resume(PRISM_RESPOND) }
}

/// A routing strategy: ranks candidates for a request. Called concurrently.
public protocol RoutingStrategy: AnyObject, Sendable {
    /// The `routing:` keys it reads besides the gateway's own (ABI 1.4 config_keys); nil: not declared.
    static var configurationKeys: [String]? { get }
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
    /// A client dialect (ABI 1.5).
    case ingress(String, any IngressDialect.Type)
}
