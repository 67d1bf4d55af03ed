import AWSKit
import PluginKit
import PrismPluginABI
import PrismWire

/// Bedrock answers → OpenAI answers: Converse responses, errors (HTTP and stream exceptions).
enum BedrockResponse {
    /// `stopReason` → OpenAI `finish_reason`; nil for the malformed-output reasons, which are errors.
    static func finishReason(_ stopReason: String?, toolCalls: Int) -> String? {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": return "length"
        case "tool_use": return toolCalls > 0 ? "tool_calls" : "stop"
        case "guardrail_intervened", "content_filtered": return "content_filter"
        case "malformed_model_output", "malformed_tool_use": return nil
        default: return "stop" // end_turn, stop_sequence, and reasons added later
        }
    }

    static func malformedOutput(_ stopReason: String) -> PluginError {
        PluginError.upstream(status: 502, message: "the model's output could not be used (stopReason \(stopReason))")
    }

    /// Bedrock reports cache reads and writes apart from `inputTokens`; OpenAI's prompt_tokens
    /// includes both, with the reads also reported as cached tokens.
    static func usage(_ fields: JSONFields) -> Usage {
        let read = UInt64(clamping: fields.integer("cacheReadInputTokens") ?? 0)
        let written = UInt64(clamping: fields.integer("cacheWriteInputTokens") ?? 0)
        return Usage(inputTokens: UInt64(clamping: fields.integer("inputTokens") ?? 0) + read + written,
                     outputTokens: UInt64(clamping: fields.integer("outputTokens") ?? 0),
                     cachedInputTokens: read, cacheWriteTokens: written)
    }

    /// A Converse response → `chat.completion`.
    static func completion(_ body: UnsafeRawBufferPointer, id: String, model: String, created: Int64,
                           answerTool: Bool) throws(PluginError) -> ChatCompletion
    {
        let response: JSONFields
        do {
            response = try JSONFields(body)
        } catch {
            throw PluginError.upstream(status: 502, message: "Bedrock sent an invalid JSON answer: \(error.reason)")
        }
        guard let message = response.object("output")?.object("message") else {
            throw PluginError.upstream(status: 502, message: "the Bedrock answer has no output.message")
        }
        var text = ""
        var sawText = false
        var calls: [ToolCall] = []
        var reasoning: String?
        var thinking: [ThinkingBlock] = []
        for block in message.objects("content") {
            if let content = block.object("reasoningContent") {
                if let redacted = content.string("redactedContent") {
                    thinking.append(.redacted(data: redacted))
                } else if let text = content.object("reasoningText") {
                    let piece = text.string("text") ?? ""
                    reasoning = (reasoning ?? "") + piece
                    thinking.append(.thinking(text: piece, signature: text.string("signature")))
                }
            } else if let fragment = block.string("text") {
                text += fragment
                sawText = true
            } else if let use = block.object("toolUse") {
                let name = use.string("name") ?? "", input = use.value("input")?.jsonText ?? "{}"
                if answerTool && name == BedrockRequest.answerToolName {
                    text += input
                    sawText = true
                } else {
                    calls.append(ToolCall(id: use.string("toolUseId") ?? "", name: name, arguments: input))
                }
            }
            // citationsContent, ...: no slot in OpenAI's message.
        }
        let stopReason = response.string("stopReason")
        guard let finish = finishReason(stopReason, toolCalls: calls.count) else { throw malformedOutput(stopReason ?? "") }
        return ChatCompletion(id: id, model: model, created: created, text: sawText || calls.isEmpty ? text : nil,
                              toolCalls: calls, finishReason: finish,
                              usage: response.object("usage").map(usage) ?? Usage(), reasoning: reasoning,
                              thinkingBlocks: thinking)
    }

    /// An error name (`ThrottlingException`, or a stream's `throttlingException`) → HTTP status
    /// and OpenAI type; nil for names without a mapping of their own.
    static func classify(_ name: String) -> (status: UInt32, type: String, code: String)? {
        switch name.lowercased() {
        case "throttlingexception", "servicequotaexceededexception":
            return (429, "rate_limit_error", "rate_limit_exceeded")
        case "validationexception":
            return (400, "invalid_request_error", "provider_error")
        case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
             "expiredtokenexception", "incompletesignatureexception", "missingauthenticationtokenexception":
            // The gateway's AWS credentials were refused: a gateway-side fault, not the client's.
            return (502, "provider_error", "provider_auth_error")
        case "serviceunavailableexception", "modelnotreadyexception":
            return (503, "overloaded_error", "provider_overloaded")
        default:
            return nil
        }
    }

    /// `{"message"}` (or `{"Message"}`) with `x-amzn-ErrorType: Name:namespace` → the OpenAI error
    /// the client gets. Names without a mapping become 502 provider_error.
    static func error(status: UInt32, errorType: String?, body: UnsafeRawBufferPointer) -> PluginError {
        let name = errorType.map { String($0.prefix { $0 != ":" }) }.flatMap { $0.isEmpty ? nil : $0 }
        let fields = try? JSONFields(body)
        let message = fields?.string("message") ?? fields?.string("Message")
            ?? String(decoding: body.prefix(512), as: UTF8.self)
        let described = name.map { "\(message) (\($0))" } ?? message
        let text = "upstream returned HTTP \(status): \(described)"
        if let name, let mapped = classify(name) {
            return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: mapped.status, type: mapped.type,
                               code: mapped.code, message: text)
        }
        if name == nil {
            // No error type (a proxy in between, say): the status decides.
            var error = OpenAIShapes.upstreamError(status: status, body: [])
            error.message = text
            return error
        }
        return PluginError.upstream(status: 502, message: text)
    }

    /// An exception or error frame inside a ConverseStream.
    static func streamError(_ message: AWSEventStream.Message) -> PluginError {
        if message.string(":message-type") == "exception" {
            let name = message.string(":exception-type") ?? "exception"
            // {"message"}; modelStreamErrorException adds originalStatusCode and originalMessage.
            let (text, originalStatus) = message.payload.withUnsafeBytes { bytes in
                let fields = try? JSONFields(bytes)
                return (fields?.string("message") ?? String(decoding: bytes.prefix(512), as: UTF8.self),
                        fields?.integer("originalStatusCode"))
            }
            let original = originalStatus.map { ", original status \($0)" } ?? ""
            let description = "upstream stream failed: \(text) (\(name)\(original))"
            if let mapped = classify(name) {
                return PluginError(status: PRISM_ERROR_UPSTREAM, httpStatus: mapped.status, type: mapped.type,
                                   code: mapped.code, message: description)
            }
            return PluginError.upstream(status: 502, message: description)
        }
        let code = message.string(":error-code") ?? "error"
        let text = message.string(":error-message") ?? ""
        return PluginError.upstream(status: 502, message: "upstream stream failed: \(text) (\(code))")
    }
}

/// Translates one ConverseStream (binary event-stream frames, split anywhere) into OpenAI chunks.
package struct BedrockStream {
    let includeUsage: Bool
    let answerTool: Bool
    /// contentBlockIndex keys of answer-tool blocks, whose input fragments are the content.
    private var answerBlocks: Set<String> = []
    /// Reasoning blocks still streaming, by contentBlockIndex key: text and signature so far.
    private var reasoning: [String: (text: String, signature: String?)] = [:]
    private var decoder = AWSEventStreamDecoder()
    private var writer: ChatStreamWriter
    private var usage = Usage()
    private var usageSent = false
    private(set) var stopped = false

    package init(id: String, model: String, created: Int64, includeUsage: Bool, answerTool: Bool = false) {
        self.includeUsage = includeUsage
        self.answerTool = answerTool
        writer = ChatStreamWriter(id: id, model: model, created: created)
    }

    package mutating func feed(_ chunk: UnsafeRawBufferPointer, client: StreamSink) throws(PluginError) {
        decoder.append(chunk)
        while true {
            let message: AWSEventStream.Message?
            do {
                message = try decoder.next()
            } catch {
                throw PluginError.upstream(status: 502, message: "Bedrock sent a corrupt event stream: \(error.reason)")
            }
            guard let message else { return }
            try handle(message, client: client)
        }
    }

    mutating func handle(_ message: AWSEventStream.Message, client: StreamSink) throws(PluginError) {
        switch message.string(":message-type") {
        case "event"?: break
        case "exception"?, "error"?: throw BedrockResponse.streamError(message)
        default: return
        }
        guard let type = message.string(":event-type") else { return }
        let outcome = message.payload.withUnsafeBytes { bytes in
            Result { () throws(PluginError) in
                let event: JSONFields
                do throws(JSONSyntaxError) {
                    event = try JSONFields(bytes)
                } catch {
                    throw PluginError.upstream(status: 502, message: "Bedrock sent an invalid \(type) event: \(error.reason)")
                }
                try handle(type, event, client: client)
            }
        }
        try outcome.get()
    }

    private mutating func handle(_ type: String, _ event: JSONFields, client: StreamSink) throws(PluginError) {
        // Blocks are keyed by contentBlockIndex: text blocks usually get no contentBlockStart.
        let key = event.integer("contentBlockIndex").map { String($0) } ?? ""
        switch type {
        case "contentBlockStart":
            if let use = event.object("start")?.object("toolUse") {
                let name = use.string("name") ?? ""
                if answerTool && name == BedrockRequest.answerToolName {
                    answerBlocks.insert(key)
                } else {
                    writer.startToolCall(key: key, id: use.string("toolUseId") ?? "", name: name, client: client)
                }
            }
        case "contentBlockDelta":
            guard let delta = event.object("delta") else { return }
            if let text = delta.string("text") {
                writer.text(text, client: client)
            } else if let input = delta.object("toolUse")?.string("input") {
                if answerBlocks.contains(key) {
                    writer.text(input, client: client)
                } else {
                    writer.toolArguments(key: key, fragment: input, client: client)
                }
            } else if let content = delta.object("reasoningContent") {
                // Text streams as reasoning_content; the signed block follows at contentBlockStop.
                if let redacted = content.string("redactedContent") {
                    writer.thinkingBlock(.redacted(data: redacted), client: client)
                } else {
                    var block = reasoning[key] ?? ("", nil)
                    if let text = content.string("text") {
                        block.text += text
                        writer.reasoning(text, client: client)
                    }
                    if let signature = content.string("signature") { block.signature = (block.signature ?? "") + signature }
                    reasoning[key] = block
                }
            }
            // citation deltas: no slot in OpenAI's chunks.
        case "contentBlockStop":
            if let block = reasoning.removeValue(forKey: key) {
                writer.thinkingBlock(.thinking(text: block.text, signature: block.signature), client: client)
            }
        case "messageStop":
            let stopReason = event.string("stopReason")
            guard let finish = BedrockResponse.finishReason(stopReason, toolCalls: writer.toolCallCount) else {
                throw BedrockResponse.malformedOutput(stopReason ?? "")
            }
            stopped = true
            writer.finish(reason: finish, client: client)
        case "metadata":
            if let fields = event.object("usage") { usage = BedrockResponse.usage(fields) }
            // Usage follows messageStop; OpenAI's usage chunk comes after the finish chunk.
            if stopped {
                writer.usage(usage, includeChunk: includeUsage && !usageSent, client: client)
                usageSent = true
            } else {
                client.reportUsage(usage)
            }
        default:
            break // messageStart, and event types added later
        }
    }

    /// The upstream closed the stream: it must have ended cleanly (messageStop, no partial frame).
    package mutating func finish(client: StreamSink) throws(PluginError) {
        if decoder.hasPartialFrame {
            throw PluginError.upstream(status: 502, message: "the Bedrock stream ended inside an event-stream frame")
        }
        guard stopped else { throw PluginError.upstream(status: 502, message: "the Bedrock stream ended before messageStop") }
        if !usageSent {
            writer.usage(usage, includeChunk: includeUsage, client: client)
            usageSent = true
        }
    }
}
