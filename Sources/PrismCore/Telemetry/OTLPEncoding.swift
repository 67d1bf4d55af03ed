import PrismWire

/// OTLP/HTTP JSON (`ExportTraceServiceRequest` in the protobuf JSON mapping, with OTLP's own
/// rules: trace and span ids as hex strings, 64-bit integers and times as decimal strings, enums
/// as numbers), written with the project's JSONWriter on the exporter's thread.
package enum OTLPEncoding {
    /// The most text one captured attribute keeps (`gen_ai.prompt`, `gen_ai.completion`).
    package static let contentLimit = 16_384

    package static func encode(_ traces: ArraySlice<FinishedTrace>, destination: TraceDestination) -> [UInt8] {
        var writer = JSONWriter(capacity: 1024 * traces.count)
        writer.beginObject()
        writer.key("resourceSpans")
        writer.beginArray()
        writer.beginObject()
        writer.key("resource")
        writer.beginObject()
        writer.key("attributes")
        writer.beginArray()
        write(destination.resource, into: &writer)
        writer.endArray()
        writer.endObject()
        writer.key("scopeSpans")
        writer.beginArray()
        writer.beginObject()
        writer.key("scope")
        writer.beginObject()
        writer.string("name", "prism-gateway")
        writer.endObject()
        writer.key("spans")
        writer.beginArray()
        for trace in traces {
            let traceID = TraceIDs.hex(high: trace.traceHigh, low: trace.traceLow)
            for (index, span) in trace.spans.enumerated() {
                var extra: [SpanAttribute] = []
                if index == 0, let content = trace.content { extra = contentAttributes(content) }
                write(span, traceID: traceID, wallOffset: trace.wallOffset, extra: extra, into: &writer)
            }
        }
        writer.endArray()
        writer.endObject()
        writer.endArray()
        writer.endObject()
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    private static func write(_ span: SpanRecord, traceID: String, wallOffset: UInt64, extra: [SpanAttribute],
                              into writer: inout JSONWriter)
    {
        writer.beginObject()
        writer.string("traceId", traceID)
        writer.key("spanId")
        quotedHex(span.id, into: &writer)
        if span.parent != 0 {
            writer.key("parentSpanId")
            quotedHex(span.parent, into: &writer)
        }
        writer.string("name", span.name)
        writer.integer("kind", Int64(span.kind.rawValue))
        writer.key("startTimeUnixNano")
        quotedDecimal(span.start &+ wallOffset, into: &writer)
        writer.key("endTimeUnixNano")
        quotedDecimal(max(span.end, span.start) &+ wallOffset, into: &writer)
        writer.key("attributes")
        writer.beginArray()
        write(span.attributes, into: &writer)
        write(extra, into: &writer)
        writer.endArray()
        if span.failed {
            writer.key("status")
            writer.beginObject()
            writer.integer("code", 2) // STATUS_CODE_ERROR
            if !span.statusMessage.isEmpty { writer.string("message", SecretRedactor.shared.redact(span.statusMessage)) }
            writer.endObject()
        }
        writer.endObject()
    }

    /// The members of an attribute list (the caller opens and closes the array).
    private static func write(_ attributes: [SpanAttribute], into writer: inout JSONWriter) {
        for attribute in attributes {
            writer.beginObject()
            writer.string("key", attribute.key)
            writer.key("value")
            write(attribute.value, into: &writer)
            writer.endObject()
        }
    }

    /// `"…"`: 16 hex digits, without making a String.
    private static func quotedHex(_ value: UInt64, into writer: inout JSONWriter) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 18) { buffer in
            buffer[0] = UInt8(ascii: "\"")
            TraceIDs.writeHex(value, into: buffer, at: 1)
            buffer[17] = UInt8(ascii: "\"")
            writer.raw(bytes: UnsafeBufferPointer(buffer))
        }
    }

    /// A 64-bit integer as OTLP/JSON writes it: a decimal string.
    private static func quotedDecimal(_ value: UInt64, into writer: inout JSONWriter) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 22) { buffer in
            var index = 21
            buffer[index] = UInt8(ascii: "\"")
            var remaining = value
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
            } while remaining > 0
            index -= 1
            buffer[index] = UInt8(ascii: "\"")
            writer.raw(bytes: UnsafeBufferPointer(rebasing: buffer[index...]))
        }
    }

    private static func write(_ value: SpanValue, into writer: inout JSONWriter) {
        writer.beginObject()
        switch value {
        case let .string(text): writer.string("stringValue", text)
        case let .integer(number):
            if number < 0 {
                writer.string("intValue", String(number))
            } else {
                writer.key("intValue")
                quotedDecimal(UInt64(number), into: &writer)
            }
        case let .double(number):
            writer.key("doubleValue")
            writer.number(number)
        case let .bool(flag): writer.bool("boolValue", flag)
        case let .strings(items):
            writer.key("arrayValue")
            writer.beginObject()
            writer.key("values")
            writer.beginArray()
            for item in items {
                writer.beginObject()
                writer.string("stringValue", item)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endObject()
    }

    // MARK: Captured content

    /// `gen_ai.prompt` (the request's messages as JSON) and `gen_ai.completion` (the answer's
    /// text), secrets redacted, each cut at `contentLimit` bytes.
    static func contentAttributes(_ content: CapturedContent) -> [SpanAttribute] {
        var attributes: [SpanAttribute] = []
        if !content.prompt.isEmpty {
            attributes.append(SpanAttribute("gen_ai.prompt", .string(cut(SecretRedactor.shared.redact(
                String(decoding: content.prompt, as: UTF8.self))))))
        }
        if let completion = completionText(content), !completion.isEmpty {
            attributes.append(SpanAttribute("gen_ai.completion", .string(cut(SecretRedactor.shared.redact(completion)))))
        }
        return attributes
    }

    /// The answer's text: the choices' message contents, or a stream's content deltas joined;
    /// nil for an answer with no text (embeddings). An answer cut before it could be read (a
    /// very large one) is kept as raw text.
    package static func completionText(_ content: CapturedContent) -> String? {
        guard !content.answer.isEmpty else { return nil }
        if content.answerIsStream {
            var text = ""
            var sawChunk = false
            for line in content.answer.split(separator: 0x0A) {
                guard line.starts(with: Array("data:".utf8)) else { continue }
                let payload = Array(line.dropFirst(5).drop { $0 == 0x20 })
                guard let chunk = try? JSONValue.parse(payload) else { continue }
                sawChunk = true
                for choice in chunk["choices"]?.arrayValue ?? [] {
                    if let piece = choice["delta"]?["content"]?.stringValue { text += piece }
                }
            }
            return sawChunk ? text : nil
        }
        guard let answer = try? JSONValue.parse(content.answer) else {
            return String(decoding: content.answer, as: UTF8.self)
        }
        guard let choices = answer["choices"]?.arrayValue else { return nil }
        return choices.compactMap { $0["message"]?["content"]?.stringValue }.joined(separator: "\n")
    }

    /// At most `contentLimit` bytes, on a character boundary, marked when cut.
    package static func cut(_ text: String) -> String {
        guard text.utf8.count > contentLimit else { return text }
        var end = text.utf8.index(text.utf8.startIndex, offsetBy: contentLimit)
        while end > text.startIndex, end.samePosition(in: text.unicodeScalars) == nil { end = text.utf8.index(before: end) }
        return String(text[..<end]) + "…[cut]"
    }
}
