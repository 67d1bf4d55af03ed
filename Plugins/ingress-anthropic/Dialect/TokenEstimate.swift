import PluginKit
import PrismWire

/// POST /v1/messages/count_tokens answers with an estimate, not a tokenizer's count: the gateway
/// has no Claude tokenizer and the request may be routed to any provider.
///
/// The estimate: ceil(UTF-8 bytes / 4) over the system prompt, every text block, each tool_use's
/// name and input (as JSON), tool_result contents, plain-text documents, and each tool's name,
/// description and input_schema (as JSON); plus 3 tokens per message (role and framing) and a
/// fixed 1,600 per image or PDF document (about what Claude charges for a 1.15-megapixel image;
/// PDFs are charged per page, which the gateway cannot know without rendering them). Thinking
/// blocks of earlier turns count nothing: Claude drops them from the context. Claude averages
/// 3.5–4 bytes per token on English prose, so this is close there and low for code or non-Latin
/// scripts.
///
/// The request is validated as a Messages request would be (`max_tokens` aside), so a body that
/// count_tokens accepts is one /v1/messages accepts too.
enum TokenEstimate {
    static let bytesPerToken = 4
    static let tokensPerMessage = 3
    static let tokensPerImage = 1_600

    static func inputTokens(_ body: JSONValue) throws(PluginError) -> Int {
        let (_, messages) = try MessagesRequest.validated(body)
        var scratch = JSONWriter(capacity: 0)
        try MessagesRequest.writeConversation(body, messages: messages, to: &scratch)
        try MessagesRequest.writeTools(body, to: &scratch)

        var tally = Tally()
        if let text = body["system"]?.stringValue {
            tally.bytes += text.utf8.count
        } else {
            for block in body["system"]?.arrayValue ?? [] { tally.add(block) }
        }
        for message in messages {
            tally.fixed += tokensPerMessage
            if let text = message["content"]?.stringValue {
                tally.bytes += text.utf8.count
            } else {
                for block in message["content"]?.arrayValue ?? [] { tally.add(block) }
            }
        }
        for tool in body["tools"]?.arrayValue ?? [] {
            tally.bytes += (tool["name"]?.stringValue ?? "").utf8.count
            tally.bytes += (tool["description"]?.stringValue ?? "").utf8.count
            tally.bytes += tool["input_schema"]?.jsonBytes.count ?? 0
        }
        return (tally.bytes + bytesPerToken - 1) / bytesPerToken + tally.fixed
    }

    struct Tally {
        var bytes = 0
        var fixed = 0

        mutating func add(_ block: JSONValue) {
            switch block["type"]?.stringValue {
            case "text":
                bytes += (block["text"]?.stringValue ?? "").utf8.count
            case "image":
                fixed += TokenEstimate.tokensPerImage
            case "document":
                let source = block["source"]
                switch source?["type"]?.stringValue {
                case "text": bytes += (source?["data"]?.stringValue ?? "").utf8.count
                case "content":
                    if let text = source?["content"]?.stringValue {
                        bytes += text.utf8.count
                    } else {
                        for inner in source?["content"]?.arrayValue ?? [] { add(inner) }
                    }
                default: fixed += TokenEstimate.tokensPerImage
                }
            case "tool_use":
                bytes += (block["name"]?.stringValue ?? "").utf8.count
                bytes += block["input"]?.jsonBytes.count ?? 2
            case "tool_result":
                if let text = block["content"]?.stringValue {
                    bytes += text.utf8.count
                } else {
                    for inner in block["content"]?.arrayValue ?? [] { add(inner) }
                }
            default:
                break // thinking, redacted_thinking
            }
        }
    }
}
