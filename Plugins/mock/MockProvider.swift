import PluginKit
import PrismPluginABI
import PrismWire

/// A provider that answers without any network, so people can try their clients offline and tests
/// can exercise the whole pipeline. It plays an OpenAI upstream: build_request writes what such an
/// upstream would have answered (JSON, or an SSE stream) and returns PRISM_ANSWERED_LOCALLY; the
/// host then treats that answer like one from the network.
///
/// Configuration: `reply` (fixed answer text; default: echoes the last user message).
final class MockProvider: ProviderAdapter {
    static let configurationKeys: [String]? = ["reply", "model_patterns"]

    let instanceName: String
    let fixedReply: String?
    let host: PluginHost
    /// `model_patterns: ["mock-*"]`: the family this mock serves (to try model resolution offline).
    let modelPatterns: [String]

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.instanceName = instanceName
        self.host = host
        fixedReply = configuration["reply"]?.stringValue
        modelPatterns = (configuration["model_patterns"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    func makeExchange() -> any ProviderExchange { MockExchange(provider: self) }

    /// Wall clock in milliseconds, from the host.
    func clock() -> UInt64 { host.wallClockMilliseconds }
}

final class MockExchange: ProviderExchange {
    let provider: MockProvider
    var clientWantsUsage = false
    var relay = OpenAIStreamState()

    init(provider: MockProvider) { self.provider = provider }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        let body: JSONValue
        do {
            body = try JSONValue.parse(request.body)
        } catch {
            throw PluginError.invalidRequest("request body is not valid JSON: \(error.reason)", code: "invalid_json")
        }
        let model = request.model
        let created = Int64(provider.clock() / 1000)
        upstream.setStatus(200)
        switch request.api {
        case "chat.completions":
            let reply = provider.fixedReply ?? MockExchange.echo(body["messages"]?.arrayValue ?? [])
            let id = "chatcmpl-mock-" + request.requestID
            let usage = Usage(inputTokens: MockExchange.countTokens(body["messages"]?.jsonText ?? ""),
                              outputTokens: MockExchange.countTokens(reply))
            guard request.isStreaming else {
                upstream.setHeader("content-type", "application/json")
                upstream.writeBody(OpenAIShapes.chatCompletion(id: id, created: created, model: model, content: reply,
                                                               finishReason: "stop", usage: usage))
                return UpstreamPlan(framing: PRISM_FRAMING_NONE, answeredLocally: true)
            }
            clientWantsUsage = body["stream_options"]?["include_usage"]?.boolValue ?? false
            upstream.setHeader("content-type", "text/event-stream")
            var stream: [UInt8] = []
            func send(_ json: [UInt8]) {
                json.withUnsafeBytes { ServerSentEventWriter.frame($0, into: &stream) }
            }
            send(OpenAIShapes.chunk(id: id, created: created, model: model, role: "assistant", content: ""))
            for piece in MockExchange.pieces(of: reply) {
                send(OpenAIShapes.chunk(id: id, created: created, model: model, content: piece))
            }
            send(OpenAIShapes.chunk(id: id, created: created, model: model, content: nil, finishReason: "stop"))
            send(OpenAIShapes.usageChunk(id: id, created: created, model: model, usage: usage))
            stream.append(contentsOf: ServerSentEventWriter.done)
            upstream.writeBody(stream)
            return UpstreamPlan(framing: PRISM_FRAMING_SSE, answeredLocally: true)
        case "embeddings":
            upstream.setHeader("content-type", "application/json")
            upstream.writeBody(MockExchange.embeddings(body, model: model))
            return UpstreamPlan(framing: PRISM_FRAMING_NONE, answeredLocally: true)
        default:
            throw PluginError.unsupported("the mock provider does not serve \(request.api)")
        }
    }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        try OpenAIRelay.relayResponse(response, client: client)
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        try OpenAIRelay.relayEvent(event, client: client, clientWantsUsage: clientWantsUsage,
                                     state: &relay)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        try relay.finish()
    }

    static func echo(_ messages: [JSONValue]) -> String {
        let lastUser = messages.last { $0["role"]?.stringValue == "user" }
        let text = OpenAIShapes.text(ofContent: lastUser?["content"])
        return text.isEmpty ? "Hello from Prism's mock provider." : "Hello from Prism's mock provider. You said: \(text)"
    }

    /// Roughly one token per four bytes, at least one: the mock's stand-in for a tokenizer.
    static func countTokens(_ text: String) -> UInt64 { UInt64(max(1, (text.utf8.count + 3) / 4)) }

    /// Word-sized pieces, spaces kept, so the concatenated deltas equal the reply.
    static func pieces(of text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            if character == " ", !current.isEmpty {
                pieces.append(current)
                current = ""
            }
            current.append(character)
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// Deterministic 8-dimension vectors derived from each input's bytes.
    static func embeddings(_ body: JSONValue, model: String) -> [UInt8] {
        let inputs: [String]
        if let single = body["input"]?.stringValue {
            inputs = [single]
        } else {
            inputs = (body["input"]?.arrayValue ?? []).map { $0.stringValue ?? $0.jsonText }
        }
        var writer = JSONWriter()
        writer.beginObject()
        writer.string("object", "list")
        writer.key("data")
        writer.beginArray()
        var tokens: UInt64 = 0
        for (index, input) in inputs.enumerated() {
            tokens += countTokens(input)
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            writer.beginObject()
            writer.string("object", "embedding")
            writer.integer("index", Int64(index))
            writer.key("embedding")
            writer.beginArray()
            for dimension in 0..<8 {
                for byte in input.utf8 { hash = (hash ^ UInt64(byte) ^ UInt64(dimension)) &* 0x100_0000_01b3 }
                writer.number(Double(hash % 2000) / 1000.0 - 1.0)
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.string("model", model)
        writer.key("usage")
        writer.beginObject()
        writer.integer("prompt_tokens", Int64(tokens))
        writer.integer("total_tokens", Int64(tokens))
        writer.endObject()
        writer.endObject()
        return writer.bytes
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.mock", version: "1.0.0",
                       components: [.provider("mock", MockProvider.self)])
}
