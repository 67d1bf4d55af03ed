import PluginKit
import PrismWire

/// OpenAI chat request → Anthropic Messages request body. docs/provider-mapping/anthropic.md is
/// the field-by-field table this code implements.
struct AnthropicRequest {
    /// Anthropic requires `max_tokens`; this is sent when the client gives neither `max_tokens` nor
    /// `max_completion_tokens`.
    static let defaultMaxTokens = 4096
    /// The tool a `response_format` JSON answer is forced through; its input becomes the content.
    static let answerToolName = "json_response"

    var bytes: [UInt8] = []
    /// True when the answer comes through the `json_response` tool (response_format).
    var usesAnswerTool = false

    /// `sizeHint`: the client body's size, which the translation comes close to.
    init(_ request: ChatRequest, model: String, stream: Bool, sizeHint: Int) throws(PluginError) {
        if let count = request.candidateCount, count > 1 {
            throw PluginError.invalidRequest("The anthropic provider returns one choice: `n` must be 1.", code: "unsupported_parameter")
        }
        let turns = try AnthropicRequest.turns(request.messages)
        let thinking = try AnthropicRequest.thinking(request)
        var answerSchema: JSONValue?
        switch request.responseFormat {
        case let .jsonSchema(_, schema, _)?: answerSchema = schema.asObjectSchema
        case .jsonObject?: answerSchema = .object([("type", .string("object"))])
        default: break
        }
        if answerSchema != nil, request.tools.contains(where: { $0.name == AnthropicRequest.answerToolName }) {
            throw PluginError.invalidRequest("A tool named `\(AnthropicRequest.answerToolName)` cannot be combined with `response_format` on the anthropic provider: that name carries the JSON answer.",
                                             code: "unsupported_parameter")
        }
        usesAnswerTool = answerSchema != nil

        var writer = JSONWriter(capacity: sizeHint + 256)
        writer.beginObject()
        writer.string("model", model)
        writer.integer("max_tokens", Int64(thinking?.maxTokens ?? request.maxTokens ?? AnthropicRequest.defaultMaxTokens))
        AnthropicRequest.writeSystem(request, to: &writer)
        writer.key("messages")
        writer.beginArray()
        for turn in turns { turn.write(to: &writer) }
        writer.endArray()
        AnthropicRequest.writeTools(request, answerSchema: answerSchema, to: &writer)
        if let temperature = request.temperature { writer.key("temperature"); writer.number(min(max(temperature, 0), 1)) }
        if let topP = request.topP { writer.key("top_p"); writer.number(topP) }
        if let topK = request.topK { writer.integer("top_k", Int64(topK)) }
        // Anthropic refuses empty and whitespace-only stop sequences.
        let stops = request.stop.filter { !AnthropicRequest.isBlank($0) }
        if !stops.isEmpty {
            writer.key("stop_sequences")
            writer.beginArray()
            for stop in stops { writer.string(stop) }
            writer.endArray()
        }
        // Anthropic's metadata takes only `user_id`: the client's own, else OpenAI's `user`.
        if let user = request.body["metadata"]?["user_id"]?.stringValue ?? request.user, !user.isEmpty {
            writer.key("metadata")
            writer.beginObject()
            writer.string("user_id", user)
            writer.endObject()
        }
        if let thinking {
            writer.key("thinking")
            thinking.config.write(to: &writer)
        }
        // Anthropic's top-level (automatic) prompt-cache breakpoint.
        if let control = request.body["cache_control"], case .object = control {
            writer.key("cache_control")
            control.write(to: &writer)
        }
        if stream { writer.bool("stream", true) }
        writer.endObject()
        bytes = writer.bytes
    }

    // MARK: Thinking and system

    /// The `thinking` object to send, and the `max_tokens` it needs (nil: the client's, unchanged).
    /// The client's own Anthropic `thinking` wins over `reasoning_effort`, which becomes a budget
    /// (at least Anthropic's 1024; `none` turns thinking off). Anthropic counts thinking inside
    /// `max_tokens` and requires the budget below it, so a limit at or under the budget is raised
    /// to budget + that limit (budget + 4096 without one).
    static func thinking(_ request: ChatRequest) throws(PluginError) -> (config: JSONValue, maxTokens: Int?)? {
        guard let config = try ReasoningEffort.claudeThinking(request) else { return nil }
        let maxTokens = ReasoningEffort.claudeBudget(config).map { budget in
            ReasoningEffort.maxTokens(requested: request.maxTokens, budget: budget, answerTokens: defaultMaxTokens)
        }
        return (config, maxTokens)
    }

    /// `system`: the system and developer messages joined into one string; a list of text blocks
    /// instead when one of them carries `cache_control`, so the breakpoint reaches Anthropic.
    static func writeSystem(_ request: ChatRequest, to writer: inout JSONWriter) {
        let messages = request.messages.filter { $0.role == "system" || $0.role == "developer" }
        guard messages.contains(where: \.hasCacheControl) else {
            let system = request.systemText
            if !system.isEmpty { writer.string("system", system) }
            return
        }
        writer.key("system")
        writer.beginArray()
        for message in messages {
            var blocks: [Block] = []
            for (part, control) in zip(message.content, message.partCacheControls) {
                guard case let .text(text) = part, !text.isEmpty else { continue }
                blocks.append(Block.text(text).cached(control))
            }
            if let last = blocks.indices.last { blocks[last] = blocks[last].cached(message.cacheControl) }
            for block in blocks { block.write(to: &writer) }
        }
        writer.endArray()
    }

    // MARK: Tools

    static func writeTools(_ request: ChatRequest, answerSchema: JSONValue?, to writer: inout JSONWriter) {
        guard !request.tools.isEmpty || answerSchema != nil else { return }
        writer.key("tools")
        writer.beginArray()
        for tool in request.tools {
            writer.beginObject()
            writer.string("name", tool.name)
            if let description = tool.description, !description.isEmpty { writer.string("description", description) }
            writer.key("input_schema")
            tool.parameters.asObjectSchema.write(to: &writer)
            if let control = tool.cacheControl {
                writer.key("cache_control")
                control.write(to: &writer)
            }
            writer.endObject()
        }
        if let answerSchema {
            writer.beginObject()
            writer.string("name", answerToolName)
            writer.string("description", "Answer with a JSON value that matches this schema.")
            writer.key("input_schema")
            answerSchema.write(to: &writer)
            writer.endObject()
        }
        writer.endArray()

        // tool_choice, as Anthropic spells it; with a JSON answer the model must call a tool (the
        // answer tool, or one of the client's when it may).
        var choice: (type: String, name: String?)?
        switch (request.toolChoice, answerSchema != nil) {
        case (.function(let name)?, _): choice = ("tool", name)
        case (ToolChoice.none?, true): choice = ("tool", answerToolName)
        case (_, true): choice = request.tools.isEmpty ? ("tool", answerToolName) : ("any", nil)
        case (.auto?, false): choice = ("auto", nil)
        case (ToolChoice.none?, false): choice = ("none", nil)
        case (.required?, false): choice = ("any", nil)
        case (nil, false): choice = nil
        }
        let disableParallel = request.parallelToolCalls == false
        if choice == nil, disableParallel { choice = ("auto", nil) }
        guard let choice else { return }
        writer.key("tool_choice")
        writer.beginObject()
        writer.string("type", choice.type)
        if let name = choice.name { writer.string("name", name) }
        // Not allowed with type "none" (no tool can be called anyway).
        if disableParallel, choice.type != "none" { writer.bool("disable_parallel_tool_use", true) }
        writer.endObject()
    }

    // MARK: Messages

    enum Block {
        case text(String)
        case image(ImageSource)
        case document(mediaType: String, base64: String)
        case toolUse(id: String, name: String, input: String)
        case toolResult(id: String, content: [Block])
        case thinking(ThinkingBlock)
        /// A block with a prompt-cache breakpoint (`cache_control`).
        indirect case cached(Block, control: JSONValue)

        var isToolResult: Bool {
            switch self {
            case .toolResult: return true
            case let .cached(block, _): return block.isToolResult
            default: return false
            }
        }

        /// This block with `control` as its cache_control (itself when nil).
        func cached(_ control: JSONValue?) -> Block {
            control.map { .cached(self, control: $0) } ?? self
        }

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writeMembers(to: &writer)
            writer.endObject()
        }

        func writeMembers(to writer: inout JSONWriter) {
            switch self {
            case let .text(text):
                writer.string("type", "text")
                writer.string("text", text)
            case let .image(source):
                writer.string("type", "image")
                writer.key("source")
                writer.beginObject()
                switch source {
                case let .inline(mediaType, base64):
                    writer.string("type", "base64")
                    writer.string("media_type", mediaType)
                    writer.string("data", base64)
                case let .remote(url):
                    writer.string("type", "url")
                    writer.string("url", url)
                }
                writer.endObject()
            case let .document(mediaType, base64):
                writer.string("type", "document")
                writer.key("source")
                writer.beginObject()
                writer.string("type", "base64")
                writer.string("media_type", mediaType)
                writer.string("data", base64)
                writer.endObject()
            case let .toolUse(id, name, input):
                writer.string("type", "tool_use")
                writer.string("id", id)
                writer.string("name", name)
                writer.key("input")
                writer.raw(input)
            case let .toolResult(id, content):
                writer.string("type", "tool_result")
                writer.string("tool_use_id", id)
                if content.count == 1, case let .text(text) = content[0] {
                    writer.string("content", text)
                } else if !content.isEmpty {
                    writer.key("content")
                    writer.beginArray()
                    for block in content { block.write(to: &writer) }
                    writer.endArray()
                }
            case let .thinking(.thinking(text, signature)):
                writer.string("type", "thinking")
                writer.string("thinking", text)
                writer.string("signature", signature ?? "") // only signed blocks get here
            case let .thinking(.redacted(data)):
                writer.string("type", "redacted_thinking")
                writer.string("data", data)
            case let .cached(block, control):
                block.writeMembers(to: &writer)
                writer.key("cache_control")
                control.write(to: &writer)
            }
        }
    }

    struct Turn {
        var role: String
        var blocks: [Block]

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writer.string("role", role)
            if blocks.count == 1, case let .text(text) = blocks[0] {
                writer.string("content", text)
            } else {
                writer.key("content")
                writer.beginArray()
                for block in blocks { block.write(to: &writer) }
                writer.endArray()
            }
            writer.endObject()
        }
    }

    /// OpenAI messages → alternating Anthropic turns. System and developer messages are hoisted to
    /// `system`; tool results become `tool_result` blocks of a user turn, ahead of any text in it;
    /// consecutive turns of one role are merged; empty text is dropped (Anthropic refuses it).
    /// An assistant's `thinking_blocks` come first in its turn, as Anthropic requires; a part's
    /// `cache_control` stays on its block, a message's goes on the message's last block.
    static func turns(_ messages: [ChatMessage]) throws(PluginError) -> [Turn] {
        // Unsigned thinking (and bare `reasoning_content`) cannot go back: Anthropic refuses it.
        try ConversationTurns.groupMarked(
            messages, isToolResult: { (block: Block) in block.isToolResult }, thinking: Block.thinking,
            cached: { block, control in block.cached(control) },
            content: { parts, controls, index throws(PluginError) in
                try contentBlocks(parts, cacheControls: controls, index: index)
            },
            toolUse: { call, index, callIndex throws(PluginError) in
                Block.toolUse(id: ToolCall.restrictedID(call.id), name: call.name,
                              input: try call.objectArguments(messageIndex: index, callIndex: callIndex))
            },
            toolResult: { message, index throws(PluginError) in
                Block.toolResult(id: ToolCall.restrictedID(message.toolCallID ?? ""),
                                 content: try contentBlocks(message.content, cacheControls: message.partCacheControls,
                                                            index: index))
            }).map { Turn(role: $0.role, blocks: $0.blocks) }
    }

    static func contentBlocks(_ parts: [ContentPart], cacheControls: [JSONValue?], index: Int) throws(PluginError) -> [Block] {
        var blocks: [Block] = []
        for (position, part) in parts.enumerated() {
            let control = position < cacheControls.count ? cacheControls[position] : nil
            switch part {
            case let .text(text):
                if !text.isEmpty { blocks.append(Block.text(text).cached(control)) }
            case let .image(source, _):
                blocks.append(Block.image(source).cached(control))
            case let .other(value):
                switch value["type"]?.stringValue {
                case "refusal":
                    if let text = value["refusal"]?.stringValue, !text.isEmpty { blocks.append(Block.text(text).cached(control)) }
                case "file":
                    // A PDF given inline as a data URL becomes a document block.
                    guard let data = value["file"]?["file_data"]?.stringValue,
                          case let .inline(mediaType, base64) = ImageSource(url: data), mediaType == "application/pdf"
                    else {
                        throw PluginError.invalidRequest("messages[\(index)]: the anthropic provider takes `file` parts only as PDF data URLs (file.file_data).",
                                                         code: "unsupported_content")
                    }
                    blocks.append(Block.document(mediaType: mediaType, base64: base64).cached(control))
                default:
                    let type = value["type"]?.stringValue ?? "?"
                    throw PluginError.invalidRequest("messages[\(index)]: content parts of type `\(type)` are not supported by the anthropic provider.",
                                                     code: "unsupported_content")
                }
            }
        }
        return blocks
    }

    /// Empty or only (ASCII) whitespace; scans bytes, not characters.
    static func isBlank(_ text: String) -> Bool {
        !text.utf8.contains { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
    }
}
