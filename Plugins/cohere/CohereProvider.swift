import PluginKit
import PrismPluginABI
import PrismWire

/// Cohere's v2 API (`/v2/chat`, `/v2/embed`), translated to and from OpenAI's format.
///
/// Configuration: `api_key` (sent as `Authorization: Bearer`), `base_url` (default
/// https://api.cohere.com, with or without `/v2`), `headers` (extra headers).
final class CohereProvider: ProviderAdapter {
    static let configurationKeys: [String]? = []
    let modelPatterns = ["command", "command-*", "embed-*", "c4ai-*"]

    let baseURL: String
    let authorization: String?
    let extraHeaders: [(String, String)]
    let host: PluginHost

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        var base = configuration["base_url"]?.stringValue ?? ""
        if base.isEmpty { base = "https://api.cohere.com" }
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v2") || base.hasSuffix("/v1") { base.removeLast(3) }
        baseURL = base
        let key = configuration["api_key"]?.stringValue ?? ""
        authorization = key.isEmpty ? nil : "Bearer \(key)"
        extraHeaders = (configuration["headers"]?.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { (name.lowercased(), $0) }
        }
        host.log(.info, "provider '\(instanceName)' (cohere) -> \(baseURL)")
    }

    func makeExchange() -> any ProviderExchange { CohereExchange(provider: self) }
}

final class CohereExchange: ProviderExchange {
    let provider: CohereProvider
    var model = ""
    var embeddings: EmbeddingRequest?
    var stream: CohereStream?

    init(provider: CohereProvider) { self.provider = provider }

    var created: Int64 { Int64(provider.host.wallClockMilliseconds / 1000) }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        model = request.model
        let body: [UInt8]
        let path: String
        var streaming = false
        switch request.api {
        case "chat.completions":
            let chat = try ChatRequest.parse(request.body)
            streaming = request.isStreaming
            body = try CohereChatRequest.body(chat, model: model, stream: streaming, sizeHint: request.body.count)
            if streaming { stream = CohereStream(includeUsage: chat.includeUsage, model: model, created: created) }
            path = "/v2/chat"
        case "embeddings":
            let parsed = try EmbeddingRequest.parse(request.body)
            body = try CohereEmbed.body(parsed, model: model, clientBody: request.body)
            embeddings = parsed
            path = "/v2/embed"
        default:
            throw PluginError.unsupported("The cohere provider does not serve \(request.api).")
        }
        upstream.setMethod("POST")
        upstream.setURL(provider.baseURL + path)
        upstream.setHeader("content-type", "application/json")
        if let authorization = provider.authorization { upstream.setHeader("authorization", authorization) }
        for (name, value) in provider.extraHeaders { upstream.setHeader(name, value) }
        upstream.writeBody(body)
        return streaming ? .serverSentEvents : .notStreaming
    }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        if let embeddings {
            return try CohereEmbed.translate(response.body, request: embeddings, model: model, client: client)
        }
        let completion = try CohereChatResponse.completion(response.body, model: model, created: created)
        completion.write(to: client)
        return completion.usage
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        guard stream != nil else { throw PluginError.internalError("a stream event arrived for a non-streaming request") }
        try stream!.translate(event, client: client)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        // Every complete Cohere stream ends with message-end; without it the answer was cut.
        guard stream?.ended == true else {
            throw PluginError.upstream(status: 502, message: "the upstream stream ended before message-end")
        }
    }

    /// Cohere's error body is `{"message": ...}`; 498 is its invalid-token status.
    func translateError(_ response: PluginResponse) -> PluginError {
        let body = Array(response.body)
        var error = OpenAIShapes.upstreamError(status: response.status == 498 ? 401 : response.status, body: body)
        if response.status == 498 {
            error.message = "upstream returned HTTP 498: " + (OpenAIErrorBody.message(in: body) ?? "invalid token")
        }
        return error
    }
}

/// OpenAI embeddings ↔ Cohere `/v2/embed`.
enum CohereEmbed {
    /// Cohere takes at most this many texts per call.
    static let maximumTexts = 96

    /// `input_type` is Cohere's own (required) field; a client may send it as an extension field,
    /// else documents are assumed.
    static func body(_ request: EmbeddingRequest, model: String, clientBody: UnsafeRawBufferPointer) throws(PluginError) -> [UInt8] {
        guard request.inputs.count <= maximumTexts else {
            throw PluginError.invalidRequest("The cohere provider embeds at most \(maximumTexts) inputs per request; this one has \(request.inputs.count).",
                                             code: "too_many_inputs")
        }
        if request.dimensions != nil, model.contains("-v3") {
            throw PluginError.invalidRequest("`dimensions` is not supported by Cohere's v3 embedding models (their size is fixed); use embed-v4.0 or leave it out.",
                                             code: "unsupported_parameter")
        }
        let fields = try? JSONFields(clientBody)
        var writer = JSONWriter(capacity: 128 + request.inputs.reduce(0) { $0 + $1.utf8.count + 4 })
        writer.beginObject()
        writer.string("model", model)
        writer.key("texts")
        writer.beginArray()
        for input in request.inputs { writer.string(input) }
        writer.endArray()
        writer.string("input_type", fields?.string("input_type") ?? "search_document")
        writer.key("embedding_types")
        writer.beginArray()
        writer.string("float")
        writer.endArray()
        if let dimensions = request.dimensions { writer.integer("output_dimension", Int64(dimensions)) }
        writer.endObject()
        return writer.bytes
    }

    static func translate(_ body: UnsafeRawBufferPointer, request: EmbeddingRequest, model: String,
                          client: HTTPBuilder) throws(PluginError) -> Usage
    {
        let answer: JSONValue
        do {
            answer = try JSONValue.parse(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "the upstream answer is not valid JSON: \(error.reason)")
        }
        // embeddings_by_type: {"float": [[...]]}; the older embeddings_floats: [[...]].
        let lists = answer["embeddings"]?["float"]?.arrayValue ?? answer["embeddings"]?.arrayValue
        guard let lists else {
            throw PluginError.upstream(status: 502, message: "the upstream answer has no float embeddings")
        }
        let vectors = lists.map { ($0.arrayValue ?? []).map { $0.doubleValue ?? 0 } }
        let tokens = UInt64(clamping: answer["meta"]?["billed_units"]?["input_tokens"]?.integerValue ?? 0)
        EmbeddingResponse.write(vectors: vectors, model: model, promptTokens: tokens,
                                encodingFormat: request.encodingFormat, to: client)
        return Usage(inputTokens: tokens)
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.cohere", version: "1.0.0",
                       components: [.provider("cohere", CohereProvider.self)])
}
