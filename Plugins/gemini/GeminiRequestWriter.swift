import PluginKit
import PrismWire

/// OpenAI chat request → Gemini `GenerateContentRequest` (the same body for Gemini and Vertex).
enum GeminiRequestWriter {
    /// One part of a Gemini `Content`.
    enum Part {
        case text(String)
        case inline(mimeType: String, data: String)
        case file(mimeType: String, uri: String)
        /// `args` is the JSON text of an object (already validated).
        case functionCall(name: String, args: [UInt8], signature: String?)
        /// `response` is the JSON text of an object.
        case functionResponse(name: String, response: [UInt8])
    }

    struct Content {
        var role: String
        var parts: [Part]
    }

    /// `sizeHint`: the client body's size; the Gemini body is about as large (one allocation).
    static func write(_ request: ChatRequest, sizeHint: Int = 1024) throws(PluginError) -> [UInt8] {
        var system: [String] = []
        var contents: [Content] = []
        // Tool-call id → function name, so tool results can be named (Gemini wants names, not ids).
        var callNames: [String: String] = [:]

        func append(_ role: String, _ parts: [Part]) {
            guard !parts.isEmpty else { return }
            // Gemini wants alternating turns: a tool-result turn followed by user text is one turn.
            if let last = contents.last, last.role == role {
                contents[contents.count - 1].parts.append(contentsOf: parts)
            } else {
                contents.append(Content(role: role, parts: parts))
            }
        }

        for (index, message) in request.messages.enumerated() {
            switch message.role {
            case "system", "developer":
                let text = message.text
                if !text.isEmpty { system.append(text) }
            case "user":
                append("user", try parts(of: message, index: index))
            case "assistant":
                var parts = try self.parts(of: message, index: index)
                for (callIndex, call) in message.toolCalls.enumerated() {
                    callNames[call.id] = call.name
                    let (args, signature) = try functionCallArguments(call, message: index, call: callIndex,
                                                                      body: request.body)
                    parts.append(.functionCall(name: call.name, args: args, signature: signature))
                }
                append("model", parts)
            case "tool", "function":
                let name = message.toolCallID.flatMap { callNames[$0] } ?? message.name
                guard let name else {
                    throw PluginError.invalidRequest(
                        "messages[\(index)]: the tool result's tool_call_id matches no earlier assistant tool call "
                            + "(Gemini needs the function's name).", code: "invalid_tool_result")
                }
                append("user", [.functionResponse(name: name, response: functionResponse(message.text))])
            default:
                throw PluginError.invalidRequest("messages[\(index)]: unknown role '\(message.role)'.",
                                                 code: "invalid_messages")
            }
        }

        var writer = JSONWriter(capacity: sizeHint + 256)
        writer.beginObject()
        if !system.isEmpty {
            writer.key("systemInstruction")
            writer.beginObject()
            writer.key("parts")
            writer.beginArray()
            for text in system {
                writer.beginObject()
                writer.string("text", text)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.key("contents")
        writer.beginArray()
        for content in contents { write(content, to: &writer) }
        writer.endArray()
        writeTools(request, to: &writer)
        // Gemini-native fields the client may send, in either spelling: passed as they are.
        if let settings = request.body["safetySettings"] ?? request.body["safety_settings"], case .array = settings {
            writer.key("safetySettings")
            settings.write(to: &writer)
        }
        if let cached = (request.body["cachedContent"] ?? request.body["cached_content"])?.stringValue {
            writer.string("cachedContent", cached)
        }
        try writeGenerationConfig(request, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    // MARK: Messages

    /// A user or assistant message's content parts (text, images, audio, files).
    static func parts(of message: ChatMessage, index: Int) throws(PluginError) -> [Part] {
        var parts: [Part] = []
        for (partIndex, part) in message.content.enumerated() {
            switch part {
            case let .text(text):
                // Assistant turns often carry "" next to tool calls: Gemini rejects empty parts.
                if !text.isEmpty { parts.append(.text(text)) }
            case let .image(source, _):
                parts.append(media(source, defaultType: "image/jpeg"))
            case let .other(value):
                parts.append(try otherPart(value, location: "messages[\(index)].content[\(partIndex)]"))
            }
        }
        return parts
    }

    static func media(_ source: ImageSource, defaultType: String) -> Part {
        switch source {
        case let .inline(mediaType, base64): return .inline(mimeType: mediaType, data: base64)
        case let .remote(url): return .file(mimeType: mimeType(forURL: url) ?? defaultType, uri: url)
        }
    }

    /// Audio and file parts; anything else is refused rather than silently dropped.
    static func otherPart(_ value: JSONValue, location: String) throws(PluginError) -> Part {
        let type = value["type"]?.stringValue ?? ""
        switch type {
        case "input_audio":
            guard let data = value["input_audio"]?["data"]?.stringValue else {
                throw PluginError.invalidRequest("\(location): input_audio needs `data`.", code: "invalid_messages")
            }
            let format = value["input_audio"]?["format"]?.stringValue ?? "wav"
            return .inline(mimeType: "audio/" + format, data: data)
        case "file":
            let file = value["file"]
            guard let data = file?["file_data"]?.stringValue else {
                throw PluginError.invalidRequest("\(location): Gemini cannot read OpenAI file ids; send `file_data`.",
                                                 code: "unsupported_content")
            }
            if data.hasPrefix("data:") { return media(ImageSource(url: data), defaultType: "application/pdf") }
            let type = file?["filename"]?.stringValue.flatMap { mimeType(forURL: $0) } ?? "application/pdf"
            return .inline(mimeType: type, data: data)
        case "refusal":
            return .text(value["refusal"]?.stringValue ?? "")
        default:
            throw PluginError.invalidRequest("\(location): content part type '\(type)' is not supported by Gemini.",
                                             code: "unsupported_content")
        }
    }

    static let knownTypes: [(String, String)] = [
        (".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".gif", "image/gif"),
        (".webp", "image/webp"), (".heic", "image/heic"), (".heif", "image/heif"), (".pdf", "application/pdf"),
        (".mp3", "audio/mp3"), (".wav", "audio/wav"), (".flac", "audio/flac"), (".ogg", "audio/ogg"),
        (".mp4", "video/mp4"), (".mov", "video/mov"), (".webm", "video/webm"), (".txt", "text/plain"),
    ]

    /// The media type implied by a URL's (or file name's) extension, if known.
    static func mimeType(forURL url: String) -> String? {
        var path = Substring(url)
        if let cut = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<cut] }
        let lowered = path.lowercased()
        return knownTypes.first { lowered.hasSuffix($0.0) }?.1
    }

    /// Arguments as a JSON object (OpenAI sends a string), and the thought signature Prism folded
    /// into the call id (see GeminiResponse.callID) or the client kept in Google's `extra_content`.
    static func functionCallArguments(_ call: ToolCall, message: Int, call callIndex: Int,
                                      body: JSONValue) throws(PluginError) -> ([UInt8], String?)
    {
        var signature: String?
        if let folded = GeminiResponse.signature(inCallID: call.id) {
            signature = folded
        } else if let calls = body["messages"]?.arrayValue?[message]["tool_calls"]?.arrayValue,
                  let raw = calls.first(where: { $0["id"]?.stringValue == call.id })
        {
            signature = raw["extra_content"]?["google"]?["thought_signature"]?.stringValue
        }
        let arguments = Array(call.arguments.utf8)
        guard let first = arguments.first(where: { !isSpace($0) }) else { return (Array("{}".utf8), signature) }
        let valid = arguments.withUnsafeBytes { buffer in (try? JSONScanner.validate(buffer)) != nil }
        guard valid, first == UInt8(ascii: "{") else {
            throw PluginError.invalidRequest(
                "messages[\(message)].tool_calls[\(callIndex)].function.arguments must be a JSON object (Gemini takes arguments as an object).",
                code: "invalid_tool_arguments")
        }
        return (arguments, signature)
    }

    /// Gemini's `functionResponse.response` must be an object: a JSON object result is sent as is,
    /// anything else as `{"content": <text>}`.
    static func functionResponse(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        if bytes.first(where: { !isSpace($0) }) == UInt8(ascii: "{"),
           bytes.withUnsafeBytes({ (try? JSONScanner.validate($0)) != nil })
        {
            return bytes
        }
        var writer = JSONWriter(capacity: bytes.count + 16)
        writer.beginObject()
        writer.string("content", text)
        writer.endObject()
        return writer.bytes
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    static func write(_ content: Content, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.string("role", content.role)
        writer.key("parts")
        writer.beginArray()
        for part in content.parts {
            writer.beginObject()
            switch part {
            case let .text(text):
                writer.string("text", text)
            case let .inline(mimeType, data):
                writer.key("inlineData")
                writer.beginObject()
                writer.string("mimeType", mimeType)
                writer.string("data", data)
                writer.endObject()
            case let .file(mimeType, uri):
                writer.key("fileData")
                writer.beginObject()
                writer.string("mimeType", mimeType)
                writer.string("fileUri", uri)
                writer.endObject()
            case let .functionCall(name, args, signature):
                writer.key("functionCall")
                writer.beginObject()
                writer.string("name", name)
                writer.key("args")
                writer.raw(bytes: args)
                writer.endObject()
                if let signature { writer.string("thoughtSignature", signature) }
            case let .functionResponse(name, response):
                writer.key("functionResponse")
                writer.beginObject()
                writer.string("name", name)
                writer.key("response")
                writer.raw(bytes: response)
                writer.endObject()
            }
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
    }

    // MARK: Tools and generation settings

    static func writeTools(_ request: ChatRequest, to writer: inout JSONWriter) {
        guard !request.tools.isEmpty else { return }
        writer.key("tools")
        writer.beginArray()
        writer.beginObject()
        writer.key("functionDeclarations")
        writer.beginArray()
        for tool in request.tools {
            writer.beginObject()
            writer.string("name", tool.name)
            if let description = tool.description { writer.string("description", description) }
            // A function without parameters must omit them: Gemini rejects an OBJECT with no properties.
            if !GeminiSchema.omitsParameters(tool.parameters) {
                writer.key("parameters")
                GeminiSchema.write(tool.parameters, to: &writer)
            }
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        writer.endArray()

        guard let choice = request.toolChoice else { return }
        writer.key("toolConfig")
        writer.beginObject()
        writer.key("functionCallingConfig")
        writer.beginObject()
        switch choice {
        case .auto: writer.string("mode", "AUTO")
        case .none: writer.string("mode", "NONE")
        case .required: writer.string("mode", "ANY")
        case let .function(name):
            writer.string("mode", "ANY")
            writer.key("allowedFunctionNames")
            writer.beginArray()
            writer.string(name)
            writer.endArray()
        }
        writer.endObject()
        writer.endObject()
    }

    static func writeGenerationConfig(_ request: ChatRequest, to writer: inout JSONWriter) throws(PluginError) {
        let body = request.body
        var opened = false
        func open(_ writer: inout JSONWriter) {
            guard !opened else { return }
            opened = true
            writer.key("generationConfig")
            writer.beginObject()
        }
        /// Numbers are copied as the client wrote them.
        func number(_ field: String, as name: String, _ writer: inout JSONWriter) {
            guard let value = body[field], case .number = value else { return }
            open(&writer)
            writer.key(name)
            value.write(to: &writer)
        }
        number("temperature", as: "temperature", &writer)
        number("top_p", as: "topP", &writer)
        number("top_k", as: "topK", &writer)
        if let limit = request.maxTokens {
            open(&writer)
            writer.integer("maxOutputTokens", Int64(limit))
        }
        if !request.stop.isEmpty {
            open(&writer)
            writer.key("stopSequences")
            writer.beginArray()
            for stop in request.stop { writer.string(stop) }
            writer.endArray()
        }
        if let count = request.candidateCount, count > 1 {
            open(&writer)
            writer.integer("candidateCount", Int64(count))
        }
        number("seed", as: "seed", &writer)
        number("presence_penalty", as: "presencePenalty", &writer)
        number("frequency_penalty", as: "frequencyPenalty", &writer)
        switch request.responseFormat {
        case .jsonObject:
            open(&writer)
            writer.string("responseMimeType", "application/json")
        case let .jsonSchema(_, schema, _):
            open(&writer)
            writer.string("responseMimeType", "application/json")
            writer.key("responseSchema")
            GeminiSchema.write(schema, to: &writer)
        case .text, nil:
            break
        }
        // The client's own thinkingConfig wins; else reasoning_effort becomes a thinking budget
        // with thought summaries included (they come back as reasoning_content); `none` sets the
        // budget to 0 (thinking off where the model allows it).
        if let native = body["thinkingConfig"] ?? body["thinking_config"], case .object = native {
            open(&writer)
            writer.key("thinkingConfig")
            native.write(to: &writer)
        } else if let effort = try ReasoningEffort.of(request) {
            open(&writer)
            writer.key("thinkingConfig")
            writer.beginObject()
            if let budget = effort.budgetTokens() {
                writer.integer("thinkingBudget", Int64(budget))
                writer.bool("includeThoughts", true)
            } else {
                writer.integer("thinkingBudget", 0)
            }
            writer.endObject()
        }
        if opened { writer.endObject() }
    }
}
