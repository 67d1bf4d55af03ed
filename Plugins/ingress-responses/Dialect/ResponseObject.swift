import PluginKit
import PrismWire

/// One output item of a response, as the stream builds it and the response object lists it.
enum OutputItem {
    case reasoning(id: String, text: String)
    case message(id: String, text: String, refusal: String?)
    case functionCall(id: String, callID: String, name: String, arguments: String)

    var id: String {
        switch self {
        case let .reasoning(id, _), let .message(id, _, _), let .functionCall(id, _, _, _): return id
        }
    }

    /// The item as the Responses API shows it; `status` applies to messages and function calls.
    func json(status: String) -> JSONValue {
        switch self {
        case let .reasoning(id, text):
            let summary: [JSONValue] = text.isEmpty ? [] : [ResponseObject.summaryPart(text)]
            return .object([("type", .string("reasoning")), ("id", .string(id)), ("summary", .array(summary))])
        case let .message(id, text, refusal):
            var content: [JSONValue] = []
            if let refusal { content.append(.object([("type", .string("refusal")), ("refusal", .string(refusal))])) }
            if refusal == nil || !text.isEmpty { content.append(ResponseObject.textPart(text)) }
            return .object([("type", .string("message")), ("id", .string(id)), ("status", .string(status)),
                            ("role", .string("assistant")), ("content", .array(content))])
        case let .functionCall(id, callID, name, arguments):
            return .object([("type", .string("function_call")), ("id", .string(id)), ("call_id", .string(callID)),
                            ("name", .string(name)), ("arguments", .string(arguments)), ("status", .string(status))])
        }
    }
}

/// The Responses API's response object.
enum ResponseObject {
    static func textPart(_ text: String) -> JSONValue {
        .object([("type", .string("output_text")), ("text", .string(text)), ("annotations", .array([]))])
    }

    static func summaryPart(_ text: String) -> JSONValue {
        .object([("type", .string("summary_text")), ("text", .string(text))])
    }

    /// "completed", or "incomplete" with its reason, from a chat finish reason.
    static func outcome(finishReason: String?) -> (status: String, incomplete: JSONValue) {
        switch finishReason {
        case "length"?: return ("incomplete", .object([("reason", .string("max_output_tokens"))]))
        case "content_filter"?: return ("incomplete", .object([("reason", .string("content_filter"))]))
        default: return ("completed", .null)
        }
    }

    static func usage(_ usage: Usage) -> JSONValue {
        func number(_ value: UInt64) -> JSONValue { .number(String(value)) }
        return .object([
            ("input_tokens", number(usage.inputTokens)),
            ("input_tokens_details", .object([("cached_tokens", number(usage.cachedInputTokens))])),
            ("output_tokens", number(usage.outputTokens)),
            ("output_tokens_details", .object([("reasoning_tokens", number(usage.reasoningTokens))])),
            ("total_tokens", number(usage.inputTokens &+ usage.outputTokens)),
        ])
    }

    /// A Responses `usage` object (pass-through answers) as the gateway's usage.
    static func gatewayUsage(_ usage: JSONValue) -> Usage {
        func count(_ value: JSONValue?) -> UInt64 { UInt64(max(0, value?.integerValue ?? 0)) }
        return Usage(inputTokens: count(usage["input_tokens"]), outputTokens: count(usage["output_tokens"]),
                     cachedInputTokens: count(usage["input_tokens_details"]?["cached_tokens"]),
                     reasoningTokens: count(usage["output_tokens_details"]?["reasoning_tokens"]))
    }

    static func make(id: String, createdAt: Int64, status: String, model: String, echo: ResponseEcho,
                     output: [JSONValue], usage: JSONValue = .null, error: JSONValue = .null,
                     incomplete: JSONValue = .null) -> JSONValue
    {
        .object([
            ("id", .string(id)),
            ("object", .string("response")),
            ("created_at", .number(String(createdAt))),
            ("status", .string(status)),
            ("background", .bool(false)),
            ("error", error),
            ("incomplete_details", incomplete),
            ("instructions", echo.instructions),
            ("max_output_tokens", echo.maxOutputTokens),
            ("model", .string(model)),
            ("output", .array(output)),
            ("parallel_tool_calls", echo.parallelToolCalls),
            ("previous_response_id", echo.previousResponseID),
            ("reasoning", echo.reasoning),
            ("store", .bool(echo.store)),
            ("temperature", echo.temperature),
            ("text", echo.text),
            ("tool_choice", echo.toolChoice),
            ("tools", echo.tools),
            ("top_p", echo.topP),
            ("truncation", .string("disabled")),
            ("usage", usage),
            ("user", echo.user),
            ("metadata", echo.metadata),
        ])
    }
}
