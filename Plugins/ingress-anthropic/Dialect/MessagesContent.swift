import PluginKit
import PrismWire

/// Anthropic content blocks → canonical content parts, tool calls, tool messages and thinking
/// blocks (the pieces MessagesRequest assembles into messages).
extension MessagesRequest {
    /// A block's `cache_control` when it is an object.
    static func cacheControl(of block: JSONValue) -> JSONValue? {
        guard let control = block["cache_control"], case .object = control else { return nil }
        return control
    }

    /// A canonical content part with the block's cache_control (the providers read it per part).
    static func part(_ members: [(String, JSONValue)], of block: JSONValue) -> JSONValue {
        var members = members
        if let control = cacheControl(of: block) { members.append(("cache_control", control)) }
        return .object(members)
    }

    static func textPart(_ block: JSONValue, path: String) throws(PluginError) -> JSONValue {
        guard let text = block["text"]?.stringValue else {
            throw invalid("\(path).text: Field required", code: "invalid_messages")
        }
        return part([("type", .string("text")), ("text", .string(text))], of: block)
    }

    /// text, image and document blocks → canonical parts.
    static func contentParts(_ block: JSONValue, type: String, path: String) throws(PluginError) -> [JSONValue] {
        switch type {
        case "text":
            return [try textPart(block, path: path)]
        case "image":
            return [try imagePart(block, path: path)]
        case "document":
            return try documentParts(block, path: path)
        default:
            throw invalid("\(path): content blocks of type `\(type)` are not supported here", code: "unsupported_content")
        }
    }

    /// base64 → an `image_url` data URL; url → its URL.
    static func imagePart(_ block: JSONValue, path: String) throws(PluginError) -> JSONValue {
        guard let source = block["source"], case .object = source else {
            throw invalid("\(path).source: Field required", code: "invalid_messages")
        }
        let url: String
        switch source["type"]?.stringValue {
        case "base64":
            guard let mediaType = source["media_type"]?.stringValue, let data = source["data"]?.stringValue else {
                throw invalid("\(path).source: base64 images need `media_type` and `data`", code: "invalid_messages")
            }
            url = "data:\(mediaType);base64,\(data)"
        case "url":
            guard let location = source["url"]?.stringValue else {
                throw invalid("\(path).source.url: Field required", code: "invalid_messages")
            }
            url = location
        case let other:
            throw invalid("\(path).source: image sources of type `\(other ?? "?")` are not supported by this gateway (use base64 or url)",
                          code: "unsupported_content")
        }
        return part([("type", .string("image_url")), ("image_url", .object([("url", .string(url))]))], of: block)
    }

    /// A document: a base64 PDF → a `file` part with a data URL (what the Anthropic provider
    /// turns back into a document block); plain text → a text part; a content source → its text
    /// and image parts. URL and Files-API sources have no canonical form: a 400.
    static func documentParts(_ block: JSONValue, path: String) throws(PluginError) -> [JSONValue] {
        guard let source = block["source"], case .object = source else {
            throw invalid("\(path).source: Field required", code: "invalid_messages")
        }
        switch source["type"]?.stringValue {
        case "base64":
            guard let mediaType = source["media_type"]?.stringValue, let data = source["data"]?.stringValue else {
                throw invalid("\(path).source: base64 documents need `media_type` and `data`", code: "invalid_messages")
            }
            var file: [(String, JSONValue)] = []
            if let title = block["title"]?.stringValue, !title.isEmpty { file.append(("filename", .string(title))) }
            file.append(("file_data", .string("data:\(mediaType);base64,\(data)")))
            return [part([("type", .string("file")), ("file", .object(file))], of: block)]
        case "text":
            guard let data = source["data"]?.stringValue else {
                throw invalid("\(path).source.data: Field required", code: "invalid_messages")
            }
            return [part([("type", .string("text")), ("text", .string(data))], of: block)]
        case "content":
            if let text = source["content"]?.stringValue {
                return [part([("type", .string("text")), ("text", .string(text))], of: block)]
            }
            var parts: [JSONValue] = []
            for (index, inner) in (source["content"]?.arrayValue ?? []).enumerated() {
                let innerPath = "\(path).source.content.\(index)"
                switch inner["type"]?.stringValue {
                case "text": parts.append(try textPart(inner, path: innerPath))
                case "image": parts.append(try imagePart(inner, path: innerPath))
                case let other:
                    throw invalid("\(innerPath): document content of type `\(other ?? "?")` is not supported",
                                  code: "unsupported_content")
                }
            }
            return parts
        case let other:
            throw invalid("\(path).source: document sources of type `\(other ?? "?")` are not supported by this gateway "
                + "(send the document as base64 or text)", code: "unsupported_content")
        }
    }

    /// tool_use → `{id, type: function, function: {name, arguments: <input as JSON text>}}`.
    static func toolCall(_ block: JSONValue, path: String) throws(PluginError) -> JSONValue {
        guard let id = block["id"]?.stringValue else { throw invalid("\(path).id: Field required", code: "invalid_messages") }
        guard let name = block["name"]?.stringValue else {
            throw invalid("\(path).name: Field required", code: "invalid_messages")
        }
        let input = block["input"] ?? .object([])
        guard case .object = input else {
            throw invalid("\(path).input: Input should be a valid dictionary", code: "invalid_messages")
        }
        return .object([("id", .string(id)), ("type", .string("function")),
                        ("function", .object([("name", .string(name)), ("arguments", .string(input.jsonText))]))])
    }

    /// tool_result → a `tool` message. The canonical format has no error flag: `is_error` puts
    /// "Error: " before the result's text (a leading text part when it has none).
    static func toolResult(_ block: JSONValue, path: String) throws(PluginError) -> CanonicalMessage {
        guard let id = block["tool_use_id"]?.stringValue else {
            throw invalid("\(path).tool_use_id: Field required", code: "invalid_messages")
        }
        let isError = block["is_error"]?.boolValue ?? false
        let prefix = "Error: "
        var content: JSONValue
        switch block["content"] {
        case nil, .null?:
            content = .string(isError ? "Error" : "")
        case let .string(text)?:
            content = .string(isError ? prefix + text : text)
        case let .array(blocks)?:
            var parts: [JSONValue] = []
            for (index, inner) in blocks.enumerated() {
                let innerPath = "\(path).content.\(index)"
                guard let type = inner["type"]?.stringValue, type == "text" || type == "image" || type == "document" else {
                    throw invalid("\(innerPath): tool results of type `\(inner["type"]?.stringValue ?? "?")` are not supported by this gateway",
                                  code: "unsupported_content")
                }
                parts += try contentParts(inner, type: type, path: innerPath)
            }
            if isError {
                if let first = parts.firstIndex(where: { $0["type"]?.stringValue == "text" }),
                   case var .object(members) = parts[first], let textAt = members.firstIndex(where: { $0.0 == "text" })
                {
                    members[textAt].1 = .string(prefix + (members[textAt].1.stringValue ?? ""))
                    parts[first] = .object(members)
                } else {
                    parts.insert(.object([("type", .string("text")), ("text", .string("Error"))]), at: 0)
                }
            }
            content = .array(parts)
        default:
            throw invalid("\(path).content: Input should be a valid string or list of content blocks", code: "invalid_messages")
        }
        return CanonicalMessage(role: "tool", content: content, toolCallID: id, cacheControl: cacheControl(of: block))
    }

    /// thinking / redacted_thinking → a `thinking_blocks` element, signature kept.
    static func thinkingBlock(_ block: JSONValue, type: String, path: String) throws(PluginError) -> ThinkingBlock {
        if type == "thinking" {
            guard let text = block["thinking"]?.stringValue else {
                throw invalid("\(path).thinking: Field required", code: "invalid_messages")
            }
            return .thinking(text: text, signature: block["signature"]?.stringValue)
        }
        guard let data = block["data"]?.stringValue else {
            throw invalid("\(path).data: Field required", code: "invalid_messages")
        }
        return .redacted(data: data)
    }
}
