import PrismWire

/// A typed view of an OpenAI chat-completions request, for adapters that translate it into
/// another wire format. Free-form parts (tool parameter schemas, json_schema) stay `JSONValue`.
public struct ChatRequest: Sendable {
    public var model: String
    public var messages: [ChatMessage]
    public var stream: Bool
    /// `stream_options.include_usage`: the client wants the usage-only final chunk.
    public var includeUsage: Bool
    public var temperature: Double?
    public var topP: Double?
    /// `max_completion_tokens`, else `max_tokens`.
    public var maxTokens: Int?
    public var stop: [String]
    public var user: String?
    public var seed: Int64?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var candidateCount: Int?
    public var tools: [ToolDefinition]
    public var toolChoice: ToolChoice?
    public var parallelToolCalls: Bool?
    public var responseFormat: ResponseFormat?
    /// The whole body, for fields an adapter maps itself.
    public var body: JSONValue

    /// Parses and validates a request body; every problem is a 400 with a clear message.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(PluginError) -> ChatRequest {
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes)
        } catch {
            throw PluginError.invalidRequest("The request body is not valid JSON: \(error.reason)", code: "invalid_json")
        }
        return try ChatRequest(body)
    }

    public init(_ body: JSONValue) throws(PluginError) {
        guard case .object = body else { throw PluginError.invalidRequest("The request body must be a JSON object.") }
        self.body = body
        model = body["model"]?.stringValue ?? ""
        guard let rawMessages = body["messages"]?.arrayValue else {
            throw PluginError.invalidRequest("`messages` must be an array.", code: "missing_messages")
        }
        var parsed: [ChatMessage] = []
        for (index, message) in rawMessages.enumerated() { parsed.append(try ChatMessage(message, index: index)) }
        messages = parsed
        stream = body["stream"]?.boolValue ?? false
        includeUsage = body["stream_options"]?["include_usage"]?.boolValue ?? false
        temperature = body["temperature"]?.doubleValue
        topP = body["top_p"]?.doubleValue
        let limit = body["max_completion_tokens"]?.integerValue ?? body["max_tokens"]?.integerValue
        maxTokens = limit.map { Int(clamping: $0) }
        if let single = body["stop"]?.stringValue {
            stop = [single]
        } else {
            stop = (body["stop"]?.arrayValue ?? []).compactMap(\.stringValue)
        }
        user = body["user"]?.stringValue
        seed = body["seed"]?.integerValue
        presencePenalty = body["presence_penalty"]?.doubleValue
        frequencyPenalty = body["frequency_penalty"]?.doubleValue
        candidateCount = body["n"]?.integerValue.map { Int(clamping: $0) }
        var definitions: [ToolDefinition] = []
        for (index, tool) in (body["tools"]?.arrayValue ?? []).enumerated() {
            guard let function = tool["function"], let name = function["name"]?.stringValue else {
                throw PluginError.invalidRequest("tools[\(index)] needs `function.name`.", code: "invalid_tools")
            }
            definitions.append(ToolDefinition(name: name, description: function["description"]?.stringValue,
                                              parameters: function["parameters"] ?? .object([]),
                                              strict: function["strict"]?.boolValue))
        }
        tools = definitions
        toolChoice = ToolChoice(body["tool_choice"])
        parallelToolCalls = body["parallel_tool_calls"]?.boolValue
        responseFormat = ResponseFormat(body["response_format"])
    }

    /// The system (and developer) messages' text, joined: for formats that carry it apart.
    public var systemText: String {
        messages.filter { $0.role == "system" || $0.role == "developer" }.map(\.text).joined(separator: "\n\n")
    }
}

public struct ChatMessage: Sendable {
    /// "system", "developer", "user", "assistant" or "tool".
    public var role: String
    public var content: [ContentPart]
    public var name: String?
    /// An assistant's earlier tool calls.
    public var toolCalls: [ToolCall]
    /// For role "tool": which call this result answers.
    public var toolCallID: String?

    init(_ value: JSONValue, index: Int) throws(PluginError) {
        guard let role = value["role"]?.stringValue else {
            throw PluginError.invalidRequest("messages[\(index)] has no `role`.", code: "invalid_messages")
        }
        self.role = role
        name = value["name"]?.stringValue
        toolCallID = value["tool_call_id"]?.stringValue
        var parts: [ContentPart] = []
        if let text = value["content"]?.stringValue {
            parts.append(.text(text))
        } else if let list = value["content"]?.arrayValue {
            for (partIndex, part) in list.enumerated() {
                switch part["type"]?.stringValue {
                case "text", "input_text":
                    parts.append(.text(part["text"]?.stringValue ?? ""))
                case "image_url":
                    guard let url = part["image_url"]?["url"]?.stringValue ?? part["image_url"]?.stringValue else {
                        throw PluginError.invalidRequest("messages[\(index)].content[\(partIndex)] has no image_url.url.",
                                                         code: "invalid_messages")
                    }
                    parts.append(.image(ImageSource(url: url), detail: part["image_url"]?["detail"]?.stringValue))
                default:
                    parts.append(.other(part))
                }
            }
        }
        content = parts
        var calls: [ToolCall] = []
        for call in value["tool_calls"]?.arrayValue ?? [] {
            guard let function = call["function"], let name = function["name"]?.stringValue else { continue }
            calls.append(ToolCall(id: call["id"]?.stringValue ?? "", name: name,
                                  arguments: function["arguments"]?.stringValue ?? "{}"))
        }
        toolCalls = calls
    }

    /// The text parts joined (images and other parts left out).
    public var text: String {
        content.compactMap { part in
            if case let .text(text) = part { return text }
            return nil
        }.joined(separator: "\n")
    }
}

public enum ContentPart: Sendable {
    case text(String)
    case image(ImageSource, detail: String?)
    /// A part type this kit does not model (audio, files...): adapters decide.
    case other(JSONValue)
}

/// An image given as a data URL (inline bytes) or a remote URL.
public enum ImageSource: Sendable, Equatable {
    case inline(mediaType: String, base64: String)
    case remote(String)

    public init(url: String) {
        // data:<media type>;base64,<data>
        if url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") {
            let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
            let mediaType = header.split(separator: ";").first.map(String.init) ?? "application/octet-stream"
            self = .inline(mediaType: mediaType.isEmpty ? "application/octet-stream" : mediaType,
                           base64: String(url[url.index(after: comma)...]))
        } else {
            self = .remote(url)
        }
    }
}

extension JSONValue {
    /// This JSON Schema as an object schema, for APIs that require one for tool input (Anthropic,
    /// Bedrock): `"type": "object"` added when missing; a non-object becomes `{"type":"object"}`.
    public var asObjectSchema: JSONValue {
        guard case var .object(members) = self else { return .object([("type", .string("object"))]) }
        if !members.contains(where: { $0.0 == "type" }) { members.insert(("type", .string("object")), at: 0) }
        return .object(members)
    }
}

public struct ToolDefinition: Sendable {
    public var name: String
    public var description: String?
    /// JSON Schema of the arguments.
    public var parameters: JSONValue
    public var strict: Bool?
}

public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    /// The arguments as a JSON text (OpenAI sends them as a string).
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

extension ToolCall {
    /// The arguments as a JSON object text, for APIs that take a tool call's input as an object
    /// (Anthropic, Bedrock): blank arguments become `{}`, anything but an object is a 400.
    public func objectArguments(messageIndex: Int, callIndex: Int) throws(PluginError) -> String {
        if !arguments.utf8.contains(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) { return "{}" }
        var text = arguments
        let isObject = text.withUTF8 { utf8 in (try? JSONScanner.members(UnsafeRawBufferPointer(utf8))) != nil }
        guard isObject else {
            throw PluginError.invalidRequest(
                "messages[\(messageIndex)].tool_calls[\(callIndex)].function.arguments must be a JSON object text.",
                code: "invalid_tool_arguments")
        }
        return text
    }

    /// A tool-call id restricted to `[A-Za-z0-9_-]` and `maximumLength` bytes, as Anthropic and
    /// Bedrock require: other bytes become `_`, an empty id becomes `call`. The mapping is the same
    /// wherever the id appears, so a call and its result still pair up.
    public static func restrictedID(_ id: String, maximumLength: Int = Int.max) -> String {
        if id.isEmpty { return "call" }
        func allowed(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        if id.utf8.count <= maximumLength && id.utf8.allSatisfy(allowed) { return id }
        return String(decoding: id.utf8.prefix(maximumLength).map { allowed($0) ? $0 : UInt8(ascii: "_") }, as: UTF8.self)
    }
}

public enum ToolChoice: Sendable, Equatable {
    case auto
    case none
    case required
    case function(String)

    init?(_ value: JSONValue?) {
        guard let value else { return nil }
        switch value.stringValue {
        case "auto": self = .auto
        case "none": self = .none
        case "required", "any": self = .required
        default:
            guard let name = value["function"]?["name"]?.stringValue else { return nil }
            self = .function(name)
        }
    }
}

public enum ResponseFormat: Sendable {
    case text
    case jsonObject
    case jsonSchema(name: String, schema: JSONValue, strict: Bool)

    init?(_ value: JSONValue?) {
        switch value?["type"]?.stringValue {
        case "text": self = .text
        case "json_object": self = .jsonObject
        case "json_schema":
            let definition = value?["json_schema"]
            self = .jsonSchema(name: definition?["name"]?.stringValue ?? "response",
                               schema: definition?["schema"] ?? .object([]),
                               strict: definition?["strict"]?.boolValue ?? false)
        default: return nil
        }
    }
}

/// A typed view of an OpenAI embeddings request.
public struct EmbeddingRequest: Sendable {
    public var model: String
    /// Text inputs (a single string becomes one element).
    public var inputs: [String]
    public var dimensions: Int?
    /// "float" (default) or "base64".
    public var encodingFormat: String
    public var user: String?

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(PluginError) -> EmbeddingRequest {
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes)
        } catch {
            throw PluginError.invalidRequest("The request body is not valid JSON: \(error.reason)", code: "invalid_json")
        }
        var inputs: [String] = []
        if let single = body["input"]?.stringValue {
            inputs = [single]
        } else if let list = body["input"]?.arrayValue {
            for item in list {
                guard let text = item.stringValue else {
                    throw PluginError.invalidRequest("This provider takes `input` as text (a string or an array of strings).",
                                                     code: "invalid_input")
                }
                inputs.append(text)
            }
        }
        guard !inputs.isEmpty else { throw PluginError.invalidRequest("`input` is required.", code: "missing_input") }
        return EmbeddingRequest(model: body["model"]?.stringValue ?? "", inputs: inputs,
                                dimensions: body["dimensions"]?.integerValue.map { Int(clamping: $0) },
                                encodingFormat: body["encoding_format"]?.stringValue ?? "float",
                                user: body["user"]?.stringValue)
    }
}
