import PrismPluginABI
import PrismWire

/// Forwarding for upstreams that already speak OpenAI's format: the bytes go through unchanged,
/// and only what the host must learn (usage, the model that answered) is read on the way.
public enum OpenAIRelay {
    /// A 2xx non-streaming answer: forwarded as is; usage read from it. It must be an answer: a
    /// JSON object with `choices` (completions) or `data` (embeddings) and no `error`. Anything
    /// else (an HTML page, a proxy's error object, an empty body) is a 502, never a 200 that a
    /// cache would keep.
    public static func relayResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        let body = response.body
        // One pass with the pull reader, no member array: the first `error`, `choices`, `data`
        // and `usage` (as JSONScanner.member finds them), the rest skipped and validated.
        var failure: Range<Int>?, choices: Range<Int>?, data: Range<Int>?, usage: Range<Int>?
        do {
            var reader = JSONReader(body)
            try reader.enterObject()
            while let key = try reader.nextKey() {
                let value = try reader.skipValue()
                if failure == nil && reader.key(key, is: "error") { failure = value }
                if choices == nil && reader.key(key, is: "choices") { choices = value }
                if data == nil && reader.key(key, is: "data") { data = value }
                if usage == nil && reader.key(key, is: "usage") { usage = value }
            }
            try reader.finish()
        } catch {
            let type = response.header("content-type") ?? "no content-type"
            throw PluginError.upstream(status: 502, message: "upstream answered HTTP \(response.status) with a body "
                + "that is not a JSON object (\(type), \(body.count) bytes): \(error.reason)")
        }
        if let failure, body[failure.lowerBound] != UInt8(ascii: "n") { // "error": null is no error
            let message = OpenAIErrorBody.message(in: Array(body)) ?? "an error object"
            throw PluginError.upstream(status: 502, message: "upstream answered HTTP \(response.status) with an error: \(message)")
        }
        let answer = [choices, data].contains { $0.map { body[$0.lowerBound] == UInt8(ascii: "[") } ?? false }
        guard answer else {
            throw PluginError.upstream(status: 502, message: "upstream answered HTTP \(response.status) without "
                + "`choices` or `data`: not a completion")
        }
        client.setStatus(200)
        client.setHeader("content-type", response.header("content-type") ?? "application/json")
        client.writeBody(body)
        return usage.flatMap { OpenAIShapes.usage(in: body, object: $0) } ?? Usage()
    }

    /// One upstream SSE event. `[DONE]` is dropped (the host writes its own). A usage-only chunk
    /// (empty `choices`), which the gateway asks for so that usage is always known, is forwarded
    /// only when the client asked for it too.
    /// `state` remembers that the answering model was already passed on (once per stream) and
    /// whether `[DONE]` arrived.
    public static func relayEvent(_ event: PluginEvent, client: StreamSink, clientWantsUsage: Bool,
                                  state: inout OpenAIStreamState) throws(PluginError) {
        let data = event.data
        if data.count == 6, String(decoding: data, as: UTF8.self) == "[DONE]" {
            state.sawDone = true
            return
        }
        // One pass over the event's members (validating it), keeping the few it looks at; the
        // first of a repeated key counts, as JSONScanner.member finds it.
        var failure: JSONMember?, usageMember: JSONMember?, choices: JSONMember?, model: JSONMember?
        do {
            try JSONScanner.forEachMember(data) { member in
                // By length first: most keys of an event are none of these.
                switch member.keyRange.count {
                case 5:
                    if failure == nil, JSONScanner.key(of: member, in: data, is: "error") {
                        failure = member
                    } else if usageMember == nil, JSONScanner.key(of: member, in: data, is: "usage") {
                        usageMember = member
                    } else if model == nil, JSONScanner.key(of: member, in: data, is: "model") {
                        model = member
                    }
                case 7:
                    if choices == nil, JSONScanner.key(of: member, in: data, is: "choices") { choices = member }
                default: break
                }
            }
        } catch {
            throw PluginError.upstream(status: 502, message: "upstream sent an invalid stream event: \(error.reason)")
        }
        if let failure {
            let message = OpenAIErrorBody.message(in: Array(data)) ?? String(decoding: data[failure.valueRange], as: UTF8.self)
            throw PluginError.upstream(status: 502, message: "upstream stream failed: \(message)")
        }
        var usageOnly = false
        if let usageMember, let usage = OpenAIShapes.usage(in: data, object: usageMember.valueRange) {
            client.reportUsage(usage)
            if let choices, let elements = try? JSONScanner.elements(data, in: choices.valueRange), elements.isEmpty {
                usageOnly = true
            }
        }
        if !state.modelReported, let model, let name = JSONScanner.string(data, in: model.valueRange) {
            client.setResponseModel(name)
            state.modelReported = true
        }
        if usageOnly && !clientWantsUsage { return }
        client.emit(data)
    }
}

/// What an OpenAI-format stream relay remembers between events.
public struct OpenAIStreamState: Sendable {
    public var modelReported = false
    public var sawDone = false

    public init() {}

    /// Every complete OpenAI-format stream ends with `data: [DONE]`; one that closed without it
    /// was cut, and the client must be told so rather than handed a clean end.
    public func finish() throws(PluginError) {
        guard sawDone else {
            throw PluginError.upstream(status: 502, message: "the upstream stream ended without data: [DONE]")
        }
    }
}

/// Rewrites an OpenAI-format request body in place of a full re-encode: replaces `model`, and for
/// streams makes sure `stream_options.include_usage` is true. It keeps only the edits: the client's
/// bytes between them go upstream as they are, never copied whole (a body may be megabytes).
public struct OpenAIRequestRewrite {
    /// Whether the client itself asked for the usage chunk.
    public private(set) var clientWantsUsage = false
    /// What replaces each range of the client's body, in order.
    private var edits: [(Range<Int>, [UInt8])] = []
    /// The size of the body the edits were made for (a different one would be read out of bounds).
    private let sourceCount: Int

    /// `completionTokens`: `max_tokens` is sent as `max_completion_tokens` (OpenAI's reasoning
    /// models refuse the older name).
    public init(body: UnsafeRawBufferPointer, upstreamModel: String, streaming: Bool,
                completionTokens: Bool = false) throws(PluginError)
    {
        sourceCount = body.count
        let members: [JSONMember]
        do {
            members = try JSONScanner.members(body)
        } catch {
            throw PluginError.invalidRequest("request body is not a valid JSON object: \(error.reason)",
                                             code: "invalid_json")
        }
        if let model = JSONScanner.member(named: "model", in: members, of: body),
           JSONScanner.string(body, in: model.valueRange) != upstreamModel
        {
            var writer = JSONWriter()
            writer.string(upstreamModel)
            edits.append((model.valueRange, writer.bytes))
        }
        if completionTokens, let maxTokens = JSONScanner.member(named: "max_tokens", in: members, of: body),
           JSONScanner.member(named: "max_completion_tokens", in: members, of: body) == nil
        {
            edits.append((maxTokens.keyRange, Array("max_completion_tokens".utf8)))
        }
        if streaming {
            if let options = JSONScanner.member(named: "stream_options", in: members, of: body),
               body[options.valueRange.lowerBound] == UInt8(ascii: "{"),
               let fields = try? JSONScanner.members(body, in: options.valueRange)
            {
                let existing = JSONScanner.member(named: "include_usage", in: fields, of: body)
                clientWantsUsage = existing.map { JSONScanner.isTrue(body, in: $0.valueRange) } ?? false
                if !clientWantsUsage {
                    var writer = JSONWriter()
                    writer.beginObject()
                    for field in fields where field.keyRange != existing?.keyRange {
                        writer.key(JSONScanner.unescape(body, field.keyRange))
                        writer.raw(bytes: body[field.valueRange])
                    }
                    writer.bool("include_usage", true)
                    writer.endObject()
                    edits.append((options.valueRange, writer.bytes))
                }
            } else if let options = JSONScanner.member(named: "stream_options", in: members, of: body) {
                edits.append((options.valueRange, Array(#"{"include_usage":true}"#.utf8)))
            } else {
                // Insert right after the opening brace.
                var open = 0
                while body[open] != UInt8(ascii: "{") { open += 1 }
                let insertion = members.isEmpty ? #""stream_options":{"include_usage":true}"#
                    : #""stream_options":{"include_usage":true},"#
                edits.append(((open + 1)..<(open + 1), Array(insertion.utf8)))
            }
        }
        edits.sort { $0.0.lowerBound < $1.0.lowerBound }
    }

    /// Writes the rewritten body of `source` (the body this rewrite was made from) to `upstream`.
    public func write(_ source: UnsafeRawBufferPointer, to upstream: HTTPBuilder) {
        forEachPiece(of: source) { upstream.writeBody($0) }
    }

    /// The rewritten body of `source` as one array.
    public func rewritten(_ source: UnsafeRawBufferPointer) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(source.count + 64)
        forEachPiece(of: source) { output.append(contentsOf: $0) }
        return output
    }

    private func forEachPiece(of source: UnsafeRawBufferPointer, _ piece: (UnsafeRawBufferPointer) -> Void) {
        precondition(source.count == sourceCount, "OpenAIRequestRewrite: not the body it was made from")
        var position = 0
        for (range, replacement) in edits {
            if range.lowerBound > position { piece(UnsafeRawBufferPointer(rebasing: source[position..<range.lowerBound])) }
            replacement.withUnsafeBytes { piece($0) }
            position = range.upperBound
        }
        if source.count > position { piece(UnsafeRawBufferPointer(rebasing: source[position..<source.count])) }
    }
}
