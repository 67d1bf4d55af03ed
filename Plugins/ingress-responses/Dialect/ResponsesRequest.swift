import PluginKit
import PrismWire

/// A Responses API request, validated and translated into chat-completions terms. The canonical
/// body is written once the earlier conversation (`previous_response_id`) is known.
struct ResponsesRequest: Sendable {
    var model: String
    var stream: Bool
    /// The client asked for the response to be stored (`store`, default true).
    var store: Bool
    var previousResponseID: String?
    /// `instructions` as a system message (not carried over to a continuation, as OpenAI does).
    var instructions: String?
    /// `input` as chat messages.
    var input: [JSONValue]
    /// Chat-completions parameters besides model, messages and stream, in order.
    var parameters: [(String, JSONValue)]
    /// The request's own values, echoed in the response object.
    var echo: ResponseEcho

    init(_ body: JSONValue) throws(PluginError) {
        guard case .object = body else { throw PluginError.invalidRequest("The request body must be a JSON object.") }
        model = body["model"]?.stringValue ?? ""
        stream = body["stream"]?.boolValue ?? false
        store = body["store"]?.boolValue ?? true
        for unsupported in ["background", "conversation", "prompt"] {
            if let value = body[unsupported], !value.isNull, value != .bool(false) {
                throw PluginError.invalidRequest("`\(unsupported)` is not supported by this gateway.", code: "unsupported_parameter")
            }
        }
        if let value = body["previous_response_id"], !value.isNull {
            guard let id = value.stringValue, !id.isEmpty else {
                throw PluginError.invalidRequest("`previous_response_id` must be a response id string.", code: "invalid_previous_response_id")
            }
            previousResponseID = id
        }
        if let value = body["instructions"], !value.isNull {
            guard let text = value.stringValue else {
                throw PluginError.invalidRequest("`instructions` must be a string.", code: "invalid_instructions")
            }
            instructions = text
        }
        switch body["input"] {
        case let .string(text)?:
            input = [.object([("role", .string("user")), ("content", .string(text))])]
        case let .array(items)?:
            input = try ResponsesRequest.messages(from: items)
        case nil, .null?:
            guard previousResponseID != nil else {
                throw PluginError.invalidRequest("`input` is required (a string or a list of input items).", code: "missing_input")
            }
            input = []
        default:
            throw PluginError.invalidRequest("`input` must be a string or a list of input items.", code: "invalid_input")
        }

        var parameters: [(String, JSONValue)] = []
        for name in ["temperature", "top_p", "parallel_tool_calls", "user", "prompt_cache_key", "service_tier",
                     "safety_identifier", "top_logprobs"]
        {
            if let value = body[name], !value.isNull { parameters.append((name, value)) }
        }
        if let value = body["max_output_tokens"], !value.isNull {
            guard value.integerValue != nil else {
                throw PluginError.invalidRequest("`max_output_tokens` must be an integer.", code: "invalid_max_output_tokens")
            }
            parameters.append(("max_tokens", value))
        }
        if let effort = body["reasoning"]?["effort"], !effort.isNull {
            guard effort.stringValue != nil else {
                throw PluginError.invalidRequest("`reasoning.effort` must be a string.", code: "invalid_reasoning_effort")
            }
            parameters.append(("reasoning_effort", effort))
        }
        let tools = try ResponsesRequest.tools(body["tools"])
        if !tools.isEmpty { parameters.append(("tools", .array(tools))) }
        if let choice = try ResponsesRequest.toolChoice(body["tool_choice"]) { parameters.append(("tool_choice", choice)) }
        if let format = try ResponsesRequest.responseFormat(body["text"]?["format"]) {
            parameters.append(("response_format", format))
        }
        if let verbosity = body["text"]?["verbosity"], !verbosity.isNull { parameters.append(("verbosity", verbosity)) }
        self.parameters = parameters
        echo = ResponseEcho(body, model: model, store: store, previousResponseID: previousResponseID)
    }

    /// The canonical chat-completions body: instructions, the earlier conversation, the input.
    func canonicalBody(history: [JSONValue]) -> [UInt8] {
        var writer = JSONWriter(capacity: 1024)
        writer.beginObject()
        writer.string("model", model)
        writer.key("messages")
        writer.beginArray()
        if let instructions {
            JSONValue.object([("role", .string("system")), ("content", .string(instructions))]).write(to: &writer)
        }
        for message in history { message.write(to: &writer) }
        for message in input { message.write(to: &writer) }
        writer.endArray()
        for (name, value) in parameters {
            writer.key(name)
            value.write(to: &writer)
        }
        CanonicalRequest.writeStream(stream, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    // MARK: Input items

    static func messages(from items: [JSONValue]) throws(PluginError) -> [JSONValue] {
        var messages: [JSONValue] = []
        /// Tool calls of the assistant message at the end of `messages`, still being gathered.
        var pendingCalls: [JSONValue] = []
        func flushCalls() {
            guard !pendingCalls.isEmpty else { return }
            if case var .object(members)? = messages.last, members.first(where: { $0.0 == "role" })?.1 == .string("assistant"),
               !members.contains(where: { $0.0 == "tool_calls" })
            {
                members.append(("tool_calls", .array(pendingCalls)))
                messages[messages.count - 1] = .object(members)
            } else {
                messages.append(.object([("role", .string("assistant")), ("content", .null),
                                         ("tool_calls", .array(pendingCalls))]))
            }
            pendingCalls = []
        }
        for (index, item) in items.enumerated() {
            guard case .object = item else {
                throw PluginError.invalidRequest("input[\(index)] must be an object.", code: "invalid_input")
            }
            let type = item["type"]?.stringValue ?? (item["role"] != nil ? "message" : "")
            switch type {
            case "message":
                flushCalls()
                messages.append(try message(item, index: index))
            case "function_call":
                guard let callID = item["call_id"]?.stringValue, let name = item["name"]?.stringValue else {
                    throw PluginError.invalidRequest("input[\(index)] (function_call) needs `call_id` and `name`.", code: "invalid_input")
                }
                pendingCalls.append(.object([
                    ("id", .string(callID)), ("type", .string("function")),
                    ("function", .object([("name", .string(name)),
                                          ("arguments", .string(item["arguments"]?.stringValue ?? "{}"))])),
                ]))
            case "function_call_output":
                flushCalls()
                guard let callID = item["call_id"]?.stringValue else {
                    throw PluginError.invalidRequest("input[\(index)] (function_call_output) needs `call_id`.", code: "invalid_input")
                }
                let output = try text(of: item["output"], where: "input[\(index)].output", allowNonText: false)
                messages.append(.object([("role", .string("tool")), ("tool_call_id", .string(callID)),
                                         ("content", .string(output))]))
            case "reasoning":
                // Reasoning items of earlier turns: their summaries or encrypted content cannot be
                // replayed to other providers; the conversation continues without them.
                continue
            case "":
                throw PluginError.invalidRequest("input[\(index)] needs a `type` or a `role`.", code: "invalid_input")
            default:
                throw PluginError.invalidRequest(
                    "input[\(index)]: input items of type '\(type)' are not supported by this gateway "
                        + "(supported: message, function_call, function_call_output, reasoning).",
                    code: "unsupported_input_item")
            }
        }
        flushCalls()
        return messages
    }

    static func message(_ item: JSONValue, index: Int) throws(PluginError) -> JSONValue {
        guard let role = item["role"]?.stringValue, ["user", "assistant", "system", "developer"].contains(role) else {
            throw PluginError.invalidRequest("input[\(index)].role must be one of user, assistant, system, developer.",
                                             code: "invalid_input")
        }
        let content: JSONValue
        switch item["content"] {
        case let .string(text)?:
            content = .string(text)
        case let .array(parts)? where role == "user":
            var converted: [JSONValue] = []
            for (partIndex, part) in parts.enumerated() {
                converted.append(try userPart(part, where: "input[\(index)].content[\(partIndex)]"))
            }
            content = .array(converted)
        case .array?:
            content = .string(try text(of: item["content"], where: "input[\(index)].content", allowNonText: false))
        default:
            throw PluginError.invalidRequest("input[\(index)].content must be a string or a list of content parts.",
                                             code: "invalid_input")
        }
        return .object([("role", .string(role)), ("content", content)])
    }

    static func userPart(_ part: JSONValue, where path: String) throws(PluginError) -> JSONValue {
        switch part["type"]?.stringValue {
        case "input_text", "output_text", "text":
            return .object([("type", .string("text")), ("text", .string(part["text"]?.stringValue ?? ""))])
        case "input_image":
            guard let url = part["image_url"]?.stringValue else {
                if part["file_id"] != nil {
                    throw PluginError.invalidRequest(
                        "\(path): images by `file_id` are not supported by this gateway; send `image_url` (a URL or a data URL).",
                        code: "unsupported_content")
                }
                throw PluginError.invalidRequest("\(path) (input_image) needs `image_url`.", code: "invalid_input")
            }
            var image: [(String, JSONValue)] = [("url", .string(url))]
            if let detail = part["detail"]?.stringValue { image.append(("detail", .string(detail))) }
            return .object([("type", .string("image_url")), ("image_url", .object(image))])
        case "input_file":
            var file: [(String, JSONValue)] = []
            for name in ["file_data", "file_id", "filename"] {
                if let value = part[name]?.stringValue { file.append((name, .string(value))) }
            }
            guard file.contains(where: { $0.0 == "file_data" || $0.0 == "file_id" }) else {
                throw PluginError.invalidRequest("\(path) (input_file) needs `file_data` or `file_id`.", code: "invalid_input")
            }
            return .object([("type", .string("file")), ("file", .object(file))])
        default:
            throw PluginError.invalidRequest(
                "\(path): content parts of type '\(part["type"]?.stringValue ?? "")' are not supported by this gateway.",
                code: "unsupported_content")
        }
    }

    /// The text of a string or of a list of text parts.
    static func text(of value: JSONValue?, where path: String, allowNonText: Bool) throws(PluginError) -> String {
        switch value {
        case let .string(text)?: return text
        case let .array(parts)?:
            var texts: [String] = []
            for part in parts {
                switch part["type"]?.stringValue {
                case "input_text", "output_text", "text":
                    texts.append(part["text"]?.stringValue ?? "")
                case "refusal":
                    texts.append(part["refusal"]?.stringValue ?? "")
                default:
                    throw PluginError.invalidRequest(
                        "\(path): only text parts are supported here (got '\(part["type"]?.stringValue ?? "")').",
                        code: "unsupported_content")
                }
            }
            return texts.joined(separator: "\n")
        case nil, .null?: return ""
        default:
            throw PluginError.invalidRequest("\(path) must be a string or a list of text parts.", code: "invalid_input")
        }
    }

    // MARK: Tools and formats

    static func tools(_ value: JSONValue?) throws(PluginError) -> [JSONValue] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.arrayValue else { throw PluginError.invalidRequest("`tools` must be a list.", code: "invalid_tools") }
        var tools: [JSONValue] = []
        for (index, tool) in list.enumerated() {
            let type = tool["type"]?.stringValue ?? ""
            guard type == "function" else {
                throw PluginError.invalidRequest(
                    "tools[\(index)]: tools of type '\(type)' are not supported by this gateway; only function tools are.",
                    code: "unsupported_tool")
            }
            guard let name = tool["name"]?.stringValue, !name.isEmpty else {
                throw PluginError.invalidRequest("tools[\(index)] needs a `name`.", code: "invalid_tools")
            }
            var function: [(String, JSONValue)] = [("name", .string(name))]
            for member in ["description", "parameters", "strict"] {
                if let value = tool[member], !value.isNull { function.append((member, value)) }
            }
            tools.append(.object([("type", .string("function")), ("function", .object(function))]))
        }
        return tools
    }

    static func toolChoice(_ value: JSONValue?) throws(PluginError) -> JSONValue? {
        guard let value, !value.isNull else { return nil }
        if let mode = value.stringValue {
            guard ["auto", "none", "required"].contains(mode) else {
                throw PluginError.invalidRequest("`tool_choice` must be auto, none, required or a function.", code: "invalid_tool_choice")
            }
            return value
        }
        guard value["type"]?.stringValue == "function", let name = value["name"]?.stringValue else {
            throw PluginError.invalidRequest(
                "`tool_choice` of type '\(value["type"]?.stringValue ?? "")' is not supported by this gateway; "
                    + "use auto, none, required or {\"type\":\"function\",\"name\":...}.",
                code: "unsupported_tool_choice")
        }
        return .object([("type", .string("function")), ("function", .object([("name", .string(name))]))])
    }

    static func responseFormat(_ format: JSONValue?) throws(PluginError) -> JSONValue? {
        guard let format, !format.isNull else { return nil }
        switch format["type"]?.stringValue {
        case "text": return nil
        case "json_object": return .object([("type", .string("json_object"))])
        case "json_schema":
            guard let name = format["name"]?.stringValue, let schema = format["schema"] else {
                throw PluginError.invalidRequest("`text.format` (json_schema) needs `name` and `schema`.", code: "invalid_text_format")
            }
            var definition: [(String, JSONValue)] = [("name", .string(name))]
            if let description = format["description"], !description.isNull { definition.append(("description", description)) }
            definition.append(("schema", schema))
            if let strict = format["strict"], !strict.isNull { definition.append(("strict", strict)) }
            return .object([("type", .string("json_schema")), ("json_schema", .object(definition))])
        default:
            throw PluginError.invalidRequest("`text.format.type` must be text, json_object or json_schema.", code: "invalid_text_format")
        }
    }
}

/// What a response object repeats of its request.
struct ResponseEcho: Sendable {
    var model: String
    var instructions: JSONValue = .null
    var maxOutputTokens: JSONValue = .null
    var parallelToolCalls: JSONValue = .bool(true)
    var previousResponseID: JSONValue = .null
    var reasoning: JSONValue = .object([("effort", .null), ("summary", .null)])
    var store: Bool
    var temperature: JSONValue = .null
    var text: JSONValue = .object([("format", .object([("type", .string("text"))]))])
    var toolChoice: JSONValue = .string("auto")
    var tools: JSONValue = .array([])
    var topP: JSONValue = .null
    var user: JSONValue = .null
    var metadata: JSONValue = .object([])

    init(model: String, store: Bool) {
        self.model = model
        self.store = store
    }

    init(_ body: JSONValue, model: String, store: Bool, previousResponseID: String?) {
        self.init(model: model, store: store)
        func given(_ name: String) -> JSONValue? {
            guard let value = body[name], !value.isNull else { return nil }
            return value
        }
        instructions = given("instructions") ?? .null
        maxOutputTokens = given("max_output_tokens") ?? .null
        parallelToolCalls = given("parallel_tool_calls") ?? .bool(true)
        self.previousResponseID = previousResponseID.map { .string($0) } ?? .null
        if let value = given("reasoning") {
            reasoning = .object([("effort", value["effort"] ?? .null), ("summary", value["summary"] ?? .null)])
        }
        temperature = given("temperature") ?? .null
        text = given("text") ?? text
        toolChoice = given("tool_choice") ?? toolChoice
        tools = given("tools") ?? tools
        topP = given("top_p") ?? .null
        user = given("user") ?? .null
        metadata = given("metadata") ?? metadata
    }
}
