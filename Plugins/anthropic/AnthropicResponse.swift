import PluginKit
import PrismPluginABI
import PrismWire

/// Anthropic answers → OpenAI answers: whole messages, streams and errors.
enum AnthropicResponse {
    /// `stop_reason` → OpenAI `finish_reason`.
    static func finishReason(_ stopReason: String?, toolCalls: Int) -> String {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": return "length"
        // A tool_use stop whose only call was the JSON answer tool is a plain answer.
        case "tool_use": return toolCalls > 0 ? "tool_calls" : "stop"
        case "refusal": return "content_filter"
        default: return "stop" // end_turn, stop_sequence, pause_turn
        }
    }

    /// Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's prompt_tokens
    /// includes both, with the reads also reported as cached tokens.
    static func usage(_ usage: JSONFields, into result: inout Usage) {
        let input = usage.integer("input_tokens")
        let written = usage.integer("cache_creation_input_tokens")
        let read = usage.integer("cache_read_input_tokens")
        if input != nil || written != nil || read != nil {
            let write = UInt64(clamping: written ?? 0), cached = UInt64(clamping: read ?? 0)
            result.inputTokens = UInt64(clamping: input ?? 0) + write + cached
            result.cachedInputTokens = cached
            result.cacheWriteTokens = write
        }
        if let output = usage.integer("output_tokens") { result.outputTokens = UInt64(clamping: output) }
    }

    /// A whole `message` → `chat.completion`.
    static func completion(_ body: UnsafeRawBufferPointer, fallbackModel: String, created: Int64,
                           answerTool: Bool) throws(PluginError) -> ChatCompletion
    {
        let message: JSONFields
        do {
            message = try JSONFields(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "the upstream answer is not valid JSON: \(error.reason)")
        }
        // A 200 that is not a message (an error object, another API's answer) is no answer: the
        // gateway fails over instead of presenting an empty completion as a success.
        guard message.string("type") == "message" || message.value("content")?.arrayValue != nil else {
            throw PluginError.upstream(status: 502, message: "the upstream answered 200 with something that is not a message"
                + (message.object("error")?.string("message").map { ": \($0)" } ?? ""))
        }
        var text = ""
        var sawText = false
        var calls: [ToolCall] = []
        var reasoning: String?
        var thinking: [ThinkingBlock] = []
        for block in message.objects("content") {
            switch block.string("type") {
            case "thinking":
                let text = block.string("thinking") ?? ""
                reasoning = (reasoning ?? "") + text
                thinking.append(.thinking(text: text, signature: block.string("signature")))
            case "redacted_thinking":
                thinking.append(.redacted(data: block.string("data") ?? ""))
            case "text":
                text += block.string("text") ?? ""
                sawText = true
            case "tool_use":
                let name = block.string("name") ?? ""
                let input = block.value("input")?.jsonText ?? "{}"
                if answerTool && name == AnthropicRequest.answerToolName {
                    text += input
                    sawText = true
                } else {
                    calls.append(ToolCall(id: block.string("id") ?? "", name: name, arguments: input))
                }
            default: break // server tool blocks: no OpenAI slot
            }
        }
        var usage = Usage()
        if let fields = message.object("usage") { AnthropicResponse.usage(fields, into: &usage) }
        return ChatCompletion(id: message.string("id") ?? "msg", model: message.string("model") ?? fallbackModel,
                              created: created, text: sawText || calls.isEmpty ? text : nil, toolCalls: calls,
                              finishReason: finishReason(message.string("stop_reason"), toolCalls: calls.count),
                              usage: usage, reasoning: reasoning, thinkingBlocks: thinking)
    }

    /// The HTTP status Anthropic uses for each error type; it decides the OpenAI type when the
    /// status itself is not telling (an error event mid-stream has none).
    static let statusForType: [String: UInt32] = [
        "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
        "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
        "timeout_error": 504, "overloaded_error": 529,
    ]

    /// `{"type":"error","error":{"type","message"}}` → the OpenAI error the client gets. `status`
    /// is the HTTP status, or nil for an error event inside a 200 stream.
    static func error(status: UInt32?, body: UnsafeRawBufferPointer) -> PluginError {
        let fields = try? JSONFields(body)
        let detail = fields?.object("error")
        let type = detail?.string("type")
        let text = detail?.string("message") ?? String(decoding: body.prefix(512), as: UTF8.self)
        let effective = type.flatMap { statusForType[$0] } ?? status ?? 502
        var error = OpenAIShapes.upstreamError(status: effective, body: [])
        let described = type.map { "\(text) (\($0))" } ?? text
        error.message = status.map { "upstream returned HTTP \($0): \(described)" } ?? "upstream stream failed: \(described)"
        return error
    }
}

/// Translates one Anthropic SSE stream into OpenAI chunks.
struct AnthropicStream {
    enum BlockKind { case text, toolCall, answer, thinking, ignored }

    let includeUsage: Bool
    let answerTool: Bool
    let fallbackModel: String
    let created: Int64
    /// Replaced at message_start, which carries the message id and model.
    private var writer: ChatStreamWriter
    private var blocks: [Int64: BlockKind] = [:]
    /// The text and signature of thinking blocks still streaming, by block index.
    private var thinking: [Int64: (text: String, signature: String?)] = [:]
    private var usage = Usage()
    private var stopReason: String?
    private(set) var stopped = false

    init(includeUsage: Bool, answerTool: Bool, fallbackModel: String, created: Int64) {
        self.includeUsage = includeUsage
        self.answerTool = answerTool
        self.fallbackModel = fallbackModel
        self.created = created
        writer = ChatStreamWriter(id: "msg", model: fallbackModel, created: created)
    }

    mutating func translate(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        let data: JSONFields
        do {
            data = try JSONFields(event.data)
        } catch {
            throw PluginError.upstream(status: 502, message: "upstream sent an invalid stream event: \(error.reason)")
        }
        switch data.string("type") {
        case "message_start":
            let message = data.object("message")
            let model = message?.string("model") ?? fallbackModel
            writer = ChatStreamWriter(id: message?.string("id") ?? "msg", model: model, created: created)
            client.setResponseModel(model)
            if let fields = message?.object("usage") {
                AnthropicResponse.usage(fields, into: &usage)
                client.reportUsage(usage)
            }
        case "content_block_start":
            guard let index = data.integer("index"), let block = data.object("content_block") else { return }
            switch block.string("type") {
            case "text":
                blocks[index] = .text
                if let text = block.string("text") { writer.text(text, client: client) }
            case "tool_use":
                let name = block.string("name") ?? ""
                if answerTool && name == AnthropicRequest.answerToolName {
                    blocks[index] = .answer
                } else {
                    blocks[index] = .toolCall
                    writer.startToolCall(key: String(index), id: block.string("id") ?? "", name: name, client: client)
                }
            case "thinking":
                // Streamed as reasoning_content; the whole signed block follows at its stop.
                blocks[index] = .thinking
                let text = block.string("thinking") ?? ""
                thinking[index] = (text, block.string("signature"))
                writer.reasoning(text, client: client)
            case "redacted_thinking":
                blocks[index] = .ignored
                writer.thinkingBlock(.redacted(data: block.string("data") ?? ""), client: client)
            default:
                blocks[index] = .ignored // server tools: no OpenAI slot
            }
        case "content_block_delta":
            guard let index = data.integer("index"), let delta = data.object("delta") else { return }
            switch (blocks[index], delta.string("type")) {
            case (.text?, "text_delta"):
                writer.text(delta.string("text") ?? "", client: client)
            case (.toolCall?, "input_json_delta"):
                writer.toolArguments(key: String(index), fragment: delta.string("partial_json") ?? "", client: client)
            case (.answer?, "input_json_delta"):
                writer.text(delta.string("partial_json") ?? "", client: client)
            case (.thinking?, "thinking_delta"):
                let text = delta.string("thinking") ?? ""
                thinking[index]?.text += text
                writer.reasoning(text, client: client)
            case (.thinking?, "signature_delta"):
                let signature = thinking[index]?.signature ?? ""
                thinking[index]?.signature = signature + (delta.string("signature") ?? "")
            default: break // citation deltas
            }
        case "content_block_stop":
            guard let index = data.integer("index"), let block = thinking.removeValue(forKey: index) else { return }
            writer.thinkingBlock(.thinking(text: block.text, signature: block.signature), client: client)
        case "message_delta":
            if let reason = data.object("delta")?.string("stop_reason") { stopReason = reason }
            if let fields = data.object("usage") { AnthropicResponse.usage(fields, into: &usage) }
            client.reportUsage(usage)
            if stopReason != nil {
                writer.finish(reason: AnthropicResponse.finishReason(stopReason, toolCalls: writer.toolCallCount), client: client)
            }
        case "message_stop":
            stopped = true
            writer.finish(reason: AnthropicResponse.finishReason(stopReason, toolCalls: writer.toolCallCount), client: client)
            writer.usage(usage, includeChunk: includeUsage, client: client)
        case "error":
            throw AnthropicResponse.error(status: nil, body: event.data)
        default:
            break // ping, and event types added later
        }
    }
}
