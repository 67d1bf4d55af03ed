import PluginKit
import PrismWire

/// An Anthropic Messages request → the canonical request (an OpenAI chat.completions body) in the
/// shape the providers read (ChatRequest in PluginKit; the Anthropic provider turns it back into
/// the same Messages request): system blocks keep their `cache_control` as system content parts;
/// tool results become `tool` messages ahead of the user's other content; an assistant's signed
/// thinking travels as its `thinking_blocks`; Anthropic-only settings (`thinking`, `top_k`, the
/// top-level `cache_control`) ride along for the providers that know them.
///
/// Errors name the offending field the way Anthropic's own 400s do (`max_tokens: Field required`,
/// `messages.1.content.0.source: Field required`).
package enum MessagesRequest {
    package struct Decoded {
        /// The canonical body.
        package var body: [UInt8]
        package var model: String
        package var stopSequences: [String]
    }

    static func invalid(_ message: String, code: String = "invalid_request") -> PluginError {
        PluginError.invalidRequest(message, code: code)
    }

    /// The client's body as a JSON object.
    package static func parseBody(_ bytes: UnsafeRawBufferPointer) throws(PluginError) -> JSONValue {
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes)
        } catch {
            throw invalid("The request body is not valid JSON: \(error.reason)", code: "invalid_json")
        }
        guard case .object = body else { throw invalid("The request body must be a JSON object.", code: "invalid_json") }
        return body
    }

    /// `model` and `messages`, which both routes require.
    static func validated(_ body: JSONValue) throws(PluginError) -> (model: String, messages: [JSONValue]) {
        guard let modelValue = body["model"], !modelValue.isNull else {
            throw invalid("model: Field required", code: "missing_model")
        }
        guard let model = modelValue.stringValue, !model.isEmpty else {
            throw invalid("model: Input should be a non-empty string", code: "invalid_model")
        }
        guard let messagesValue = body["messages"], !messagesValue.isNull else {
            throw invalid("messages: Field required", code: "missing_messages")
        }
        guard let messages = messagesValue.arrayValue else {
            throw invalid("messages: Input should be a valid list", code: "invalid_messages")
        }
        guard !messages.isEmpty else {
            throw invalid("messages: at least one message is required", code: "missing_messages")
        }
        return (model, messages)
    }

    /// A POST /v1/messages body → the canonical body. `sizeHint`: the client body's size.
    package static func decode(_ body: JSONValue, sizeHint: Int) throws(PluginError) -> Decoded {
        let (model, messages) = try validated(body)
        guard let limit = body["max_tokens"], !limit.isNull else {
            throw invalid("max_tokens: Field required", code: "missing_max_tokens")
        }
        guard let maxTokens = limit.integerValue, maxTokens >= 0 else {
            throw invalid("max_tokens: Input should be a valid non-negative integer", code: "invalid_max_tokens")
        }
        let stops = try stopSequences(body["stop_sequences"])

        var writer = JSONWriter(capacity: sizeHint + 256)
        writer.beginObject()
        writer.string("model", model)
        try writeConversation(body, messages: messages, to: &writer)
        writer.integer("max_tokens", maxTokens)
        try writeTools(body, to: &writer)
        if !stops.isEmpty {
            writer.key("stop")
            writer.beginArray()
            for stop in stops { writer.string(stop) }
            writer.endArray()
        }
        for name in ["temperature", "top_p", "top_k"] {
            guard let value = body[name], !value.isNull else { continue }
            guard case .number = value else { throw invalid("\(name): Input should be a valid number", code: "invalid_\(name)") }
            writer.key(name)
            value.write(to: &writer)
        }
        let stream = body["stream"]?.boolValue ?? false
        // The usage-only last chunk: message_delta reports the final usage from it.
        CanonicalRequest.writeStream(stream, to: &writer)
        if let user = body["metadata"]?["user_id"]?.stringValue, !user.isEmpty { writer.string("user", user) }
        try writeThinking(body["thinking"], to: &writer)
        // Anthropic's top-level (automatic) prompt-cache breakpoint; the Anthropic provider reads it.
        if let control = body["cache_control"], case .object = control {
            writer.key("cache_control")
            control.write(to: &writer)
        }
        writer.endObject()
        return Decoded(body: writer.bytes, model: model, stopSequences: stops)
    }

    /// `"messages": [...]` with the system prompt first; also the validation count_tokens uses.
    static func writeConversation(_ body: JSONValue, messages: [JSONValue], to writer: inout JSONWriter) throws(PluginError) {
        writer.key("messages")
        writer.beginArray()
        try writeSystem(body["system"], to: &writer)
        for (index, message) in messages.enumerated() { try writeMessage(message, index: index, to: &writer) }
        writer.endArray()
    }

    static func stopSequences(_ value: JSONValue?) throws(PluginError) -> [String] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.arrayValue else {
            throw invalid("stop_sequences: Input should be a valid list", code: "invalid_stop_sequences")
        }
        var stops: [String] = []
        for (index, element) in list.enumerated() {
            guard let text = element.stringValue else {
                throw invalid("stop_sequences.\(index): Input should be a valid string", code: "invalid_stop_sequences")
            }
            stops.append(text)
        }
        return stops
    }

    // MARK: Messages

    /// One canonical message as it is written.
    struct CanonicalMessage {
        var role: String
        /// nil: `"content": null` (an assistant turn of only tool calls).
        var content: JSONValue?
        var toolCallID: String? = nil
        var toolCalls: [JSONValue] = []
        var thinkingBlocks: [ThinkingBlock] = []
        var cacheControl: JSONValue? = nil

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writer.string("role", role)
            writer.key("content")
            if let content { content.write(to: &writer) } else { writer.null() }
            if let toolCallID { writer.string("tool_call_id", toolCallID) }
            if !toolCalls.isEmpty {
                writer.key("tool_calls")
                JSONValue.array(toolCalls).write(to: &writer)
            }
            if !thinkingBlocks.isEmpty {
                writer.key("thinking_blocks")
                writer.beginArray()
                for block in thinkingBlocks { block.write(to: &writer) }
                writer.endArray()
            }
            if let cacheControl {
                writer.key("cache_control")
                cacheControl.write(to: &writer)
            }
            writer.endObject()
        }
    }

    /// `system`: a string, or text blocks (each keeping its cache_control) → one system message.
    static func writeSystem(_ system: JSONValue?, to writer: inout JSONWriter) throws(PluginError) {
        guard let system, !system.isNull else { return }
        if let text = system.stringValue {
            if !text.isEmpty { CanonicalMessage(role: "system", content: .string(text)).write(to: &writer) }
            return
        }
        guard let blocks = system.arrayValue else {
            throw invalid("system: Input should be a valid string or list of text blocks", code: "invalid_system")
        }
        guard !blocks.isEmpty else { return }
        var parts: [JSONValue] = []
        for (index, block) in blocks.enumerated() {
            guard block["type"]?.stringValue == "text" else {
                throw invalid("system.\(index): only text blocks are allowed in `system`", code: "invalid_system")
            }
            parts.append(try textPart(block, path: "system.\(index)"))
        }
        CanonicalMessage(role: "system", content: .array(parts)).write(to: &writer)
    }

    /// One Anthropic message → canonical messages: a user turn's tool results become `tool`
    /// messages (first, in order) and the rest a user message; an assistant turn's tool_use blocks
    /// become `tool_calls`, its thinking `thinking_blocks`.
    static func writeMessage(_ message: JSONValue, index: Int, to writer: inout JSONWriter) throws(PluginError) {
        let path = "messages.\(index)"
        guard case .object = message else {
            throw invalid("\(path): Input should be a valid dictionary", code: "invalid_messages")
        }
        guard let role = message["role"]?.stringValue, role == "user" || role == "assistant" else {
            throw invalid("\(path).role: Input should be 'user' or 'assistant'", code: "invalid_messages")
        }
        guard let content = message["content"], !content.isNull else {
            throw invalid("\(path).content: Field required", code: "invalid_messages")
        }
        if let text = content.stringValue {
            CanonicalMessage(role: role, content: .string(text)).write(to: &writer)
            return
        }
        guard let blocks = content.arrayValue else {
            throw invalid("\(path).content: Input should be a valid string or list of content blocks", code: "invalid_messages")
        }
        var parts: [JSONValue] = []
        var toolResults: [CanonicalMessage] = []
        var toolCalls: [JSONValue] = []
        var thinking: [ThinkingBlock] = []
        // The canonical format keeps cache_control of tool calls only on the message (applied
        // to its last call): the last tool_use block's marker goes there.
        var lastCallControl: JSONValue?
        for (position, block) in blocks.enumerated() {
            let blockPath = "\(path).content.\(position)"
            guard case .object = block, let type = block["type"]?.stringValue else {
                throw invalid("\(blockPath).type: Field required", code: "invalid_messages")
            }
            switch (type, role) {
            case ("text", _), ("image", _), ("document", _):
                parts += try contentParts(block, type: type, path: blockPath)
            case ("tool_use", "assistant"):
                toolCalls.append(try toolCall(block, path: blockPath))
                lastCallControl = cacheControl(of: block)
            case ("tool_result", "user"):
                toolResults.append(try toolResult(block, path: blockPath))
            case ("thinking", "assistant"), ("redacted_thinking", "assistant"):
                thinking.append(try thinkingBlock(block, type: type, path: blockPath))
            case ("tool_use", _), ("thinking", _), ("redacted_thinking", _):
                throw invalid("\(blockPath): `\(type)` blocks are only allowed in assistant messages", code: "invalid_messages")
            case ("tool_result", _):
                throw invalid("\(blockPath): `tool_result` blocks are only allowed in user messages", code: "invalid_messages")
            default:
                throw invalid("\(blockPath): content blocks of type `\(type)` are not supported by this gateway",
                              code: "unsupported_content")
            }
        }
        if role == "user" {
            for result in toolResults { result.write(to: &writer) }
            if toolResults.isEmpty || !parts.isEmpty {
                CanonicalMessage(role: "user", content: .array(parts)).write(to: &writer)
            }
            return
        }
        var assistant = CanonicalMessage(role: "assistant",
                                         content: parts.isEmpty ? (toolCalls.isEmpty ? .string("") : nil) : .array(parts))
        assistant.toolCalls = toolCalls
        assistant.thinkingBlocks = thinking
        if !toolCalls.isEmpty { assistant.cacheControl = lastCallControl }
        assistant.write(to: &writer)
    }

    // MARK: Tools and thinking

    /// `tools` (client tools only: server tools have no canonical form) and `tool_choice`.
    static func writeTools(_ body: JSONValue, to writer: inout JSONWriter) throws(PluginError) {
        if let tools = body["tools"], !tools.isNull {
            guard let list = tools.arrayValue else { throw invalid("tools: Input should be a valid list", code: "invalid_tools") }
            if !list.isEmpty {
                writer.key("tools")
                writer.beginArray()
                for (index, tool) in list.enumerated() { try writeTool(tool, path: "tools.\(index)", to: &writer) }
                writer.endArray()
            }
        }
        guard let choice = body["tool_choice"], !choice.isNull else { return }
        guard let type = choice["type"]?.stringValue else {
            throw invalid("tool_choice.type: Field required", code: "invalid_tool_choice")
        }
        switch type {
        case "auto": writer.string("tool_choice", "auto")
        case "any": writer.string("tool_choice", "required")
        case "none": writer.string("tool_choice", "none")
        case "tool":
            guard let name = choice["name"]?.stringValue else {
                throw invalid("tool_choice.name: Field required", code: "invalid_tool_choice")
            }
            writer.key("tool_choice")
            writer.beginObject()
            writer.string("type", "function")
            writer.key("function")
            writer.beginObject()
            writer.string("name", name)
            writer.endObject()
            writer.endObject()
        default:
            throw invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", code: "invalid_tool_choice")
        }
        if choice["disable_parallel_tool_use"]?.boolValue == true { writer.bool("parallel_tool_calls", false) }
    }

    static func writeTool(_ tool: JSONValue, path: String, to writer: inout JSONWriter) throws(PluginError) {
        if let type = tool["type"]?.stringValue, type != "custom" {
            throw invalid("\(path): server tools (`\(type)`) are not supported by this gateway; only client tools with an input_schema are",
                          code: "unsupported_tool")
        }
        guard let name = tool["name"]?.stringValue, !name.isEmpty else {
            throw invalid("\(path).name: Field required", code: "invalid_tools")
        }
        guard let schema = tool["input_schema"], case .object = schema else {
            throw invalid("\(path).input_schema: Field required", code: "invalid_tools")
        }
        writer.beginObject()
        writer.string("type", "function")
        writer.key("function")
        writer.beginObject()
        writer.string("name", name)
        if let description = tool["description"]?.stringValue { writer.string("description", description) }
        writer.key("parameters")
        schema.write(to: &writer)
        if let strict = tool["strict"]?.boolValue { writer.bool("strict", strict) }
        writer.endObject()
        if let control = cacheControl(of: tool) {
            writer.key("cache_control")
            control.write(to: &writer)
        }
        writer.endObject()
    }

    /// `thinking` goes through as is (the Anthropic provider sends the client's own object), and
    /// an enabled budget also becomes `reasoning_effort` for every other provider: up to 2048
    /// tokens low, up to 8192 medium, more high. `disabled` sends neither; `adaptive` (and types
    /// added later) only the object.
    static func writeThinking(_ thinking: JSONValue?, to writer: inout JSONWriter) throws(PluginError) {
        guard let thinking, !thinking.isNull else { return }
        guard case .object = thinking, let type = thinking["type"]?.stringValue else {
            throw invalid("thinking.type: Field required", code: "invalid_thinking")
        }
        switch type {
        case "disabled":
            return
        case "enabled":
            guard let budget = thinking["budget_tokens"]?.integerValue else {
                throw invalid("thinking.enabled.budget_tokens: Field required", code: "invalid_thinking")
            }
            writer.key("thinking")
            thinking.write(to: &writer)
            writer.string("reasoning_effort", budget <= 2048 ? "low" : budget <= 8192 ? "medium" : "high")
        default:
            writer.key("thinking")
            thinking.write(to: &writer)
        }
    }
}
