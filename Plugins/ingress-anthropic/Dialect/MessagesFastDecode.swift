import PluginKit
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// The common Messages request (text, tool use and results, thinking, client tools) → the
/// canonical body in one validating pass over the client's bytes, copying its JSON slices (texts,
/// ids, input schemas) as they are: no tree, no String per value. Anything else (an image, a
/// document, an invalid or unusual field) returns nil and goes to `MessagesRequest.decode`, which
/// writes the same canonical request and every validation message.
package struct MessagesFastDecode {
    /// Gives up: the tree-based decoder handles the request.
    struct Fallback: Error {}

    let bytes: UnsafeRawBufferPointer

    package static func decode(_ bytes: UnsafeRawBufferPointer) -> MessagesRequest.Decoded? {
        let decoder = MessagesFastDecode(bytes: bytes)
        return try? decoder.run()
    }

    // MARK: Top level

    private func run() throws(Fallback) -> MessagesRequest.Decoded {
        var reader = JSONReader(bytes)
        var model: Range<Int>?
        var maxTokens: Range<Int>?
        var stops: Range<Int>?
        var temperature: Range<Int>?
        var topP: Range<Int>?
        var topK: Range<Int>?
        var stream: Range<Int>?
        var metadata: Range<Int>?
        var thinking: Range<Int>?
        var cacheControl: Range<Int>?
        var toolChoice: Range<Int>?
        var system: Range<Int>?
        var sawMessages = false
        var sawTools = false
        var messages = JSONWriter(capacity: bytes.count + 128)
        var messageCount = 0
        var tools = JSONWriter(capacity: 0)
        var toolCount = 0

        func once(_ slot: inout Range<Int>?, _ reader: inout JSONReader) throws(Fallback) {
            try claim(&slot, check { () throws(JSONSyntaxError) in try reader.skipValue() })
        }

        try check { () throws(JSONSyntaxError) in try reader.enterObject() }
        while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
            if matches(bytes, key, "messages") {
                guard !sawMessages else { throw Fallback() }
                sawMessages = true
                messageCount = try writeMessages(&reader, into: &messages)
            } else if matches(bytes, key, "tools") {
                guard !sawTools else { throw Fallback() }
                sawTools = true
                toolCount = try writeTools(&reader, into: &tools)
            } else if matches(bytes, key, "model") { try once(&model, &reader)
            } else if matches(bytes, key, "max_tokens") { try once(&maxTokens, &reader)
            } else if matches(bytes, key, "system") { try once(&system, &reader)
            } else if matches(bytes, key, "stream") { try once(&stream, &reader)
            } else if matches(bytes, key, "temperature") { try once(&temperature, &reader)
            } else if matches(bytes, key, "tool_choice") { try once(&toolChoice, &reader)
            } else if matches(bytes, key, "stop_sequences") { try once(&stops, &reader)
            } else if matches(bytes, key, "top_p") { try once(&topP, &reader)
            } else if matches(bytes, key, "top_k") { try once(&topK, &reader)
            } else if matches(bytes, key, "metadata") { try once(&metadata, &reader)
            } else if matches(bytes, key, "thinking") { try once(&thinking, &reader)
            } else if matches(bytes, key, "cache_control") { try once(&cacheControl, &reader)
            } else {
                // An escaped key may spell a known one: the tree decoder reads it.
                if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
                _ = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            }
        }
        try check { () throws(JSONSyntaxError) in try reader.finish() }

        guard let model, let modelText = plainString(model), !modelText.isEmpty,
              sawMessages, messageCount > 0,
              let maxTokens, let limit = JSONScanner.integer(bytes, in: maxTokens), limit >= 0 else { throw Fallback() }
        var stopSequences: [String] = []
        if let stops, !isNull(stops) {
            var list = JSONReader(bytes, in: stops)
            try check { () throws(JSONSyntaxError) in try list.enterArray() }
            while try check({ () throws(JSONSyntaxError) in try list.nextElement() }) {
                let element = try check { () throws(JSONSyntaxError) in try list.skipValue() }
                guard let text = JSONScanner.string(bytes, in: element) else { throw Fallback() }
                stopSequences.append(text)
            }
        }

        var writer = JSONWriter(capacity: bytes.count + 384)
        writer.beginObject()
        writer.key(literal: "model")
        writer.raw(bytes: slice(model))
        writer.key(literal: "messages")
        writer.beginArray()
        if let system { try writeSystem(system, into: &writer) }
        // The messages' elements, without their brackets.
        let written = messages.bytes
        writer.raw(bytes: written[1..<(written.count - 1)])
        writer.endArray()
        writer.integer("max_tokens", limit)
        if toolCount > 0 {
            writer.key(literal: "tools")
            writer.raw(bytes: tools.bytes)
        }
        if let toolChoice, !isNull(toolChoice) { try writeToolChoice(toolChoice, into: &writer) }
        if !stopSequences.isEmpty, let stops {
            writer.key(literal: "stop")
            writer.raw(bytes: slice(stops))
        }
        try writeNumber("temperature", temperature, into: &writer)
        try writeNumber("top_p", topP, into: &writer)
        try writeNumber("top_k", topK, into: &writer)
        let streaming = stream.map { JSONScanner.isTrue(bytes, in: $0) } ?? false
        CanonicalRequest.writeStream(streaming, to: &writer)
        if let metadata, !isNull(metadata) {
            if let user = try member("user_id", of: metadata) {
              if bytes[user.lowerBound] == UInt8(ascii: "\""), user.count > 2 {
                writer.key(literal: "user")
                writer.raw(bytes: slice(user))
            } else if bytes[user.lowerBound] != UInt8(ascii: "n") && bytes[user.lowerBound] != UInt8(ascii: "\"") {
                throw Fallback()
              }
            }
        }
        if let thinking, !isNull(thinking) { try writeThinking(thinking, into: &writer) }
        if let cacheControl, bytes[cacheControl.lowerBound] == UInt8(ascii: "{") {
            writer.key(literal: "cache_control")
            writer.raw(bytes: slice(cacheControl))
        }
        writer.endObject()
        return MessagesRequest.Decoded(body: writer.bytes, model: modelText, stopSequences: stopSequences)
    }

    // MARK: Messages

    /// Writes the canonical messages into `out` (an array); returns how many Anthropic ones.
    private func writeMessages(_ reader: inout JSONReader, into out: inout JSONWriter) throws(Fallback) -> Int {
        try check { () throws(JSONSyntaxError) in try reader.enterArray() }
        out.beginArray()
        var count = 0
                while try check({ () throws(JSONSyntaxError) in try reader.nextElement() }) {
            try check { () throws(JSONSyntaxError) in try reader.enterObject() }
            var role: Role?
            var content: Range<Int>?
            var done = false
            while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
                if matches(bytes, key, "role") {
                    guard role == nil else { throw Fallback() }
                    let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
                    if matchesValue(bytes, value, "user") { role = .user } else if matchesValue(bytes, value, "assistant") { role = .assistant } else { throw Fallback() }
                } else if matches(bytes, key, "content") {
                    guard content == nil, !done else { throw Fallback() }
                    if let role {
                        // The usual order (role first): the content is read where it stands.
                        try writeContent(&reader, role: role, into: &out)
                        done = true
                    } else {
                        content = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
                    }
                } else {
                    if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
                    _ = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
                }
            }
            guard let role else { throw Fallback() }
            if !done {
                guard let content else { throw Fallback() }
                var inner = JSONReader(bytes, in: content)
                try writeContent(&inner, role: role, into: &out)
            }
            count += 1
        }
        out.endArray()
        return count
    }

    enum Role {
        case user
        case assistant
    }

    /// One message's content → canonical messages (tool results first for a user turn).
    private func writeContent(_ reader: inout JSONReader, role: Role,
                              into out: inout JSONWriter) throws(Fallback)
    {
        let first = reader.peek()
        if first == UInt8(ascii: "\"") {
            let text = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            out.beginObject()
            out.string("role", role == .user ? "user" : "assistant")
            out.key(literal: "content")
            out.raw(bytes: slice(text))
            out.endObject()
            return
        }
        guard first == UInt8(ascii: "[") else { throw Fallback() }
        try check { () throws(JSONSyntaxError) in try reader.enterArray() }
        var parts = JSONWriter(capacity: 256)
        parts.beginArray()
        var partCount = 0
        var calls = JSONWriter(capacity: 0)
        var callCount = 0
        var thinking = JSONWriter(capacity: 0)
        var thinkingCount = 0
        var toolResults = 0
        var lastCallControl: Range<Int>?
        while try check({ () throws(JSONSyntaxError) in try reader.nextElement() }) {
            let block = try Block(&reader, bytes: bytes)
            guard let type = block.type else { throw Fallback() }
            if matchesValue(bytes, type, "text") {
                try writeTextPart(block, into: &parts)
                partCount += 1
            } else if matchesValue(bytes, type, "tool_use") {
                guard role == .assistant, let id = block.id, isString(id), let name = block.name, isString(name) else { throw Fallback() }
                if callCount == 0 { calls.beginArray() }
                calls.beginObject()
                calls.key(literal: "id")
                calls.raw(bytes: slice(id))
                calls.member(#""type":"function""#)
                calls.key(literal: "function")
                calls.beginObject()
                calls.key(literal: "name")
                calls.raw(bytes: slice(name))
                calls.key(literal: "arguments")
                if let input = block.input {
                    guard bytes[input.lowerBound] == UInt8(ascii: "{") else { throw Fallback() }
                    calls.compactJSONString(of: bytes, in: input)
                } else {
                    calls.string("{}")
                }
                calls.endObject()
                calls.endObject()
                callCount += 1
                lastCallControl = block.objectCacheControl(bytes)
            } else if matchesValue(bytes, type, "tool_result") {
                guard role == .user else { throw Fallback() }
                try writeToolResult(block, into: &out)
                toolResults += 1
            } else if matchesValue(bytes, type, "thinking") || matchesValue(bytes, type, "redacted_thinking") {
                guard role == .assistant else { throw Fallback() }
                if thinkingCount == 0 { thinking.beginArray() }
                thinking.beginObject()
                if matchesValue(bytes, type, "thinking") {
                    guard let text = block.thinking, isString(text) else { throw Fallback() }
                    thinking.member(#""type":"thinking""#)
                    thinking.key(literal: "thinking")
                    thinking.raw(bytes: slice(text))
                    if let signature = block.signature, !isNull(signature) {
                        guard isString(signature) else { throw Fallback() }
                        thinking.key(literal: "signature")
                        thinking.raw(bytes: slice(signature))
                    }
                } else {
                    guard let data = block.data, isString(data) else { throw Fallback() }
                    thinking.member(#""type":"redacted_thinking""#)
                    thinking.key(literal: "data")
                    thinking.raw(bytes: slice(data))
                }
                thinking.endObject()
                thinkingCount += 1
            } else {
                throw Fallback()
            }
        }
        parts.endArray()
        if role == .user {
            if toolResults == 0 || partCount > 0 {
                out.beginObject()
                out.member(#""role":"user""#)
                out.key(literal: "content")
                out.raw(bytes: parts.bytes)
                out.endObject()
            }
            return
        }
        out.beginObject()
        out.member(#""role":"assistant""#)
        out.key(literal: "content")
        if partCount > 0 { out.raw(bytes: parts.bytes) } else if callCount == 0 { out.string("") } else { out.null() }
        if callCount > 0 {
            calls.endArray()
            out.key(literal: "tool_calls")
            out.raw(bytes: calls.bytes)
        }
        if thinkingCount > 0 {
            thinking.endArray()
            out.key(literal: "thinking_blocks")
            out.raw(bytes: thinking.bytes)
        }
        if callCount > 0, let lastCallControl {
            out.key(literal: "cache_control")
            out.raw(bytes: slice(lastCallControl))
        }
        out.endObject()
    }

    /// A text block → `{"type":"text","text":…[,"cache_control":…]}`.
    func writeTextPart(_ block: Block, into parts: inout JSONWriter, prefix: Bool = false) throws(Fallback) {
        guard let text = block.text, isString(text) else { throw Fallback() }
        parts.beginObject()
        parts.member(#""type":"text""#)
        parts.key(literal: "text")
        if prefix {
            var joined: [UInt8] = Array("\"Error: ".utf8)
            joined.append(contentsOf: slice(text).dropFirst())
            parts.raw(bytes: joined)
        } else {
            parts.raw(bytes: slice(text))
        }
        if let control = block.objectCacheControl(bytes) {
            parts.key(literal: "cache_control")
            parts.raw(bytes: slice(control))
        }
        parts.endObject()
    }

    /// A tool_result block → a `tool` message.
    private func writeToolResult(_ block: Block, into out: inout JSONWriter) throws(Fallback) {
        guard let id = block.toolUseID, isString(id) else { throw Fallback() }
        let isError = block.isError.map { JSONScanner.isTrue(bytes, in: $0) } ?? false
        out.beginObject()
        out.member(#""role":"tool""#)
        out.key(literal: "content")
        if let content = block.content, !isNull(content) {
            switch bytes[content.lowerBound] {
            case UInt8(ascii: "\""):
                if isError {
                    var joined: [UInt8] = Array("\"Error: ".utf8)
                    joined.append(contentsOf: slice(content).dropFirst())
                    out.raw(bytes: joined)
                } else {
                    out.raw(bytes: slice(content))
                }
            case UInt8(ascii: "["):
                var list = JSONReader(bytes, in: content)
                try check { () throws(JSONSyntaxError) in try list.enterArray() }
                out.beginArray()
                var first = true
                while try check({ () throws(JSONSyntaxError) in try list.nextElement() }) {
                    let inner = try Block(&list, bytes: bytes)
                    guard let type = inner.type, matchesValue(bytes, type, "text") else { throw Fallback() }
                    try writeTextPart(inner, into: &out, prefix: isError && first)
                    first = false
                }
                if isError && first {
                    out.beginObject()
                    out.member(#""type":"text""#)
                    out.string("text", "Error")
                    out.endObject()
                }
                out.endArray()
            default:
                throw Fallback()
            }
        } else {
            out.string(isError ? "Error" : "")
        }
        out.key(literal: "tool_call_id")
        out.raw(bytes: slice(id))
        if let control = block.objectCacheControl(bytes) {
            out.key(literal: "cache_control")
            out.raw(bytes: slice(control))
        }
        out.endObject()
    }

    /// The members of a content block the fast path reads.
    struct Block {
        var type: Range<Int>?
        var text: Range<Int>?
        var id: Range<Int>?
        var name: Range<Int>?
        var input: Range<Int>?
        var toolUseID: Range<Int>?
        var isError: Range<Int>?
        var content: Range<Int>?
        var cacheControl: Range<Int>?
        var thinking: Range<Int>?
        var signature: Range<Int>?
        var data: Range<Int>?

        init(_ reader: inout JSONReader, bytes: UnsafeRawBufferPointer) throws(Fallback) {
            try check { () throws(JSONSyntaxError) in try reader.enterObject() }
            while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
                let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
                if matches(bytes, key, "type") { try claim(&type, value)
                } else if matches(bytes, key, "text") { try claim(&text, value)
                } else if matches(bytes, key, "id") { try claim(&id, value)
                } else if matches(bytes, key, "name") { try claim(&name, value)
                } else if matches(bytes, key, "input") { try claim(&input, value)
                } else if matches(bytes, key, "tool_use_id") { try claim(&toolUseID, value)
                } else if matches(bytes, key, "is_error") { try claim(&isError, value)
                } else if matches(bytes, key, "content") { try claim(&content, value)
                } else if matches(bytes, key, "cache_control") { try claim(&cacheControl, value)
                } else if matches(bytes, key, "thinking") { try claim(&thinking, value)
                } else if matches(bytes, key, "signature") { try claim(&signature, value)
                } else if matches(bytes, key, "data") { try claim(&data, value)
                } else if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
            }
        }

        func objectCacheControl(_ bytes: UnsafeRawBufferPointer) -> Range<Int>? {
            guard let cacheControl, bytes[cacheControl.lowerBound] == UInt8(ascii: "{") else { return nil }
            return cacheControl
        }
    }

    // MARK: Helpers

    func writeNumber(_ name: String, _ range: Range<Int>?, into writer: inout JSONWriter) throws(Fallback) {
        guard let range, !isNull(range) else { return }
        let first = bytes[range.lowerBound]
        guard first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39) else { throw Fallback() }
        writer.key(name)
        writer.raw(bytes: slice(range))
    }

    @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    /// A small object's bytes without whitespace outside strings.
    func compact(_ range: Range<Int>) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(range.count)
        var inString = false
        var escaped = false
        for byte in slice(range) {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                result.append(byte)
            } else if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
                continue
            } else {
                if byte == UInt8(ascii: "\"") { inString = true }
                result.append(byte)
            }
        }
        return result
    }

    @inline(__always)
    func isString(_ range: Range<Int>) -> Bool { bytes[range.lowerBound] == UInt8(ascii: "\"") }

    @inline(__always)
    func isNull(_ range: Range<Int>) -> Bool { bytes[range.lowerBound] == UInt8(ascii: "n") }

    /// A string value's text when it has no escapes (else nil: the tree decoder reads it).
    func plainString(_ range: Range<Int>) -> String? {
        guard isString(range) else { return nil }
        return JSONScanner.string(bytes, in: range)
    }

    /// The value of member `name` of the object at `range`.
    func member(_ name: StaticString, of range: Range<Int>) throws(Fallback) -> Range<Int>? {
        guard bytes[range.lowerBound] == UInt8(ascii: "{") else { throw Fallback() }
        var reader = JSONReader(bytes, in: range)
        try check { () throws(JSONSyntaxError) in try reader.enterObject() }
        var found: Range<Int>?
        while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
            let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            if matches(bytes, key, name) {
                guard found == nil else { throw Fallback() }
                found = value
            } else if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
        }
        return found
    }
}

/// A syntax error is a fallback: the tree decoder reports it.
@inline(__always)
func check<T>(_ body: () throws(JSONSyntaxError) -> T) throws(MessagesFastDecode.Fallback) -> T {
    do { return try body() } catch { throw MessagesFastDecode.Fallback() }
}

/// Records a member's value once: a key given twice goes to the tree decoder (which reports it).
@inline(__always)
func claim(_ slot: inout Range<Int>?, _ value: Range<Int>) throws(MessagesFastDecode.Fallback) {
    guard slot == nil else { throw MessagesFastDecode.Fallback() }
    slot = value
}

/// Whether the raw key bytes at `range` are `name` (inlined: most keys differ in length).
@inline(__always)
func matches(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: StaticString) -> Bool {
    range.count == name.utf8CodeUnitCount
        && memcmp(bytes.baseAddress! + range.lowerBound, name.utf8Start, range.count) == 0
}

/// Whether the value at `range` is the string `name` (without escapes).
@inline(__always)
func matchesValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: StaticString) -> Bool {
    range.count == name.utf8CodeUnitCount + 2
        && memcmp(bytes.baseAddress! + range.lowerBound + 1, name.utf8Start, name.utf8CodeUnitCount) == 0
        && bytes[range.lowerBound] == UInt8(ascii: "\"")
}
