import PluginKit
import PrismWire

/// OpenAI embeddings ⇄ Gemini `batchEmbedContents` (AI Studio) or Vertex `predict`.
enum GeminiEmbeddings {
    static func requestBody(_ request: EmbeddingRequest, model: String, flavor: GeminiEndpoint.Flavor) -> [UInt8] {
        var name = Substring(model)
        if name.hasPrefix("models/") { name = name.dropFirst(7) }
        var writer = JSONWriter(capacity: 128 + request.inputs.reduce(0) { $0 + $1.utf8.count + 64 })
        writer.beginObject()
        switch flavor {
        case .gemini:
            // {requests:[{model:"models/{m}", content:{parts:[{text}]}, outputDimensionality?}]}
            writer.key("requests")
            writer.beginArray()
            for input in request.inputs {
                writer.beginObject()
                writer.string("model", "models/" + name)
                writer.key("content")
                writer.beginObject()
                writer.key("parts")
                writer.beginArray()
                writer.beginObject()
                writer.string("text", input)
                writer.endObject()
                writer.endArray()
                writer.endObject()
                if let dimensions = request.dimensions { writer.integer("outputDimensionality", Int64(dimensions)) }
                writer.endObject()
            }
            writer.endArray()
        case .vertex:
            // {instances:[{content}], parameters:{outputDimensionality?}}
            writer.key("instances")
            writer.beginArray()
            for input in request.inputs {
                writer.beginObject()
                writer.string("content", input)
                writer.endObject()
            }
            writer.endArray()
            if let dimensions = request.dimensions {
                writer.key("parameters")
                writer.beginObject()
                writer.integer("outputDimensionality", Int64(dimensions))
                writer.endObject()
            }
        }
        writer.endObject()
        return writer.bytes
    }

    /// Gemini answers `{embeddings:[{values}]}` (no token counts: usage is 0); Vertex answers
    /// `{predictions:[{embeddings:{values, statistics:{token_count}}}]}`.
    static func translate(_ body: JSONValue, request: EmbeddingRequest, model: String, flavor: GeminiEndpoint.Flavor,
                          client: HTTPBuilder) throws(PluginError) -> Usage
    {
        var vectors: [[Double]] = []
        var tokens: UInt64 = 0
        let items: [JSONValue]
        switch flavor {
        case .gemini: items = body["embeddings"]?.arrayValue ?? []
        case .vertex: items = (body["predictions"]?.arrayValue ?? []).map { $0["embeddings"] ?? .null }
        }
        for item in items {
            guard let values = item["values"]?.arrayValue else {
                throw PluginError.upstream(status: 502, message: "the embeddings answer has an entry without `values`")
            }
            vectors.append(values.map { $0.doubleValue ?? 0 })
            if let count = item["statistics"]?["token_count"] {
                tokens += UInt64(clamping: count.integerValue ?? Int64(count.doubleValue ?? 0))
            }
        }
        guard vectors.count == request.inputs.count else {
            throw PluginError.upstream(status: 502,
                                       message: "the embeddings answer has \(vectors.count) vectors for \(request.inputs.count) inputs")
        }
        var name = Substring(model)
        if name.hasPrefix("models/") { name = name.dropFirst(7) }
        EmbeddingResponse.write(vectors: vectors, model: String(name), promptTokens: tokens,
                                encodingFormat: request.encodingFormat, to: client)
        return Usage(inputTokens: tokens)
    }
}
