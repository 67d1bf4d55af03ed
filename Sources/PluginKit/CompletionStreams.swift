import PrismWire

// Converting between a streamed chat answer and a whole one: a cache stores whole answers and
// may have to serve either form.

/// Folds the `chat.completion.chunk` events of one streamed answer into the `chat.completion`
/// a non-streaming request would have received. Handles one choice (index 0); a stream with
/// more choices, or one that never finished, yields nil.
public struct ChatStreamAssembler: Sendable {
    private var id = ""
    private var model = ""
    private var created: Int64 = 0
    private var text = ""
    private var sawText = false
    private var refusal: String?
    private var reasoning: String?
    private var thinkingBlocks: [ThinkingBlock] = []
    private var calls: [(id: String, name: String, arguments: String)] = []
    private var finishReason: String?
    private var usage = Usage()
    private var unsupported = false

    public init() {}

    /// One event's JSON (without "data: ").
    public mutating func add(_ event: UnsafeRawBufferPointer) {
        guard !unsupported, let chunk = try? CanonicalChunk(event) else { return }
        add(chunk)
    }

    /// One event, already scanned (a dialect that reads it for itself too).
    public mutating func add(_ chunk: CanonicalChunk) {
        guard !unsupported else { return }
        if chunk.hasOtherChoices {
            unsupported = true
            return
        }
        if id.isEmpty, let value = chunk.id { id = value }
        if model.isEmpty, let value = chunk.model { model = value }
        if created == 0, let value = chunk.created { created = value }
        if let value = chunk.usage { usage = value }
        guard chunk.choiceRange != nil else { return }
        if let reason = chunk.finishReason { finishReason = reason }
        if let content = chunk.content {
            text += content
            sawText = true
        }
        // Appended in place: a long answer must not be copied once per event.
        if let value = chunk.refusal { if refusal == nil { refusal = value } else { refusal?.append(value) } }
        if let value = chunk.reasoning { if reasoning == nil { reasoning = value } else { reasoning?.append(value) } }
        if chunk.thinkingBlocksRange != nil {
            thinkingBlocks += (chunk.value(chunk.thinkingBlocksRange)?.arrayValue ?? []).compactMap(ThinkingBlock.init)
        }
        guard chunk.toolCallsRange != nil else { return }
        for call in chunk.value(chunk.toolCallsRange)?.arrayValue ?? [] {
            let index = Int(call["index"]?.integerValue ?? Int64(calls.count))
            guard index >= 0, index <= calls.count else {
                unsupported = true
                return
            }
            if index == calls.count { calls.append(("", "", "")) }
            if let value = call["id"]?.stringValue { calls[index].id = value }
            if let value = call["function"]?["name"]?.stringValue { calls[index].name += value }
            if let value = call["function"]?["arguments"]?.stringValue { calls[index].arguments += value }
        }
    }

    /// The whole answer, or nil when the stream is not one this assembler can fold.
    public func completion() -> [UInt8]? {
        guard !unsupported, let finishReason else { return nil }
        return ChatCompletion(id: id, model: model, created: created, text: sawText || calls.isEmpty ? text : nil,
                              toolCalls: calls.map { ToolCall(id: $0.id, name: $0.name, arguments: $0.arguments) },
                              finishReason: finishReason, usage: usage, refusal: refusal, reasoning: reasoning,
                              thinkingBlocks: thinkingBlocks).jsonBytes
    }
}

/// Writes a stored `chat.completion` as the SSE stream a streaming request expects: role, text,
/// tool calls (each whole, in one delta), the finish reason, the usage chunk when the client
/// asked for it (`stream_options.include_usage`), then `[DONE]`.
public enum ChatCompletionReplay {
    /// The SSE body, or nil when `completion` is not a one-choice chat.completion.
    public static func streamBody(_ completion: JSONValue, includeUsage: Bool) -> [UInt8]? {
        guard let choices = completion["choices"]?.arrayValue, choices.count == 1,
              let message = choices[0]["message"]
        else { return nil }
        let id = completion["id"]?.stringValue ?? ""
        let created = completion["created"]?.integerValue ?? 0
        let model = completion["model"]?.stringValue ?? ""
        var body: [UInt8] = []
        func send(_ chunk: [UInt8]) { chunk.withUnsafeBytes { ServerSentEventWriter.frame($0, into: &body) } }
        func chunk(finishReason: String? = nil, _ delta: (inout JSONWriter) -> Void) -> [UInt8] {
            OpenAIShapes.chunkBytes(id: id, created: created, model: model, finishReason: finishReason, delta: delta)
        }
        send(chunk { writer in
            writer.string("role", "assistant")
            writer.string("content", "")
        })
        if let reasoning = message["reasoning_content"]?.stringValue, !reasoning.isEmpty {
            send(chunk { $0.string("reasoning_content", reasoning) })
        }
        for block in (message["thinking_blocks"]?.arrayValue ?? []).compactMap(ThinkingBlock.init) {
            send(chunk { ChatStreamWriter.writeThinkingBlock(&$0, block) })
        }
        if let text = message["content"]?.stringValue, !text.isEmpty {
            send(chunk { $0.string("content", text) })
        }
        if let refusal = message["refusal"]?.stringValue, !refusal.isEmpty {
            send(chunk { $0.string("refusal", refusal) })
        }
        for (index, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
            send(chunk { writer in
                ChatStreamWriter.writeToolCallStart(&writer, index: index, id: call["id"]?.stringValue ?? "",
                                                    name: call["function"]?["name"]?.stringValue ?? "",
                                                    arguments: call["function"]?["arguments"]?.stringValue ?? "")
            })
        }
        send(chunk(finishReason: choices[0]["finish_reason"]?.stringValue ?? "stop") { _ in })
        if includeUsage, let usage = completion["usage"], !usage.isNull {
            send(OpenAIShapes.usageChunk(id: id, created: created, model: model, usage: Usage(openAI: usage)))
        }
        body.append(contentsOf: ServerSentEventWriter.done)
        return body
    }
}

extension Usage {
    /// From an OpenAI `usage` object.
    public init(openAI usage: JSONValue) {
        self.init(inputTokens: UInt64(max(0, usage["prompt_tokens"]?.integerValue ?? 0)),
                  outputTokens: UInt64(max(0, usage["completion_tokens"]?.integerValue ?? 0)),
                  cachedInputTokens: UInt64(max(0, usage["prompt_tokens_details"]?["cached_tokens"]?.integerValue ?? 0)),
                  cacheWriteTokens: UInt64(max(0, usage["cache_creation_input_tokens"]?.integerValue ?? 0)),
                  reasoningTokens: UInt64(max(0, usage["completion_tokens_details"]?["reasoning_tokens"]?.integerValue ?? 0)))
    }
}
