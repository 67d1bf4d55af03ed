import PluginKit
import PrismWire

/// OpenAI chat request → Cohere v2 `/v2/chat` body. docs/provider-mapping/cohere.md is the
/// field-by-field table this code implements.
enum CohereChatRequest {
    /// `sizeHint`: the client body's size, which the translation comes close to.
    static func body(_ request: ChatRequest, model: String, stream: Bool, sizeHint: Int) throws(PluginError) -> [UInt8] {
        if let count = request.candidateCount, count > 1 {
            throw PluginError.invalidRequest("The cohere provider returns one choice: `n` must be 1.", code: "unsupported_parameter")
        }
        var writer = JSONWriter(capacity: sizeHint + 256)
        writer.beginObject()
        writer.string("model", model)
        writer.key("messages")
        writer.beginArray()
        // Cohere takes one system turn, and only first.
        let system = request.systemText
        if !system.isEmpty {
            writer.beginObject()
            writer.string("role", "system")
            writer.string("content", system)
            writer.endObject()
        }
        for (index, message) in request.messages.enumerated() {
            try writeMessage(message, index: index, to: &writer)
        }
        writer.endArray()
        try writeTools(request, to: &writer)
        if let maxTokens = request.maxTokens { writer.integer("max_tokens", Int64(maxTokens)) }
        if let temperature = request.temperature { writer.key("temperature"); writer.number(max(temperature, 0)) }
        // Cohere's p must lie in [0.01, 0.99].
        if let topP = request.topP { writer.key("p"); writer.number(min(max(topP, 0.01), 0.99)) }
        // Cohere's k lies in [0, 500].
        if let topK = request.topK { writer.integer("k", Int64(min(max(topK, 0), 500))) }
        // The client's own Cohere `thinking` wins; else reasoning_effort becomes a token budget.
        if let thinking = request.body["thinking"], case .object = thinking {
            writer.key("thinking")
            thinking.write(to: &writer)
        } else if let effort = try ReasoningEffort.of(request) {
            writer.key("thinking")
            writer.beginObject()
            if let budget = effort.budgetTokens() {
                writer.string("type", "enabled")
                writer.integer("token_budget", Int64(budget))
            } else {
                writer.string("type", "disabled")
            }
            writer.endObject()
        }
        let stops = request.stop.filter { !$0.isEmpty }
        if !stops.isEmpty {
            writer.key("stop_sequences")
            writer.beginArray()
            for stop in stops { writer.string(stop) }
            writer.endArray()
        }
        if let seed = request.seed { writer.integer("seed", seed) }
        // Cohere's penalties range over [0, 1] (OpenAI's over [-2, 2]).
        if let penalty = request.frequencyPenalty { writer.key("frequency_penalty"); writer.number(min(max(penalty, 0), 1)) }
        if let penalty = request.presencePenalty { writer.key("presence_penalty"); writer.number(min(max(penalty, 0), 1)) }
        switch request.responseFormat {
        case .jsonObject?:
            writer.key("response_format")
            writer.beginObject()
            writer.string("type", "json_object")
            writer.endObject()
        case let .jsonSchema(_, schema, _)?:
            writer.key("response_format")
            writer.beginObject()
            writer.string("type", "json_object")
            writer.key("json_schema")
            schema.write(to: &writer)
            writer.endObject()
        case .text?, nil:
            break
        }
        if stream { writer.bool("stream", true) }
        writer.endObject()
        return writer.bytes
    }

    static func writeMessage(_ message: ChatMessage, index: Int, to writer: inout JSONWriter) throws(PluginError) {
        switch message.role {
        case "system", "developer":
            return
        case "user":
            guard hasContent(message.content) else { return }
            writer.beginObject()
            writer.string("role", "user")
            try writeContent(message.content, index: index, to: &writer)
            writer.endObject()
        case "assistant":
            let text = message.text
            guard !text.isEmpty || !message.toolCalls.isEmpty else { return }
            writer.beginObject()
            writer.string("role", "assistant")
            if !text.isEmpty { writer.string("content", text) }
            if !message.toolCalls.isEmpty {
                writer.key("tool_calls")
                writer.beginArray()
                for call in message.toolCalls {
                    writer.beginObject()
                    writer.string("id", call.id)
                    writer.string("type", "function")
                    writer.key("function")
                    writer.beginObject()
                    writer.string("name", call.name)
                    writer.string("arguments", call.arguments.isEmpty ? "{}" : call.arguments)
                    writer.endObject()
                    writer.endObject()
                }
                writer.endArray()
            }
            writer.endObject()
        case "tool":
            writer.beginObject()
            writer.string("role", "tool")
            writer.string("tool_call_id", message.toolCallID ?? "")
            writer.string("content", message.text)
            writer.endObject()
        default:
            throw PluginError.invalidRequest("messages[\(index)]: role `\(message.role)` is not supported (use system, developer, user, assistant or tool).",
                                             code: "invalid_messages")
        }
    }

    static func hasContent(_ parts: [ContentPart]) -> Bool {
        parts.contains { part in
            if case let .text(text) = part { return !text.isEmpty }
            return true
        }
    }

    /// A user turn's `content`: a string for plain text, else text and image_url parts.
    static func writeContent(_ parts: [ContentPart], index: Int, to writer: inout JSONWriter) throws(PluginError) {
        let texts = parts.compactMap { part -> String? in
            if case let .text(text) = part, !text.isEmpty { return text }
            return nil
        }
        if texts.count == 1, parts.allSatisfy({ if case .text = $0 { return true } else { return false } }) {
            writer.string("content", texts[0])
            return
        }
        writer.key("content")
        writer.beginArray()
        for part in parts {
            switch part {
            case let .text(text):
                guard !text.isEmpty else { continue }
                writer.beginObject()
                writer.string("type", "text")
                writer.string("text", text)
                writer.endObject()
            case let .image(source, detail):
                writer.beginObject()
                writer.string("type", "image_url")
                writer.key("image_url")
                writer.beginObject()
                switch source {
                case let .inline(mediaType, base64): writer.string("url", "data:\(mediaType);base64,\(base64)")
                case let .remote(url): writer.string("url", url)
                }
                if let detail { writer.string("detail", detail) }
                writer.endObject()
                writer.endObject()
            case let .other(value):
                let type = value["type"]?.stringValue ?? "?"
                throw PluginError.invalidRequest("messages[\(index)]: content parts of type `\(type)` are not supported by the cohere provider.",
                                                 code: "unsupported_content")
            }
        }
        writer.endArray()
    }

    static func writeTools(_ request: ChatRequest, to writer: inout JSONWriter) throws(PluginError) {
        guard !request.tools.isEmpty else { return }
        var tools = request.tools
        var choice: String?
        switch request.toolChoice {
        case .required?: choice = "REQUIRED"
        case ToolChoice.none?: choice = "NONE"
        case let .function(name)?:
            // Cohere cannot name a tool: offer only that one, and require a call.
            tools = tools.filter { $0.name == name }
            guard !tools.isEmpty else {
                throw PluginError.invalidRequest("tool_choice names `\(name)`, which is not in `tools`.", code: "invalid_tool_choice")
            }
            choice = "REQUIRED"
        case .auto?, nil: choice = nil
        }
        writer.key("tools")
        writer.beginArray()
        for tool in tools {
            writer.beginObject()
            writer.string("type", "function")
            writer.key("function")
            writer.beginObject()
            writer.string("name", tool.name)
            if let description = tool.description, !description.isEmpty { writer.string("description", description) }
            writer.key("parameters")
            if case let .object(members) = tool.parameters, !members.isEmpty {
                tool.parameters.write(to: &writer)
            } else {
                writer.raw(#"{"type":"object","properties":{}}"#)
            }
            writer.endObject()
            writer.endObject()
        }
        writer.endArray()
        if tools.contains(where: { $0.strict == true }) { writer.bool("strict_tools", true) }
        if let choice { writer.string("tool_choice", choice) }
    }
}

/// Cohere answers → OpenAI answers.
enum CohereChatResponse {
    /// `finish_reason` → OpenAI's; nil for ERROR and TIMEOUT, which are failures.
    static func finishReason(_ reason: String?) -> String? {
        switch reason {
        case "MAX_TOKENS": return "length"
        case "TOOL_CALL": return "tool_calls"
        case "ERROR", "TIMEOUT": return nil
        default: return "stop" // COMPLETE, STOP_SEQUENCE
        }
    }

    /// The failure an ERROR or TIMEOUT finish stands for.
    static func failure(_ reason: String?, message: String?) -> PluginError {
        let detail = message.map { ": \($0)" } ?? ""
        if reason == "TIMEOUT" {
            return PluginError.upstream(status: 504, message: "the upstream generation timed out\(detail)", type: "timeout_error",
                                        code: "timeout")
        }
        return PluginError.upstream(status: 502, message: "the upstream generation failed (finish_reason \(reason ?? "ERROR"))\(detail)")
    }

    /// Usage from `billed_units` (what the account is charged), else from `tokens`.
    static func usage(_ usage: JSONFields) -> Usage {
        var result = Usage()
        let counts = usage.object("billed_units") ?? usage.object("tokens")
        if let input = counts?.integer("input_tokens") { result.inputTokens = UInt64(clamping: input) }
        if let output = counts?.integer("output_tokens") { result.outputTokens = UInt64(clamping: output) }
        if let cached = usage.integer("cached_tokens") { result.cachedInputTokens = UInt64(clamping: cached) }
        return result
    }

    static func completion(_ body: UnsafeRawBufferPointer, model: String, created: Int64) throws(PluginError) -> ChatCompletion {
        let answer: JSONFields
        do {
            answer = try JSONFields(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "the upstream answer is not valid JSON: \(error.reason)")
        }
        // A 200 without a chat answer's shape (an error object, another API's answer) is no answer.
        guard answer.string("finish_reason") != nil || answer.object("message") != nil else {
            throw PluginError.upstream(status: 502, message: "the upstream answered 200 with something that is not a chat answer"
                + (answer.string("message").map { ": \($0)" } ?? ""))
        }
        let reason = answer.string("finish_reason")
        guard let finish = finishReason(reason) else { throw failure(reason, message: answer.string("message")) }
        let message = answer.object("message")
        var text = ""
        var reasoning: String?
        for item in message?.objects("content") ?? [] {
            switch item.string("type") {
            case "text": text += item.string("text") ?? ""
            case "thinking": reasoning = (reasoning ?? "") + (item.string("thinking") ?? "")
            default: break
            }
        }
        var calls: [ToolCall] = []
        for call in message?.objects("tool_calls") ?? [] {
            let function = call.object("function")
            calls.append(ToolCall(id: call.string("id") ?? "", name: function?.string("name") ?? "",
                                  arguments: function?.string("arguments") ?? "{}"))
        }
        return ChatCompletion(id: answer.string("id") ?? "", model: model, created: created,
                              text: text.isEmpty && !calls.isEmpty ? nil : text, toolCalls: calls,
                              finishReason: finish, usage: answer.object("usage").map(usage) ?? Usage(),
                              reasoning: reasoning)
    }
}

/// Translates one Cohere v2 chat stream into OpenAI chunks.
struct CohereStream {
    let includeUsage: Bool
    let model: String
    let created: Int64
    /// Replaced at message-start, which carries the id.
    private var writer: ChatStreamWriter
    private(set) var ended = false

    init(includeUsage: Bool, model: String, created: Int64) {
        self.includeUsage = includeUsage
        self.model = model
        self.created = created
        writer = ChatStreamWriter(id: "", model: model, created: created)
    }

    mutating func translate(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        let raw = event.data
        if raw.count == 6, raw.elementsEqual("[DONE]".utf8) { return }
        let data: JSONFields
        do {
            data = try JSONFields(raw)
        } catch {
            throw PluginError.upstream(status: 502, message: "upstream sent an invalid stream event: \(error.reason)")
        }
        let message = data.object("delta")?.object("message")
        switch data.string("type") {
        case "message-start":
            writer = ChatStreamWriter(id: data.string("id") ?? "", model: model, created: created)
        case "content-start", "content-delta":
            // Thinking content carries `thinking`, not `text`: it streams as reasoning_content.
            let content = message?.object("content")
            if let text = content?.string("text") { writer.text(text, client: client) }
            if let thinking = content?.string("thinking") { writer.reasoning(thinking, client: client) }
        case "tool-call-start":
            guard let index = data.integer("index"), let call = message?.object("tool_calls") else { return }
            let function = call.object("function")
            writer.startToolCall(key: String(index), id: call.string("id") ?? "", name: function?.string("name") ?? "",
                                 client: client)
            if let arguments = function?.string("arguments") {
                writer.toolArguments(key: String(index), fragment: arguments, client: client)
            }
        case "tool-call-delta":
            guard let index = data.integer("index"),
                  let fragment = message?.object("tool_calls")?.object("function")?.string("arguments")
            else { return }
            writer.toolArguments(key: String(index), fragment: fragment, client: client)
        case "message-end":
            ended = true
            let delta = data.object("delta")
            let reason = delta?.string("finish_reason")
            guard let finish = CohereChatResponse.finishReason(reason) else {
                throw CohereChatResponse.failure(reason, message: delta?.string("error"))
            }
            writer.finish(reason: finish, client: client)
            writer.usage(delta?.object("usage").map(CohereChatResponse.usage) ?? Usage(), includeChunk: includeUsage,
                         client: client)
        default:
            break // tool-plan-delta (dropped), content-end, tool-call-end, citations, debug
        }
    }
}
