import PrismPluginABI
import PrismWire

/// One canonical stream chunk (the JSON of an OpenAI `chat.completion.chunk`) as a client dialect
/// reads it, scanned without building a tree: the text of a delta is one scan and one unescape, so
/// a dialect's per-event cost stays near the cost of writing its own event. Rare parts (tool calls,
/// thinking blocks, usage) are parsed into a `JSONValue` only when a chunk carries them.
/// `bytes` is borrowed: the chunk is valid only during the call that received it.
public struct CanonicalChunk {
    public let bytes: UnsafeRawBufferPointer
    private var idRange: Range<Int>?
    private var modelRange: Range<Int>?
    /// The `usage` object (the usage-only chunk, `"choices": []`).
    public private(set) var usageRange: Range<Int>?
    /// The choice with index 0, and what its delta carries.
    public private(set) var choiceRange: Range<Int>?
    public private(set) var finishReason: String?
    public private(set) var content: String?
    /// `reasoning_content` (or `reasoning`).
    public private(set) var reasoning: String?
    public private(set) var refusal: String?
    public private(set) var toolCallsRange: Range<Int>?
    public private(set) var thinkingBlocksRange: Range<Int>?
    /// The delta carries `"role"` (the first chunk of a message).
    public private(set) var hasRole = false
    /// A choice other than index 0 (n > 1): dialects and the assembler serve one choice.
    public private(set) var hasOtherChoices = false
    private var createdRange: Range<Int>?

    public init(_ bytes: UnsafeRawBufferPointer) throws(PluginError) {
        self.bytes = bytes
        // One validating pass, no tree and no arrays: the chunk's members are read where they stand.
        var reader = JSONReader(bytes)
        do throws(JSONSyntaxError) {
            try reader.enterObject()
            var seenID = false, seenModel = false, seenCreated = false, seenUsage = false, seenChoices = false
            while let key = try reader.nextKey() {
                if !seenChoices, reader.key(key, is: "choices") {
                    seenChoices = true
                    guard reader.peek() == UInt8(ascii: "[") else {
                        _ = try reader.skipValue()
                        continue
                    }
                    try reader.enterArray()
                    while try reader.nextElement() { try readChoice(&reader) }
                    continue
                }
                let value = try reader.skipValue()
                if reader.key(key, is: "id") {
                    if !seenID { idRange = value; seenID = true }
                } else if reader.key(key, is: "model") {
                    if !seenModel { modelRange = value; seenModel = true }
                } else if reader.key(key, is: "created") {
                    if !seenCreated { createdRange = value; seenCreated = true }
                } else if reader.key(key, is: "usage") {
                    if !seenUsage {
                        seenUsage = true
                        if bytes[value.lowerBound] == UInt8(ascii: "{") { usageRange = value }
                    }
                }
            }
            try reader.finish()
        } catch {
            throw PluginError.upstream(status: 502, message: "invalid stream chunk: \(error.reason)")
        }
    }

    /// One element of `choices`: index 0 (the first such) is kept, others only noted.
    private mutating func readChoice(_ reader: inout JSONReader) throws(JSONSyntaxError) {
        guard reader.peek() == UInt8(ascii: "{") else {
            _ = try reader.skipValue()
            return
        }
        let start = reader.position
        try reader.enterObject()
        var index: Range<Int>?
        var reason: Range<Int>?
        var delta = DeltaRanges()
        var seenDelta = false
        while let key = try reader.nextKey() {
            if !seenDelta, reader.key(key, is: "delta") {
                seenDelta = true
                if reader.peek() == UInt8(ascii: "{") {
                    try reader.enterObject()
                    while let part = try reader.nextKey() {
                        let value = try reader.skipValue()
                        delta.note(part, value, reader)
                    }
                    delta.isObject = true
                } else {
                    _ = try reader.skipValue()
                }
                continue
            }
            let value = try reader.skipValue()
            if reader.key(key, is: "index") {
                if index == nil { index = value }
            } else if reader.key(key, is: "finish_reason") {
                if reason == nil { reason = value }
            }
        }
        if let index, JSONScanner.integer(bytes, in: index) != 0 {
            hasOtherChoices = true
            return
        }
        guard choiceRange == nil else { return }
        choiceRange = start..<reader.position
        if let reason { finishReason = JSONScanner.string(bytes, in: reason) }
        guard delta.isObject else { return }
        if let range = delta.content { content = JSONScanner.string(bytes, in: range) }
        if let range = delta.reasoning { reasoning = JSONScanner.string(bytes, in: range) }
        if let range = delta.refusal { refusal = JSONScanner.string(bytes, in: range) }
        toolCallsRange = delta.toolCalls
        thinkingBlocksRange = delta.thinkingBlocks
        hasRole = delta.hasRole
    }

    /// Where the delta's parts are: the last of each name (a later member replaces an earlier
    /// one), but the first string of `reasoning_content` / `reasoning`.
    private struct DeltaRanges {
        var isObject = false
        var content: Range<Int>?
        var reasoning: Range<Int>?
        var refusal: Range<Int>?
        var toolCalls: Range<Int>?
        var thinkingBlocks: Range<Int>?
        var hasRole = false

        mutating func note(_ key: Range<Int>, _ value: Range<Int>, _ reader: JSONReader) {
            let bytes = reader.bytes
            if reader.key(key, is: "content") {
                content = value
            } else if reader.key(key, is: "reasoning_content") || reader.key(key, is: "reasoning") {
                if reasoning == nil, bytes[value.lowerBound] == UInt8(ascii: "\"") { reasoning = value }
            } else if reader.key(key, is: "refusal") {
                refusal = value
            } else if reader.key(key, is: "tool_calls") {
                if bytes[value.lowerBound] == UInt8(ascii: "[") { toolCalls = value }
            } else if reader.key(key, is: "thinking_blocks") {
                if bytes[value.lowerBound] == UInt8(ascii: "[") { thinkingBlocks = value }
            } else if reader.key(key, is: "role") {
                hasRole = true
            }
        }
    }

    public var id: String? { idRange.flatMap { JSONScanner.string(bytes, in: $0) } }
    public var model: String? { modelRange.flatMap { JSONScanner.string(bytes, in: $0) } }
    public var created: Int64? { createdRange.flatMap { JSONScanner.integer(bytes, in: $0) } }

    /// A part of the chunk as a tree (for the rare parts: tool calls, thinking blocks, usage).
    public func value(_ range: Range<Int>?) -> JSONValue? {
        guard let range else { return nil }
        return try? JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// The usage the chunk carries, in the ABI's counters.
    public var usage: Usage? { value(usageRange).map { Usage(openAI: $0) } }
}
