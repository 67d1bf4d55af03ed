import PluginKit
import PrismWire

/// OpenAI chat request → Bedrock Converse / ConverseStream body (the model id travels in the path).
/// docs/provider-mapping/bedrock.md is the field-by-field table this code implements.
package enum BedrockRequest {
    /// The tool a `response_format` JSON answer is forced through; its input becomes the content.
    static let answerToolName = "json_response"

    /// The Converse body, and whether the answer comes through the answer tool. `model` is the
    /// Bedrock model id (it decides which model-native fields apply), `betas` the client's
    /// `anthropic-beta` header values.
    package static func converse(_ request: ChatRequest, model: String = "", betas: [String] = [],
                         defaultMaxTokens: Int?) throws(PluginError) -> (body: [UInt8], answerTool: Bool) {
        if let count = request.candidateCount, count > 1 {
            throw PluginError.invalidRequest("The bedrock provider returns one choice: `n` must be 1.", code: "unsupported_parameter")
        }
        var answerSchema: JSONValue?
        switch request.responseFormat {
        case let .jsonSchema(_, schema, _)?: answerSchema = schema.asObjectSchema
        case .jsonObject?: answerSchema = .object([("type", .string("object"))])
        default: break
        }
        if answerSchema != nil, request.tools.contains(where: { $0.name == answerToolName }) {
            throw PluginError.invalidRequest("A tool named `\(answerToolName)` cannot be combined with `response_format` on the bedrock provider: that name carries the JSON answer.",
                                             code: "unsupported_parameter")
        }
        let turns = try BedrockRequest.turns(request.messages)
        let native = try modelFields(request, model: model, betas: betas)
        var writer = JSONWriter(capacity: 512 + request.messages.count * 128)
        writer.beginObject()
        writer.key("messages")
        writer.beginArray()
        for turn in turns { turn.write(to: &writer) }
        writer.endArray()

        // One text block per system message; with cache_control, one per text part, each marker
        // becoming a cachePoint after its block.
        var system: [Block] = []
        for message in request.messages where message.role == "system" || message.role == "developer" {
            var blocks: [Block] = []
            if message.hasCacheControl {
                for (part, control) in zip(message.content, message.partCacheControls) {
                    if case let .text(text) = part, !text.isEmpty { blocks.append(Block.text(text).cached(control)) }
                }
            } else if !message.text.isEmpty {
                blocks.append(.text(message.text))
            }
            if let last = blocks.indices.last { blocks[last] = blocks[last].cached(message.cacheControl) }
            system += blocks
        }
        if !system.isEmpty {
            writer.key("system")
            writer.beginArray()
            for block in system { block.write(to: &writer) }
            writer.endArray()
        }

        var maxTokens = request.maxTokens ?? defaultMaxTokens
        if let budget = native.thinkingBudget {
            maxTokens = ReasoningEffort.maxTokens(requested: maxTokens, budget: budget, answerTokens: 4096)
        }
        // Bedrock refuses empty stop sequences.
        let stops = request.stop.filter { !$0.isEmpty }
        if maxTokens != nil || request.temperature != nil || request.topP != nil || !stops.isEmpty {
            writer.key("inferenceConfig")
            writer.beginObject()
            if let maxTokens { writer.integer("maxTokens", Int64(maxTokens)) }
            if let temperature = request.temperature { writer.key("temperature"); writer.number(temperature) }
            if let topP = request.topP { writer.key("topP"); writer.number(topP) }
            if !stops.isEmpty {
                writer.key("stopSequences")
                writer.beginArray()
                for stop in stops { writer.string(stop) }
                writer.endArray()
            }
            writer.endObject()
        }
        writeToolConfig(request, turns: turns, answerSchema: answerSchema, to: &writer)
        if case let .object(fields) = native.fields, !fields.isEmpty {
            writer.key("additionalModelRequestFields")
            native.fields.write(to: &writer)
        }
        writer.endObject()
        return (writer.bytes, answerSchema != nil)
    }

    // MARK: Model-native fields

    /// Whether `model` (a model id, inference profile or ARN) is one of Anthropic's Claude models.
    static func isClaude(_ model: String) -> Bool { model.contains("anthropic.") || model.contains("claude") }

    /// `additionalModelRequestFields`, and the thinking budget it enables. Claude models get
    /// Anthropic's fields: `thinking` (the client's own, else from `reasoning_effort`, at least
    /// 1024 tokens), `top_k`, and the client's `anthropic-beta` header values as `anthropic_beta`.
    /// Amazon Nova 2 gets `reasoningConfig` from `reasoning_effort`. The client's own
    /// `additionalModelRequestFields` are added last and win.
    static func modelFields(_ request: ChatRequest, model: String,
                            betas: [String]) throws(PluginError) -> (fields: JSONValue, thinkingBudget: Int?) {
        let effort = try ReasoningEffort.of(request)
        var fields: [(String, JSONValue)] = []
        if isClaude(model) {
            if let thinking = try ReasoningEffort.claudeThinking(request) { fields.append(("thinking", thinking)) }
            if let topK = request.topK { fields.append(("top_k", .number(String(topK)))) }
            if !betas.isEmpty { fields.append(("anthropic_beta", .array(betas.map(JSONValue.string)))) }
        } else if model.contains("nova-2"), let effort {
            let level: String
            switch effort {
            case .none: level = ""
            case .minimal, .low: level = "low"
            case .medium: level = "medium"
            case .high, .xhigh: level = "high"
            }
            fields.append(("reasoningConfig", level.isEmpty ? .object([("type", .string("disabled"))])
                : .object([("type", .string("enabled")), ("maxReasoningEffort", .string(level))])))
        }
        let own = request.body["additionalModelRequestFields"] ?? request.body["additional_model_request_fields"]
        for (name, value) in own?.objectValue ?? [] {
            fields.removeAll { $0.0 == name }
            fields.append((name, value))
        }
        // Claude's limit covers thinking and must exceed the budget (see ReasoningEffort.maxTokens).
        return (.object(fields), ReasoningEffort.claudeBudget(fields.first { $0.0 == "thinking" }?.1))
    }

    // MARK: Tools

    /// `toolConfig`. Bedrock has no "none" choice, and refuses toolUse/toolResult blocks in the
    /// history unless tools are declared: with tool_choice "none" the tools are left out when the
    /// history has no tool blocks, else sent without a choice; history with tool blocks but no
    /// tools gets a minimal spec per tool name it uses. A JSON answer (`answerSchema`) adds the
    /// answer tool and forces a tool: the answer tool, or with client tools any of them (a named
    /// client tool stays forced).
    static func writeToolConfig(_ request: ChatRequest, turns: [Turn], answerSchema: JSONValue?,
                                to writer: inout JSONWriter)
    {
        let historyHasTools = turns.contains { $0.blocks.contains { $0.isToolBlock } }
        var tools = request.tools.map { tool -> (name: String, description: String?, parameters: JSONValue, cacheControl: JSONValue?) in
            (name: tool.name, description: tool.description, parameters: tool.parameters, cacheControl: tool.cacheControl)
        }
        var choice = request.toolChoice
        if tools.isEmpty {
            var names: [String] = []
            for turn in turns {
                for case let .toolUse(_, name, _) in turn.blocks where !names.contains(name) { names.append(name) }
            }
            tools = names.map { (name: $0, description: nil, parameters: .object([("type", .string("object"))]), cacheControl: nil) }
            choice = nil
        } else if choice == ToolChoice.none {
            if !historyHasTools && answerSchema == nil { return }
            choice = nil
        }
        if let answerSchema {
            tools.append((name: answerToolName, description: "Answer with a JSON value that matches this schema.",
                          parameters: answerSchema, cacheControl: nil))
            switch request.toolChoice {
            case let .function(name)?: choice = .function(name)
            case ToolChoice.none?: choice = .function(answerToolName)
            default: choice = request.tools.isEmpty ? .function(answerToolName) : .required
            }
        }
        guard !tools.isEmpty else { return }
        writer.key("toolConfig")
        writer.beginObject()
        writer.key("tools")
        writer.beginArray()
        for tool in tools {
            writer.beginObject()
            writer.key("toolSpec")
            writer.beginObject()
            writer.string("name", tool.name)
            if let description = tool.description, !description.isEmpty { writer.string("description", description) }
            writer.key("inputSchema")
            writer.beginObject()
            writer.key("json")
            tool.parameters.asObjectSchema.write(to: &writer)
            writer.endObject()
            writer.endObject()
            writer.endObject()
            if let control = tool.cacheControl { Block.writeCachePoint(control, to: &writer) }
        }
        writer.endArray()
        switch choice {
        case .auto?:
            writer.key("toolChoice")
            writer.raw(#"{"auto":{}}"#)
        case .required?:
            writer.key("toolChoice")
            writer.raw(#"{"any":{}}"#)
        case let .function(name)?:
            writer.key("toolChoice")
            writer.beginObject()
            writer.key("tool")
            writer.beginObject()
            writer.string("name", name)
            writer.endObject()
            writer.endObject()
        case ToolChoice.none?, nil:
            break
        }
        writer.endObject()
    }

    // MARK: Messages

    enum Block {
        case text(String)
        /// format: png, jpeg, gif or webp; the bytes as base64.
        case image(format: String, base64: String)
        case toolUse(id: String, name: String, input: String)
        case toolResult(id: String, content: [Block])
        case reasoning(ThinkingBlock)
        /// A block followed by a `cachePoint` (a client's `cache_control` marker on it).
        indirect case cached(Block, control: JSONValue)

        var isToolResult: Bool {
            switch self {
            case .toolResult: return true
            case let .cached(block, _): return block.isToolResult
            default: return false
            }
        }

        var isToolBlock: Bool {
            switch self {
            case .toolUse, .toolResult: return true
            case let .cached(block, _): return block.isToolBlock
            case .text, .image, .reasoning: return false
            }
        }

        /// This block with a cache point after it (itself when `control` is nil).
        func cached(_ control: JSONValue?) -> Block {
            control.map { .cached(self, control: $0) } ?? self
        }

        /// `{"cachePoint":{"type":"default"}}`, with the marker's `ttl` when it has one.
        static func writeCachePoint(_ control: JSONValue, to writer: inout JSONWriter) {
            writer.beginObject()
            writer.key("cachePoint")
            writer.beginObject()
            writer.string("type", "default")
            if let ttl = control["ttl"]?.stringValue { writer.string("ttl", ttl) }
            writer.endObject()
            writer.endObject()
        }

        func write(to writer: inout JSONWriter) {
            if case let .cached(block, control) = self {
                block.write(to: &writer)
                Block.writeCachePoint(control, to: &writer)
                return
            }
            writer.beginObject()
            switch self {
            case .cached:
                break // written above
            case let .reasoning(block):
                writer.key("reasoningContent")
                writer.beginObject()
                switch block {
                case let .thinking(text, signature):
                    writer.key("reasoningText")
                    writer.beginObject()
                    writer.string("text", text)
                    if let signature { writer.string("signature", signature) }
                    writer.endObject()
                case let .redacted(data):
                    writer.string("redactedContent", data)
                }
                writer.endObject()
            case let .text(text):
                writer.string("text", text)
            case let .image(format, base64):
                writer.key("image")
                writer.beginObject()
                writer.string("format", format)
                writer.key("source")
                writer.beginObject()
                writer.string("bytes", base64)
                writer.endObject()
                writer.endObject()
            case let .toolUse(id, name, input):
                writer.key("toolUse")
                writer.beginObject()
                writer.string("toolUseId", id)
                writer.string("name", name)
                writer.key("input")
                writer.raw(input)
                writer.endObject()
            case let .toolResult(id, content):
                writer.key("toolResult")
                writer.beginObject()
                writer.string("toolUseId", id)
                writer.key("content")
                writer.beginArray()
                if content.isEmpty {
                    writer.raw(#"{"json":{}}"#) // Bedrock refuses blank text; an empty result is an empty object
                } else {
                    for block in content { block.write(to: &writer) }
                }
                writer.endArray()
                writer.endObject()
            }
            writer.endObject()
        }
    }

    struct Turn {
        var role: String
        var blocks: [Block]

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writer.string("role", role)
            writer.key("content")
            writer.beginArray()
            for block in blocks { block.write(to: &writer) }
            writer.endArray()
            writer.endObject()
        }
    }

    /// OpenAI messages → Bedrock's strictly alternating turns, starting with a user turn. System
    /// and developer messages go to `system`; tool messages become `toolResult` blocks of a user
    /// turn, ahead of any other content in it; consecutive turns of one role are merged; empty
    /// text is dropped (Bedrock refuses blank text blocks).
    /// An assistant's signed `thinking_blocks` go first in its turn as `reasoningContent`; a
    /// `cache_control` marker on a part or a message becomes a `cachePoint` after its block (the
    /// message's last), except inside tool results, which take no cache points.
    static func turns(_ messages: [ChatMessage]) throws(PluginError) -> [Turn] {
        let turns = try ConversationTurns.groupMarked(
            messages, isToolResult: { (block: Block) in block.isToolResult }, thinking: Block.reasoning,
            cached: { block, control in block.cached(control) },
            content: { parts, controls, index throws(PluginError) in
                try contentBlocks(parts, cacheControls: controls, index: index)
            },
            toolUse: { call, index, callIndex throws(PluginError) in
                Block.toolUse(id: toolUseID(call.id), name: call.name,
                              input: try call.objectArguments(messageIndex: index, callIndex: callIndex))
            },
            toolResult: { message, index throws(PluginError) in
                Block.toolResult(id: toolUseID(message.toolCallID ?? ""),
                                 content: try contentBlocks(message.content, cacheControls: [], index: index))
            }).map { Turn(role: $0.role, blocks: $0.blocks) }
        guard let first = turns.first else {
            throw PluginError.invalidRequest("The bedrock provider needs at least one user message with content.",
                                             code: "invalid_messages")
        }
        guard first.role == "user" else {
            throw PluginError.invalidRequest("Bedrock requires the conversation to start with a user message (after any system messages).",
                                             code: "invalid_messages")
        }
        return turns
    }

    static let imageFormats = ["image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                               "image/webp": "webp"]

    static func contentBlocks(_ parts: [ContentPart], cacheControls: [JSONValue?], index: Int) throws(PluginError) -> [Block] {
        var blocks: [Block] = []
        for (position, part) in parts.enumerated() {
            let control = position < cacheControls.count ? cacheControls[position] : nil
            switch part {
            case let .text(text):
                if !text.isEmpty { blocks.append(Block.text(text).cached(control)) }
            case let .image(.inline(mediaType, base64), _):
                guard let format = imageFormats[mediaType.lowercased()] else {
                    throw PluginError.invalidRequest("messages[\(index)]: Bedrock takes png, jpeg, gif or webp images, not \(mediaType).",
                                                     code: "unsupported_content")
                }
                blocks.append(Block.image(format: format, base64: base64).cached(control))
            case .image(.remote, _):
                // Plugins do no network I/O, so a URL cannot be fetched here.
                throw PluginError.invalidRequest("messages[\(index)]: the bedrock provider takes images only as data URLs (data:image/png;base64,...); it does not fetch image URLs.",
                                                 code: "unsupported_content")
            case let .other(value):
                if value["type"]?.stringValue == "refusal" {
                    if let text = value["refusal"]?.stringValue, !text.isEmpty { blocks.append(Block.text(text).cached(control)) }
                    continue
                }
                let type = value["type"]?.stringValue ?? "?"
                throw PluginError.invalidRequest("messages[\(index)]: content parts of type `\(type)` are not supported by the bedrock provider.",
                                                 code: "unsupported_content")
            }
        }
        return blocks
    }

    /// Bedrock accepts tool use ids of 1–64 characters from [a-zA-Z0-9_-].
    package static func toolUseID(_ id: String) -> String { ToolCall.restrictedID(id, maximumLength: 64) }
}
