import PrismPluginABI
import PrismWire

// Ingress components (ABI 1.5): a client dialect served on its own routes. The Swift side is
// byte-based and free of ABI pointers, so a dialect's translation is unit-tested without a host;
// IngressExport.swift binds it to prism_ingress_v1.

/// One route a dialect claims.
public struct IngressRoute: Sendable, Equatable {
    public var method: String
    public var path: String
    /// The operation's name in this dialect ("anthropic.messages"): the api of decode and, for
    /// pass-through, of the provider's build_request.
    public var api: String
    /// `path` is a prefix ("/v1/responses/" matches "/v1/responses/resp_1").
    public var isPrefix: Bool

    public init(method: String, path: String, api: String, isPrefix: Bool = false) {
        self.method = method
        self.path = path
        self.api = api
        self.isPrefix = isPrefix
    }
}

/// A client dialect: one instance per configured ingress; shared by all requests (thread-safe).
public protocol IngressDialect: AnyObject, Sendable {
    /// The configuration keys it reads (ABI config_keys); nil: not declared.
    static var configurationKeys: [String]? { get }
    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError)
    var routes: [IngressRoute] { get }
    /// Per-request state.
    func makeExchange() -> any IngressExchange
}

extension IngressDialect {
    public static var configurationKeys: [String]? { nil }
}

/// The client's request as decode sees it. `body` is borrowed for the duration of the call.
public struct IngressRequest {
    public let api: String
    public let method: String
    public let path: String
    public let requestID: String
    public let body: UnsafeRawBufferPointer
    private let lookup: (String) -> String?

    /// `headers` by lower-case name (tests; the export reads the host's header array).
    public init(api: String, method: String = "POST", path: String, requestID: String = "req-test",
                body: UnsafeRawBufferPointer, headers: [String: String] = [:])
    {
        self.init(api: api, method: method, path: path, requestID: requestID, body: body) { headers[$0] }
    }

    init(api: String, method: String, path: String, requestID: String, body: UnsafeRawBufferPointer,
         lookup: @escaping (String) -> String?)
    {
        self.api = api
        self.method = method
        self.path = path
        self.requestID = requestID
        self.body = body
        self.lookup = lookup
    }

    /// The first value of a header (name in lower case).
    public func header(_ name: String) -> String? { lookup(name) }
}

/// A complete HTTP answer for the client.
public struct ClientAnswer: Sendable, Equatable {
    public var status: UInt32
    public var headers: [Header]
    public var body: [UInt8]

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(status: UInt32, headers: [Header] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer (content-type application/json).
    public static func json(_ status: UInt32, _ body: [UInt8]) -> ClientAnswer {
        ClientAnswer(status: status, headers: [Header("content-type", "application/json")], body: body)
    }
}

/// The canonical request: an OpenAI chat.completions body, and headers to set on the client's
/// (as the middleware and providers see them), e.g. `authorization` from `x-api-key`.
public struct CanonicalRequest: Sendable, Equatable {
    public var body: [UInt8]
    public var headers: [ClientAnswer.Header]

    public init(body: [UInt8], headers: [ClientAnswer.Header] = []) {
        self.body = body
        self.headers = headers
    }
}

extension CanonicalRequest {
    /// A canonical request with only what the middleware and routing need, for `.nativeOnly`.
    public static func routing(model: String, stream: Bool, headers: [ClientAnswer.Header] = []) -> CanonicalRequest {
        var writer = JSONWriter(capacity: 128 + model.utf8.count)
        writer.beginObject()
        writer.string("model", model)
        writer.key("messages")
        writer.raw(bytes: Array(#"[{"role":"user","content":"(served in the client's own dialect)"}]"#.utf8))
        writer.bool("stream", stream)
        writer.endObject()
        return CanonicalRequest(body: writer.bytes, headers: headers)
    }

    /// `"stream"` and, when streaming, `"stream_options":{"include_usage":true}`: the canonical
    /// stream then ends with the usage-only chunk a dialect reports its final usage from.
    public static func writeStream(_ stream: Bool, to writer: inout JSONWriter) {
        writer.bool("stream", stream)
        guard stream else { return }
        writer.key("stream_options")
        writer.beginObject()
        writer.bool("include_usage", true)
        writer.endObject()
    }

    /// The canonical answer (an OpenAI chat.completion) a dialect encodes, as a tree.
    public static func parseAnswer(_ body: UnsafeRawBufferPointer) throws(PluginError) -> JSONValue {
        do {
            return try JSONValue.parse(body)
        } catch {
            throw PluginError.internalError("The canonical answer is not valid JSON: \(error.reason)")
        }
    }

    /// `routing(model:stream:)` from the client's body (nil when it names no model).
    public static func routing(from body: UnsafeRawBufferPointer, headers: [ClientAnswer.Header] = []) -> CanonicalRequest? {
        guard let members = try? JSONScanner.members(body),
              let member = JSONScanner.member(named: "model", in: members, of: body),
              let model = JSONScanner.string(body, in: member.valueRange), !model.isEmpty else { return nil }
        let stream = JSONScanner.member(named: "stream", in: members, of: body)
            .map { JSONScanner.isTrue(body, in: $0.valueRange) } ?? false
        return routing(model: model, stream: stream, headers: headers)
    }
}

/// What decode decided.
public enum DecodeResult: Sendable {
    /// Go on with the canonical request (middleware, routing, a provider).
    case forward(CanonicalRequest)
    /// As `forward`, but never passed through to a provider speaking the dialect: the canonical
    /// request holds what the client's body lacks (a stored conversation).
    case forwardTranslated(CanonicalRequest)
    /// Answer the client with this after the middleware chain (a token count, a stored object).
    case answer(ClientAnswer)
    /// The canonical request cannot carry what the client asked (a hosted tool, logprobs): only a
    /// provider that speaks the dialect itself serves it (pass-through), with `canonical` for the
    /// middleware and routing; when none does, the client gets `error`.
    case nativeOnly(CanonicalRequest, PluginError)
    /// Refuse the request; the client gets encodeError's answer.
    case failure(PluginError)
}

/// An error for the client, as the host describes it (OpenAI vocabulary: type, code, message).
public struct IngressError: Sendable, Equatable {
    public var status: UInt32
    public var type: String
    public var code: String
    public var message: String

    public init(status: UInt32, type: String, code: String, message: String) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
    }
}

/// The translation of one client request. Calls never overlap.
public protocol IngressExchange: AnyObject {
    /// Decides now (a non-nil result), or returns nil after arranging for `later` to be called
    /// exactly once, from any thread (after a shared-state lookup, say).
    func decode(_ request: IngressRequest, later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult?
    /// The canonical answer (an OpenAI chat.completion JSON) to the client's.
    func encodeResponse(status: UInt32, body: UnsafeRawBufferPointer) throws(PluginError) -> ClientAnswer
    /// One canonical chat.completion.chunk (JSON) to the client's stream bytes, framing included.
    func encodeEvent(_ chunk: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(PluginError)
    /// The canonical stream ended well: the dialect's closing events.
    func finishStream(usage: Usage, into out: inout [UInt8]) throws(PluginError)
    /// An error answer (`inStream` false) or the bytes that end a started stream (`inStream`
    /// true: only `body` is used).
    func encodeError(_ error: IngressError, inStream: Bool) -> ClientAnswer
    /// Bytes that keep a quiet stream alive.
    func keepAlive(into out: inout [UInt8])
    /// A pass-through answer as it goes to the client: each SSE event (`event` its name), or the
    /// whole body (`event` empty). Updates `usage` with what it reports.
    func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout Usage)
}

extension IngressExchange {
    public func keepAlive(into out: inout [UInt8]) { out.append(contentsOf: ": keep-alive\n\n".utf8) }
    public func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout Usage) {}
}
