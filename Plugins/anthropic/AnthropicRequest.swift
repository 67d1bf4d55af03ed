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
        writer.integer("max_tokens", Int64(request.maxTokens ?? AnthropicRequest.defaultMaxTokens))
        let system = request.systemText
        if !system.isEmpty { writer.string("system", system) }
        writer.key("messages")
        writer.beginArray()
        for turn in turns { turn.write(to: &writer) }
        writer.endArray()
        AnthropicRequest.writeTools(request, answerSchema: answerSchema, to: &writer)
        if let temperature = request.temperature { writer.key("temperature"); writer.number(min(max(temperature, 0), 1)) }
        if let topP = request.topP { writer.key("top_p"); writer.number(topP) }
        // Anthropic refuses empty and whitespace-only stop sequences.
        let stops = request.stop.filter { !AnthropicRequest.isBlank($0) }
        if !stops.isEmpty {
            writer.key("stop_sequences")
            writer.beginArray()
            for stop in stops { writer.string(stop) }
            writer.endArray()
        }
        if let user = request.user, !user.isEmpty {
            writer.key("metadata")
            writer.beginObject()
            writer.string("user_id", user)
            writer.endObject()
        }
        if stream { writer.bool("stream", true) }
        writer.endObject()
        bytes = writer.bytes
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

        var isToolResult: Bool {
            if case .toolResult = self { return true }
            return false
        }

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
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
    static func turns(_ messages: [ChatMessage]) throws(PluginError) -> [Turn] {
        let turns = try ConversationTurns.group(
            messages, isToolResult: { (block: Block) in block.isToolResult },
            content: { parts, index throws(PluginError) in try contentBlocks(parts, index: index) },
            toolUse: { call, index, callIndex throws(PluginError) in
                Block.toolUse(id: ToolCall.restrictedID(call.id), name: call.name,
                              input: try call.objectArguments(messageIndex: index, callIndex: callIndex))
            },
            toolResult: { message, index throws(PluginError) in
                Block.toolResult(id: ToolCall.restrictedID(message.toolCallID ?? ""),
                                 content: try contentBlocks(message.content, index: index))
            }).map { Turn(role: $0.role, blocks: $0.blocks) }
        return turns
    }

    static func contentBlocks(_ parts: [ContentPart], index: Int) throws(PluginError) -> [Block] {
        var blocks: [Block] = []
        for part in parts {
            switch part {
            case let .text(text):
                if !text.isEmpty { blocks.append(.text(text)) }
            case let .image(source, _):
                blocks.append(.image(source))
            case let .other(value):
                switch value["type"]?.stringValue {
                case "refusal":
                    if let text = value["refusal"]?.stringValue, !text.isEmpty { blocks.append(.text(text)) }
                case "file":
                    // A PDF given inline as a data URL becomes a document block.
                    guard let data = value["file"]?["file_data"]?.stringValue,
                          case let .inline(mediaType, base64) = ImageSource(url: data), mediaType == "application/pdf"
                    else {
                        throw PluginError.invalidRequest("messages[\(index)]: the anthropic provider takes `file` parts only as PDF data URLs (file.file_data).",
                                                         code: "unsupported_content")
                    }
                    blocks.append(.document(mediaType: mediaType, base64: base64))
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
