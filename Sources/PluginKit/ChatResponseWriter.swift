import PrismWire

/// Emits OpenAI `chat.completion.chunk` events for a translated stream, keeping the state OpenAI
/// clients rely on: the role arrives once, first; each tool call gets an `index` in order of
/// appearance, and its first delta carries `id`, `type` and `function.name` with empty arguments,
/// later deltas only argument fragments; `finish_reason` arrives once, in a chunk of its own; the
/// usage-only chunk comes last, and only when the client asked for it.
public struct ChatStreamWriter: Sendable {
    public let id: String
    public private(set) var model: String
    public let created: Int64
    private var roleSent = false
    private var finishSent = false
    /// Upstream tool-call keys (block index, call id, ...) to OpenAI tool-call indices.
    private var toolIndices: [String: Int] = [:]
    public private(set) var toolCallCount = 0

    public init(id: String, model: String, created: Int64) {
        self.id = id
        self.model = model
        self.created = created
    }

    public mutating func setModel(_ model: String) { self.model = model }

    /// A text delta (nothing is sent for empty text, except the first role chunk).
    public mutating func text(_ text: String, client: StreamSink) {
        guard !text.isEmpty else { return }
        emit(client) { writer in
            writer.string("content", text)
        }
    }

    /// A reasoning delta, sent as `delta.reasoning_content` (nothing for empty text).
    public mutating func reasoning(_ text: String, client: StreamSink) {
        guard !text.isEmpty else { return }
        emit(client) { writer in
            writer.string("reasoning_content", text)
        }
    }

    /// A whole reasoning block with its signature, sent once the upstream has finished it as
    /// `delta.thinking_blocks: [block]`: a client keeps every such block, in order, on the
    /// assistant message it assembles, and sends them back with it.
    public mutating func thinkingBlock(_ block: ThinkingBlock, client: StreamSink) {
        emit(client) { writer in ChatStreamWriter.writeThinkingBlock(&writer, block) }
    }

    /// The delta member that carries one whole reasoning block.
    static func writeThinkingBlock(_ writer: inout JSONWriter, _ block: ThinkingBlock) {
        writer.key("thinking_blocks")
        writer.beginArray()
        block.write(to: &writer)
        writer.endArray()
    }

    /// Starts a tool call; `key` identifies it in the upstream stream (e.g. a content block index).
    /// Returns the OpenAI index it got.
    @discardableResult
    public mutating func startToolCall(key: String, id callID: String, name: String, client: StreamSink) -> Int {
        let index = toolCallCount
        toolIndices[key] = index
        toolCallCount += 1
        emit(client) { writer in
            ChatStreamWriter.writeToolCallStart(&writer, index: index, id: callID, name: name, arguments: "")
        }
        return index
    }

    /// The delta members that start tool call `index` (`arguments` may already be whole).
    static func writeToolCallStart(_ writer: inout JSONWriter, index: Int, id: String, name: String, arguments: String) {
        writer.key("tool_calls")
        writer.beginArray()
        writer.beginObject()
        writer.integer("index", Int64(index))
        writer.string("id", id)
        writer.string("type", "function")
        writer.key("function")
        writer.beginObject()
        writer.string("name", name)
        writer.string("arguments", arguments)
        writer.endObject()
        writer.endObject()
        writer.endArray()
    }

    /// An argument fragment for the tool call started with `key`; ignored for an unknown key.
    public mutating func toolArguments(key: String, fragment: String, client: StreamSink) {
        guard let index = toolIndices[key], !fragment.isEmpty else { return }
        emit(client) { writer in
            writer.key("tool_calls")
            writer.beginArray()
            writer.beginObject()
            writer.integer("index", Int64(index))
            writer.key("function")
            writer.beginObject()
            writer.string("arguments", fragment)
            writer.endObject()
            writer.endObject()
            writer.endArray()
        }
    }

    /// The chunk with `finish_reason` (sent at most once).
    public mutating func finish(reason: String, client: StreamSink) {
        guard !finishSent else { return }
        finishSent = true
        ensureRole(client)
        client.emit(chunk(finishReason: reason) { _ in })
    }

    public var finished: Bool { finishSent }

    /// Reports usage to the host, and sends OpenAI's usage-only chunk when the client asked.
    public func usage(_ usage: Usage, includeChunk: Bool, client: StreamSink) {
        client.reportUsage(usage)
        if includeChunk { client.emit(OpenAIShapes.usageChunk(id: id, created: created, model: model, usage: usage)) }
    }

    private mutating func ensureRole(_ client: StreamSink) {
        guard !roleSent else { return }
        roleSent = true
        client.emit(chunk(finishReason: nil) { writer in
            writer.string("role", "assistant")
            writer.string("content", "")
        })
    }

    private mutating func emit(_ client: StreamSink, delta: (inout JSONWriter) -> Void) {
        ensureRole(client)
        client.emit(chunk(finishReason: nil, delta: delta))
    }

    private func chunk(finishReason: String?, delta: (inout JSONWriter) -> Void) -> [UInt8] {
        OpenAIShapes.chunkBytes(id: id, created: created, model: model, finishReason: finishReason, delta: delta)
    }
}

/// A whole translated answer, written as an OpenAI `chat.completion`.
public struct ChatCompletion: Sendable {
    public var id: String
    public var model: String
    public var created: Int64
    public var text: String?
    public var toolCalls: [ToolCall] = []
    public var finishReason: String
    public var usage: Usage
    /// Refusal text, when the provider reports one.
    public var refusal: String?
    /// The model's reasoning text (`message.reasoning_content`), when the provider returns it.
    public var reasoning: String?
    /// The reasoning blocks with their signatures (`message.thinking_blocks`), to be sent back.
    public var thinkingBlocks: [ThinkingBlock]

    public init(id: String, model: String, created: Int64, text: String?, toolCalls: [ToolCall] = [],
                finishReason: String, usage: Usage, refusal: String? = nil, reasoning: String? = nil,
                thinkingBlocks: [ThinkingBlock] = [])
    {
        self.reasoning = reasoning
        self.thinkingBlocks = thinkingBlocks
        self.id = id
        self.model = model
        self.created = created
        self.text = text
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
        self.refusal = refusal
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 320 + (text?.utf8.count ?? 0))
        writer.beginObject()
        writer.string("id", id)
        writer.string("object", "chat.completion")
        writer.integer("created", created)
        writer.string("model", model)
        writer.key("choices")
        writer.beginArray()
        writer.beginObject()
        writer.integer("index", 0)
        writer.key("message")
        writer.beginObject()
        writer.string("role", "assistant")
        writer.optionalString("content", text)
        writer.optionalString("refusal", refusal)
        if let reasoning { writer.string("reasoning_content", reasoning) }
        if !thinkingBlocks.isEmpty {
            writer.key("thinking_blocks")
            writer.beginArray()
            for block in thinkingBlocks { block.write(to: &writer) }
            writer.endArray()
        }
        if !toolCalls.isEmpty {
            writer.key("tool_calls")
            writer.beginArray()
            for call in toolCalls {
                writer.beginObject()
                writer.string("id", call.id)
                writer.string("type", "function")
                writer.key("function")
                writer.beginObject()
                writer.string("name", call.name)
                writer.string("arguments", call.arguments)
                writer.endObject()
                writer.endObject()
            }
            writer.endArray()
        }
        writer.endObject()
        writer.key("logprobs")
        writer.null()
        writer.string("finish_reason", finishReason)
        writer.endObject()
        writer.endArray()
        writer.key("usage")
        OpenAIShapes.writeUsage(usage, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    /// Writes this answer to the client builder (200, JSON).
    public func write(to client: HTTPBuilder) {
        client.setStatus(200)
        client.setHeader("content-type", "application/json")
        client.writeBody(jsonBytes)
    }
}

/// OpenAI's embeddings list, from vectors a provider returned.
public enum EmbeddingResponse {
    /// `encodingFormat` "base64" packs each vector as little-endian float32, as OpenAI does.
    public static func write(vectors: [[Double]], model: String, promptTokens: UInt64, encodingFormat: String,
                             to client: HTTPBuilder)
    {
        var writer = JSONWriter(capacity: 64 + vectors.reduce(0) { $0 + $1.count * 12 })
        writer.beginObject()
        writer.string("object", "list")
        writer.key("data")
        writer.beginArray()
        for (index, vector) in vectors.enumerated() {
            writer.beginObject()
            writer.string("object", "embedding")
            writer.integer("index", Int64(index))
            writer.key("embedding")
            if encodingFormat == "base64" {
                writer.string(base64Float32(vector))
            } else {
                writer.beginArray()
                for value in vector { writer.number(value) }
                writer.endArray()
            }
            writer.endObject()
        }
        writer.endArray()
        writer.string("model", model)
        writer.key("usage")
        writer.beginObject()
        writer.integer("prompt_tokens", Int64(clamping: promptTokens))
        writer.integer("total_tokens", Int64(clamping: promptTokens))
        writer.endObject()
        writer.endObject()
        client.setStatus(200)
        client.setHeader("content-type", "application/json")
        client.writeBody(writer.bytes)
    }

    package static func base64Float32(_ vector: [Double]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            let bits = Float(value).bitPattern
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 16))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 24))
        }
        return Base64.encode(bytes)
    }
}

/// Standard base64 (RFC 4648) without Foundation.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 2 < bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(alphabet[Int(value >> 6 & 63)])
            output.append(alphabet[Int(value & 63)])
            index += 3
        }
        let remaining = bytes.count - index
        if remaining > 0 {
            var value = UInt32(bytes[index]) << 16
            if remaining == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(remaining == 2 ? alphabet[Int(value >> 6 & 63)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
        }
        return String(decoding: output, as: UTF8.self)
    }
}
