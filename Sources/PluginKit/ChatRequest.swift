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
    /// `reasoning_effort` as the client wrote it; `ReasoningEffort.parse` validates it for a provider.
    public var reasoningEffort: String?
    /// `top_k`, a common extension to OpenAI's format (OpenAI itself has none).
    public var topK: Int?
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
                                              strict: function["strict"]?.boolValue,
                                              cacheControl: (tool["cache_control"] ?? function["cache_control"])
                                                  .flatMap { $0.isNull ? nil : $0 }))
        }
        tools = definitions
        toolChoice = ToolChoice(body["tool_choice"])
        parallelToolCalls = body["parallel_tool_calls"]?.boolValue
        responseFormat = ResponseFormat(body["response_format"])
        reasoningEffort = body["reasoning_effort"]?.stringValue
        topK = body["top_k"]?.integerValue.map { Int(clamping: $0) }
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
    /// An assistant's earlier reasoning text (`reasoning_content`, as Prism returns it).
    public var reasoningContent: String?
    /// An assistant's earlier reasoning blocks with their signatures (`thinking_blocks`, as Prism
    /// returns them): what Anthropic and Bedrock need back to continue a thinking turn.
    public var thinkingBlocks: [ThinkingBlock]
    /// `cache_control` on the message itself: a prompt-cache breakpoint after its last block.
    public var cacheControl: JSONValue?
    /// `cache_control` of each content part, by the index of the part in `content`.
    public var partCacheControls: [JSONValue?]

    init(_ value: JSONValue, index: Int) throws(PluginError) {
        guard let role = value["role"]?.stringValue else {
            throw PluginError.invalidRequest("messages[\(index)] has no `role`.", code: "invalid_messages")
        }
        self.role = role
        name = value["name"]?.stringValue
        toolCallID = value["tool_call_id"]?.stringValue
        reasoningContent = value["reasoning_content"]?.stringValue
        thinkingBlocks = (value["thinking_blocks"]?.arrayValue ?? []).compactMap(ThinkingBlock.init)
        cacheControl = value["cache_control"].flatMap { $0.isNull ? nil : $0 }
        var parts: [ContentPart] = []
        var controls: [JSONValue?] = []
        if let text = value["content"]?.stringValue {
            parts.append(.text(text))
            controls.append(nil)
        } else if let list = value["content"]?.arrayValue {
            for (partIndex, part) in list.enumerated() {
                controls.append(part["cache_control"].flatMap { $0.isNull ? nil : $0 })
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
        partCacheControls = controls
        var calls: [ToolCall] = []
        for call in value["tool_calls"]?.arrayValue ?? [] {
            guard let function = call["function"], let name = function["name"]?.stringValue else { continue }
            calls.append(ToolCall(id: call["id"]?.stringValue ?? "", name: name,
                                  arguments: function["arguments"]?.stringValue ?? "{}"))
        }
        toolCalls = calls
    }

    /// Whether any part of the message, or the message itself, carries a `cache_control` marker.
    public var hasCacheControl: Bool { cacheControl != nil || partCacheControls.contains { $0 != nil } }

    /// The text parts joined (images and other parts left out).
    public var text: String {
        content.compactMap { part in
            if case let .text(text) = part { return text }
            return nil
        }.joined(separator: "\n")
    }
}

/// One block of an assistant's reasoning as Anthropic (and Bedrock's Claude models) return it and
/// need it back: readable thinking with its signature, or encrypted (redacted) thinking. On the
/// OpenAI side it travels as an element of the message's `thinking_blocks` (LiteLLM's shape):
/// `{"type":"thinking","thinking":"...","signature":"..."}` or `{"type":"redacted_thinking","data":"..."}`.
public enum ThinkingBlock: Sendable, Equatable {
    case thinking(text: String, signature: String?)
    case redacted(data: String)

    /// From a `thinking_blocks` element; nil for anything else.
    public init?(_ value: JSONValue) {
        switch value["type"]?.stringValue {
        case "thinking":
            self = .thinking(text: value["thinking"]?.stringValue ?? "", signature: value["signature"]?.stringValue)
        case "redacted_thinking":
            guard let data = value["data"]?.stringValue else { return nil }
            self = .redacted(data: data)
        default:
            return nil
        }
    }

    /// Whether a provider can take the block back: Anthropic refuses thinking without its signature.
    public var isReplayable: Bool {
        switch self {
        case let .thinking(_, signature): return !(signature ?? "").isEmpty
        case .redacted: return true
        }
    }

    /// The `thinking_blocks` element.
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        switch self {
        case let .thinking(text, signature):
            writer.string("type", "thinking")
            writer.string("thinking", text)
            if let signature { writer.string("signature", signature) }
        case let .redacted(data):
            writer.string("type", "redacted_thinking")
            writer.string("data", data)
        }
        writer.endObject()
    }
}

/// OpenAI's `reasoning_effort`, for providers that control reasoning with a token budget.
public enum ReasoningEffort: String, Sendable {
    case none, minimal, low, medium, high, xhigh

    /// The effort a request asks for (nil when it names none); a value OpenAI does not define is
    /// a 400 rather than a silently ignored setting.
    public static func of(_ request: ChatRequest) throws(PluginError) -> ReasoningEffort? {
        guard let raw = request.reasoningEffort else { return nil }
        guard let effort = ReasoningEffort(rawValue: raw) else {
            throw PluginError.invalidRequest(
                "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh (got '\(raw)').",
                code: "invalid_reasoning_effort")
        }
        return effort
    }

    /// The thinking budget in tokens (LiteLLM's values: minimal 128, low 1024, medium 2048, high
    /// 4096; xhigh 8192), at least `minimum`; nil for `none` (reasoning off).
    public func budgetTokens(minimum: Int = 0) -> Int? {
        let budget: Int
        switch self {
        case .none: return nil
        case .minimal: budget = 128
        case .low: budget = 1024
        case .medium: budget = 2048
        case .high: budget = 4096
        case .xhigh: budget = 8192
        }
        return max(budget, minimum)
    }

    /// Anthropic's smallest thinking budget.
    public static let claudeMinimumBudget = 1024

    /// Claude's `thinking` object (Anthropic's API, and Claude on Bedrock): the client's own
    /// `thinking` wins; else `reasoning_effort` becomes `{type: enabled, budget_tokens}` (at least
    /// 1024), `none` `{type: disabled}`; nil when the request asks for neither.
    public static func claudeThinking(_ request: ChatRequest) throws(PluginError) -> JSONValue? {
        let effort = try ReasoningEffort.of(request)
        if let native = request.body["thinking"], case .object = native { return native }
        guard let effort else { return nil }
        guard let budget = effort.budgetTokens(minimum: claudeMinimumBudget) else {
            return .object([("type", .string("disabled"))])
        }
        return .object([("type", .string("enabled")), ("budget_tokens", .number(String(budget)))])
    }

    /// The budget of an enabled Claude `thinking` object; nil for anything else.
    public static func claudeBudget(_ thinking: JSONValue?) -> Int? {
        guard thinking?["type"]?.stringValue == "enabled" else { return nil }
        return thinking?["budget_tokens"]?.integerValue.map { Int(clamping: $0) }
    }

    /// The output-token limit to send with a thinking budget, for APIs (Anthropic, Bedrock's
    /// Claude) whose limit covers thinking and must exceed the budget: the client's limit when it
    /// already does, else the budget plus the client's limit (or `answerTokens`).
    public static func maxTokens(requested: Int?, budget: Int, answerTokens: Int) -> Int {
        if let requested, requested > budget { return requested }
        return budget + (requested ?? answerTokens)
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
    /// `cache_control` on the tool (`tools[i].cache_control`): a prompt-cache breakpoint after it.
    public var cacheControl: JSONValue? = nil
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

/// Comma-separated header values (`anthropic-beta: a,b`).
public enum HeaderList {
    /// The values, trimmed, empty ones left out.
    public static func values(_ header: String) -> [String] {
        header.split(separator: ",").map { value in
            var text = value
            while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
            while let last = text.last, last == " " || last == "\t" { text.removeLast() }
            return String(text)
        }.filter { !$0.isEmpty }
    }
}

extension PluginRequest {
    /// The values of a comma-separated client header (e.g. `anthropic-beta`).
    public func headerList(_ name: String) -> [String] { HeaderList.values(header(name) ?? "") }
}
