import PluginKit
import PrismPluginABI
import PrismWire

// The Anthropic Messages dialect (ABI 1.5 ingress): Anthropic SDK clients talk to the gateway on
// POST /v1/messages and /v1/messages/count_tokens. Requests become the canonical OpenAI
// chat.completions body (MessagesRequest.swift); answers, streams and errors go back in
// Anthropic's exact wire format (MessagesResponse.swift, MessagesStream.swift).

/// One configured Anthropic ingress: stateless, shared by all requests.
public final class AnthropicIngress: IngressDialect {
    public static let configurationKeys: [String]? = []

    package static let routeTable: [IngressRoute] = [
        IngressRoute(method: "POST", path: "/v1/messages", api: AnthropicIngress.messagesAPI),
        IngressRoute(method: "POST", path: "/v1/messages/count_tokens", api: AnthropicIngress.countTokensAPI),
    ]

    public let routes = AnthropicIngress.routeTable

    static let messagesAPI = "anthropic.messages"
    static let countTokensAPI = "anthropic.count_tokens"

    public init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {}

    public func makeExchange() -> any IngressExchange { AnthropicExchange() }
}

/// What the later steps of one exchange need to know about the client's request.
package struct RequestContext: Sendable {
    /// The model the client asked for (the answer's model when the canonical one names none).
    package var model = ""
    /// The client's `stop_sequences`, to report which one matched.
    package var stopSequences: [String] = []
    /// The gateway's request id: the message id when the canonical answer carries none.
    var requestID = ""

    /// `msg_<request id>` (or `msg_prism`), for answers whose canonical id is missing.
    var fallbackMessageID: String { MessagesResponse.messageID(requestID.isEmpty ? "prism" : requestID) }
}

/// The translation of one client request.
package final class AnthropicExchange: IngressExchange {
    package private(set) var context = RequestContext()
    private var stream: MessagesStream?

    package init() {}

    package func decode(_ request: IngressRequest, later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult? {
        context.requestID = request.requestID
        if request.api == AnthropicIngress.messagesAPI, let decoded = MessagesFastDecode.decode(request.body) {
            context.model = decoded.model
            context.stopSequences = decoded.stopSequences
            return .forward(CanonicalRequest(body: decoded.body, headers: AnthropicExchange.credentials(request)))
        }
        do throws(PluginError) {
            let body = try MessagesRequest.parseBody(request.body)
            switch request.api {
            case AnthropicIngress.messagesAPI:
                let decoded = try MessagesRequest.decode(body, sizeHint: request.body.count)
                context.model = decoded.model
                context.stopSequences = decoded.stopSequences
                return .forward(CanonicalRequest(body: decoded.body, headers: AnthropicExchange.credentials(request)))
            case AnthropicIngress.countTokensAPI:
                let count = try TokenEstimate.inputTokens(body)
                var writer = JSONWriter(capacity: 32)
                writer.beginObject()
                writer.integer("input_tokens", Int64(count))
                writer.endObject()
                return .answer(.json(200, writer.bytes))
            default:
                return .failure(PluginError.invalidRequest("The Anthropic ingress does not serve `\(request.api)`.",
                                                           code: "unsupported_api"))
            }
        } catch {
            // What the canonical request cannot carry (server tools, file sources), an Anthropic
            // provider still serves: the client's body goes to it as it is.
            if request.api == AnthropicIngress.messagesAPI, error.code.hasPrefix("unsupported_"),
               let routing = CanonicalRequest.routing(from: request.body, headers: AnthropicExchange.credentials(request))
            {
                return .nativeOnly(routing, error)
            }
            return .failure(error)
        }
    }

    /// Anthropic SDKs send their key as `x-api-key`: it becomes the bearer token the gateway's
    /// auth middleware reads, unless the client also sent an `authorization` header.
    static func credentials(_ request: IngressRequest) -> [ClientAnswer.Header] {
        guard let key = request.header("x-api-key"), !key.isEmpty,
              (request.header("authorization") ?? "").isEmpty
        else { return [] }
        return [ClientAnswer.Header("authorization", "Bearer \(key)")]
    }

    package func encodeResponse(status: UInt32, body: UnsafeRawBufferPointer) throws(PluginError) -> ClientAnswer {
        .json(200, try MessagesResponse.message(body, context: context))
    }

    package func encodeEvent(_ chunk: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(PluginError) {
        if stream == nil { stream = MessagesStream(context: context) }
        // In place: a copy out and back would retain (and copy on write) the stream's state.
        try stream!.translate(chunk, into: &out)
    }

    package func finishStream(usage: Usage, into out: inout [UInt8]) throws(PluginError) {
        var current = stream ?? MessagesStream(context: context)
        current.finish(hostUsage: usage, into: &out)
        stream = current
    }

    package func encodeError(_ error: IngressError, inStream: Bool) -> ClientAnswer {
        let body = MessagesResponse.errorBody(status: error.status, message: error.message)
        guard inStream else { return .json(error.status, body) }
        var out: [UInt8] = []
        ServerSentEventWriter.frame(event: "error", body, into: &out)
        return ClientAnswer(status: error.status, body: out)
    }

    package func keepAlive(into out: inout [UInt8]) {
        ServerSentEventWriter.frame(event: "ping", MessagesStream.pingPayload, into: &out)
    }

    package func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout Usage) {
        MessagesResponse.observe(event: event, data: data, usage: &usage)
    }
}
