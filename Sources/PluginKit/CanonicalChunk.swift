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
        let members: [JSONMember]
        do {
            members = try JSONScanner.members(bytes)
        } catch {
            throw PluginError.upstream(status: 502, message: "invalid stream chunk: \(error.reason)")
        }
        idRange = JSONScanner.member(named: "id", in: members, of: bytes)?.valueRange
        modelRange = JSONScanner.member(named: "model", in: members, of: bytes)?.valueRange
        createdRange = JSONScanner.member(named: "created", in: members, of: bytes)?.valueRange
        if let usage = JSONScanner.member(named: "usage", in: members, of: bytes), bytes[usage.valueRange.lowerBound] == UInt8(ascii: "{") {
            usageRange = usage.valueRange
        }
        guard let choices = JSONScanner.member(named: "choices", in: members, of: bytes),
              bytes[choices.valueRange.lowerBound] == UInt8(ascii: "["),
              let elements = try? JSONScanner.elements(bytes, in: choices.valueRange) else { return }
        for element in elements {
            guard let fields = try? JSONScanner.members(bytes, in: element) else { continue }
            if let index = JSONScanner.member(named: "index", in: fields, of: bytes),
               JSONScanner.integer(bytes, in: index.valueRange) != 0
            {
                hasOtherChoices = true
                continue
            }
            guard choiceRange == nil else { continue }
            choiceRange = element
            if let reason = JSONScanner.member(named: "finish_reason", in: fields, of: bytes) {
                finishReason = JSONScanner.string(bytes, in: reason.valueRange)
            }
            guard let delta = JSONScanner.member(named: "delta", in: fields, of: bytes),
                  let parts = try? JSONScanner.members(bytes, in: delta.valueRange) else { break }
            for part in parts {
                switch keyOf(part) {
                case "content": content = JSONScanner.string(bytes, in: part.valueRange)
                case "reasoning_content", "reasoning": reasoning = reasoning ?? JSONScanner.string(bytes, in: part.valueRange)
                case "refusal": refusal = JSONScanner.string(bytes, in: part.valueRange)
                case "tool_calls": if bytes[part.valueRange.lowerBound] == UInt8(ascii: "[") { toolCallsRange = part.valueRange }
                case "thinking_blocks":
                    if bytes[part.valueRange.lowerBound] == UInt8(ascii: "[") { thinkingBlocksRange = part.valueRange }
                case "role": hasRole = true
                default: break
                }
            }
        }
    }

    /// Delta keys worth a look; other keys are skipped without building a String.
    private func keyOf(_ member: JSONMember) -> StaticString? {
        for name: StaticString in ["content", "reasoning_content", "reasoning", "refusal", "tool_calls", "thinking_blocks", "role"]
            where member.keyRange.count == name.utf8CodeUnitCount
        {
            let candidate = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            if bytes[member.keyRange].elementsEqual(candidate) { return name }
        }
        return nil
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

private func == (left: StaticString?, right: StaticString) -> Bool {
    guard let left else { return false }
    return left.utf8CodeUnitCount == right.utf8CodeUnitCount
        && UnsafeRawBufferPointer(start: left.utf8Start, count: left.utf8CodeUnitCount)
        .elementsEqual(UnsafeRawBufferPointer(start: right.utf8Start, count: right.utf8CodeUnitCount))
}

private func ~= (pattern: StaticString, value: StaticString?) -> Bool { value == pattern }
