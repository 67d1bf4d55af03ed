import PluginKit
import PrismWire

/// OpenAI embeddings ⇄ Bedrock InvokeModel for embedding models. The ABI sends one upstream
/// request per attempt, so a model that embeds one text per call takes one input per request.
struct BedrockEmbeddings: Sendable {
    enum Family: Sendable {
        /// amazon.titan-embed-text-v2: {inputText, dimensions?, normalize} → {embedding, inputTextTokenCount}.
        case titanV2
        /// amazon.titan-embed-text-v1 / g1: {inputText} only.
        case titanV1
        /// cohere.embed-*: {texts, input_type} → {embeddings: [[...]]}; several inputs per call.
        case cohere
    }

    let family: Family
    let request: EmbeddingRequest
    let model: String
    let body: [UInt8]

    init(_ request: EmbeddingRequest, model: String) throws(PluginError) {
        self.request = request
        self.model = model
        if model.contains("titan-embed-text-v2") {
            family = .titanV2
        } else if model.contains("titan-embed") {
            family = .titanV1
        } else if model.contains("cohere.embed") {
            family = .cohere
        } else {
            throw PluginError.invalidRequest("The bedrock provider embeds with Amazon Titan Text Embeddings (amazon.titan-embed-text-*) and Cohere Embed (cohere.embed-*) models; `\(model)` is neither.",
                                             code: "unsupported_model")
        }
        var writer = JSONWriter(capacity: 96 + request.inputs.reduce(0) { $0 + $1.utf8.count + 8 })
        writer.beginObject()
        switch family {
        case .titanV2, .titanV1:
            guard request.inputs.count == 1 else {
                throw PluginError.invalidRequest("Titan embedding models on Bedrock embed one text per request: send `input` as one string (this request has \(request.inputs.count)).",
                                                 code: "unsupported_parameter")
            }
            writer.string("inputText", request.inputs[0])
            if family == .titanV2 {
                if let dimensions = request.dimensions { writer.integer("dimensions", Int64(dimensions)) }
                writer.bool("normalize", true)
            } else if request.dimensions != nil {
                throw PluginError.invalidRequest("`dimensions` needs amazon.titan-embed-text-v2 (256, 512 or 1024).",
                                                 code: "unsupported_parameter")
            }
        case .cohere:
            writer.key("texts")
            writer.beginArray()
            for input in request.inputs { writer.string(input) }
            writer.endArray()
            writer.string("input_type", "search_document")
        }
        writer.endObject()
        body = writer.bytes
    }

    func translate(_ body: UnsafeRawBufferPointer, client: HTTPBuilder) throws(PluginError) -> Usage {
        let answer: JSONValue
        do {
            answer = try JSONValue.parse(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "Bedrock sent an invalid JSON answer: \(error.reason)")
        }
        var vectors: [[Double]] = []
        var tokens: UInt64 = 0
        switch family {
        case .titanV2, .titanV1:
            guard let values = answer["embedding"]?.arrayValue else {
                throw PluginError.upstream(status: 502, message: "the Titan answer has no `embedding`")
            }
            vectors = [values.map { $0.doubleValue ?? 0 }]
            tokens = UInt64(clamping: answer["inputTextTokenCount"]?.integerValue ?? 0)
        case .cohere:
            // `embeddings` is a list of vectors, or {"float": [...]} when embedding types were requested.
            let list = answer["embeddings"]?.arrayValue ?? answer["embeddings"]?["float"]?.arrayValue ?? []
            vectors = list.map { ($0.arrayValue ?? []).map { $0.doubleValue ?? 0 } }
        }
        guard vectors.count == request.inputs.count else {
            throw PluginError.upstream(status: 502,
                                       message: "the embeddings answer has \(vectors.count) vectors for \(request.inputs.count) inputs")
        }
        EmbeddingResponse.write(vectors: vectors, model: model, promptTokens: tokens,
                                encodingFormat: request.encodingFormat, to: client)
        return Usage(inputTokens: tokens)
    }
}
