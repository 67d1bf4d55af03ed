import PluginKit
import PrismWire

/// One legacy completions request.
///
/// Supported: one text prompt (a string, or a list holding one string), `max_tokens` (default
/// 16, as OpenAI's legacy API), temperature, top_p, n, stop, presence/frequency penalties,
/// logit_bias, user, seed, stream (+ `stream_options.include_usage`), `echo`.
/// Refused with a 400: several prompts or token-id prompts (one prompt per request), a
/// non-empty `suffix`, `logprobs` other than null or 0, `best_of` above 1 (chat models
/// return neither log probabilities of the legacy kind nor insertions).
package final class CompletionsExchange: IngressExchange {
    private var prompt = ""
    private var echo = false
    private var includeUsage = false
    /// Choices whose echoed prompt went out already (streams).
    private var echoed: Set<Int> = []
    private var usageSent = false
    private var streamID = ""
    private var streamCreated: Int64 = 0
    private var streamModel = ""

    package init() {}

    // MARK: Decode

    package func decode(_ request: IngressRequest, later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult? {
        do {
            return .forward(CanonicalRequest(body: try translate(request.body)))
        } catch {
            // What chat cannot carry, a server with native completions may still serve.
            if error.code.hasPrefix("unsupported_"), let routing = CanonicalRequest.routing(from: request.body) {
                return .nativeOnly(routing, error)
            }
            return .failure(error)
        }
    }

    func translate(_ bytes: UnsafeRawBufferPointer) throws(PluginError) -> [UInt8] {
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes)
        } catch {
            throw PluginError.invalidRequest("The request body is not valid JSON: \(error.reason)", code: "invalid_json")
        }
        guard case .object = body else { throw PluginError.invalidRequest("The request body must be a JSON object.") }
        // What chat cannot carry is served only by a provider with native completions (a
        // self-hosted server); for the others it is this 400.
        let onePrompt = "Through chat models this gateway serves one text prompt per request on /v1/completions; send each prompt in a request of its own (token-id prompts need a server with native completions)."
        switch body["prompt"] {
        case let .string(text)?:
            prompt = text
        case let .array(list)? where list.count == 1 && list[0].stringValue != nil:
            prompt = list[0].stringValue!
        case .array?:
            throw PluginError.invalidRequest(onePrompt, code: "unsupported_prompt")
        case nil, .null?:
            throw PluginError.invalidRequest("`prompt` is required.", code: "missing_prompt")
        default:
            throw PluginError.invalidRequest("`prompt` must be a string. " + onePrompt, code: "unsupported_prompt")
        }
        if let suffix = body["suffix"], !suffix.isNull, suffix.stringValue != "" {
            throw PluginError.invalidRequest("`suffix` (insertion) needs a server with native completions.",
                                             code: "unsupported_parameter")
        }
        if let logprobs = body["logprobs"], !logprobs.isNull, logprobs.integerValue != 0 {
            throw PluginError.invalidRequest("`logprobs` on /v1/completions needs a server with native completions.",
                                             code: "unsupported_parameter")
        }
        if let bestOf = body["best_of"]?.integerValue, bestOf > 1 {
            throw PluginError.invalidRequest("`best_of` needs a server with native completions.",
                                             code: "unsupported_parameter")
        }
        echo = body["echo"]?.boolValue ?? false
        let stream = body["stream"]?.boolValue ?? false
        includeUsage = stream && (body["stream_options"]?["include_usage"]?.boolValue ?? false)

        var writer = JSONWriter(capacity: 256 + prompt.utf8.count)
        writer.beginObject()
        writer.string("model", body["model"]?.stringValue ?? "")
        writer.key("messages")
        writer.beginArray()
        JSONValue.object([("role", .string("user")), ("content", .string(prompt))]).write(to: &writer)
        writer.endArray()
        writer.key("max_tokens")
        (body["max_tokens"].flatMap { $0.isNull ? nil : $0 } ?? .number("16")).write(to: &writer)
        for name in ["temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "user", "seed"] {
            if let value = body[name], !value.isNull {
                writer.key(name)
                value.write(to: &writer)
            }
        }
        CanonicalRequest.writeStream(stream, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    // MARK: Answers

    static func completionID(_ canonical: String) -> String {
        if canonical.hasPrefix("chatcmpl-") { return "cmpl-" + canonical.dropFirst("chatcmpl-".count) }
        return canonical.hasPrefix("cmpl-") ? canonical : "cmpl-" + canonical
    }

    private static func writeHead(_ writer: inout JSONWriter, id: String, created: Int64, model: String) {
        writer.key(literal: "id")
        writer.string(id)
        writer.member(#""object":"text_completion""#)
        writer.key(literal: "created")
        writer.integer(created)
        writer.key(literal: "model")
        writer.string(model)
    }

    private static func writeChoice(_ writer: inout JSONWriter, text: String, index: Int64, finishReason: String?) {
        writer.beginObject()
        writer.key(literal: "text")
        writer.string(text)
        writer.key(literal: "index")
        writer.integer(index)
        writer.member(#""logprobs":null"#)
        writer.key(literal: "finish_reason")
        if let finishReason { writer.string(finishReason) } else { writer.null() }
        writer.endObject()
    }

    private static func writeUsage(_ writer: inout JSONWriter, _ usage: Usage) {
        writer.key("usage")
        writer.beginObject()
        writer.integer("prompt_tokens", Int64(clamping: usage.inputTokens))
        writer.integer("completion_tokens", Int64(clamping: usage.outputTokens))
        writer.integer("total_tokens", Int64(clamping: usage.inputTokens &+ usage.outputTokens))
        writer.endObject()
    }

    package func encodeResponse(status: UInt32, body: UnsafeRawBufferPointer) throws(PluginError) -> ClientAnswer {
        let answer = try CanonicalRequest.parseAnswer(body)
        var writer = JSONWriter(capacity: 512)
        writer.beginObject()
        Self.writeHead(&writer, id: Self.completionID(answer["id"]?.stringValue ?? ""),
                       created: answer["created"]?.integerValue ?? 0, model: answer["model"]?.stringValue ?? "")
        writer.key("choices")
        writer.beginArray()
        for (position, choice) in (answer["choices"]?.arrayValue ?? []).enumerated() {
            let text = OpenAIShapes.text(ofContent: choice["message"]?["content"])
            Self.writeChoice(&writer, text: echo ? prompt + text : text,
                             index: choice["index"]?.integerValue ?? Int64(position),
                             finishReason: choice["finish_reason"]?.stringValue ?? "stop")
        }
        writer.endArray()
        Self.writeUsage(&writer, answer["usage"].flatMap { $0.isNull ? nil : Usage(openAI: $0) } ?? Usage())
        writer.endObject()
        return .json(200, writer.bytes)
    }

    package func encodeEvent(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(PluginError) {
        guard let chunk = try? CanonicalChunk(bytes) else { return }
        if streamID.isEmpty, let id = chunk.id { streamID = Self.completionID(id) }
        if streamCreated == 0, let created = chunk.created { streamCreated = created }
        if streamModel.isEmpty, let model = chunk.model { streamModel = model }
        if chunk.hasOtherChoices {
            // n > 1: every choice, from the tree (rare; the common single choice stays scanned).
            for (position, choice) in (chunk.value(0..<bytes.count)?["choices"]?.arrayValue ?? []).enumerated() {
                writeChoiceChunk(index: choice["index"]?.integerValue ?? Int64(position),
                                 text: choice["delta"]?["content"]?.stringValue ?? "",
                                 finishReason: choice["finish_reason"]?.stringValue, into: &out)
            }
        } else if chunk.choiceRange != nil {
            writeChoiceChunk(index: 0, text: chunk.content ?? "", finishReason: chunk.finishReason, into: &out)
        }
        if includeUsage, let usage = chunk.usage { writeUsageChunk(usage, into: &out) }
    }

    private func writeChoiceChunk(index: Int64, text: String, finishReason: String?, into out: inout [UInt8]) {
        var text = text
        if echo, !echoed.contains(Int(index)), !text.isEmpty || finishReason != nil {
            echoed.insert(Int(index))
            text = prompt + text
        }
        guard !text.isEmpty || finishReason != nil else { return }
        // Written in place: `data: <json>\n\n` (ServerSentEventWriter's framing).
        out.append(contentsOf: "data: ".utf8)
        let (id, created, model) = (streamID, streamCreated, streamModel)
        JSONWriter.append(to: &out) { writer in
            writer.beginObject()
            Self.writeHead(&writer, id: id, created: created, model: model)
            writer.key(literal: "choices")
            writer.beginArray()
            Self.writeChoice(&writer, text: text, index: index, finishReason: finishReason)
            writer.endArray()
            writer.endObject()
        }
        out.append(0x0A)
        out.append(0x0A)
    }

    private func writeUsageChunk(_ usage: Usage, into out: inout [UInt8]) {
        usageSent = true
        var writer = JSONWriter(capacity: 224)
        writer.beginObject()
        Self.writeHead(&writer, id: streamID, created: streamCreated, model: streamModel)
        writer.key("choices")
        writer.beginArray()
        writer.endArray()
        Self.writeUsage(&writer, usage)
        writer.endObject()
        writer.bytes.withUnsafeBytes { ServerSentEventWriter.frame($0, into: &out) }
    }

    package func finishStream(usage: Usage, into out: inout [UInt8]) throws(PluginError) {
        if includeUsage && !usageSent { writeUsageChunk(usage, into: &out) }
        out.append(contentsOf: ServerSentEventWriter.done)
    }

    package func encodeError(_ error: IngressError, inStream: Bool) -> ClientAnswer {
        let body = OpenAIErrorBody.make(message: error.message, type: error.type, code: error.code.isEmpty ? nil : error.code)
        guard inStream else { return .json(error.status, body) }
        var out: [UInt8] = []
        body.withUnsafeBytes { ServerSentEventWriter.frame($0, into: &out) }
        out.append(contentsOf: ServerSentEventWriter.done)
        return ClientAnswer(status: error.status, body: out)
    }

    package func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout Usage) {
        guard data.first == UInt8(ascii: "{"), let reported = (try? JSONFields(data))?.value("usage"), !reported.isNull
        else { return }
        usage = Usage(openAI: reported)
    }
}
