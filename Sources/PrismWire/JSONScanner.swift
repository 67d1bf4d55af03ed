import CPrismWireScan
/// A validating JSON scanner over raw bytes that finds members without building a tree.
///
/// The OpenAI-format path forwards the client's body mostly unchanged, so it only needs to know
/// that the body is valid JSON and where a few top-level members (`model`, `stream`, ...) are.
/// Building a full tree (or using Foundation, ~450 µs per 2 KB round trip on Linux) would cost
/// far more than the proxying itself.
public struct JSONSyntaxError: Error, Equatable, Sendable {
    public let offset: Int
    public let reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
}

/// One member of a JSON object: byte ranges of its key (without quotes, still escaped) and value.
public struct JSONMember: Sendable, Equatable {
    public let keyRange: Range<Int>
    public let valueRange: Range<Int>
    /// Range of the whole member including any separator that precedes or follows it, for
    /// removal: `"key": value` plus one adjacent comma.
    public let removalRange: Range<Int>
}

public enum JSONScanner {
    /// Validates that `bytes` is exactly one JSON value (with surrounding whitespace allowed).
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) {
        var cursor = Cursor(bytes)
        cursor.skipWhitespace()
        _ = try cursor.skipValue(depth: 0)
        cursor.skipWhitespace()
        if cursor.position != bytes.count { throw cursor.error("unexpected data after the JSON value") }
    }

    /// The members of the object whose value occupies `range` (or the whole buffer). Throws when
    /// that value is not a valid JSON object. Values are validated too.
    public static func members(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>? = nil)
        throws(JSONSyntaxError) -> [JSONMember]
    {
        var result: [JSONMember] = []
        // One allocation for a typical object (a request, an answer, a stream event), instead
        // of regrowing at 1, 2, 4 and 8 members.
        result.reserveCapacity(16)
        try forEachMember(bytes, in: range) { result.append($0) }
        return result
    }

    /// `members` without the array: `body` gets each member in order as it is scanned. The object
    /// may still turn out invalid after a member (the call then throws), so act on what `body`
    /// saw only once the call returns.
    public static func forEachMember(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>? = nil,
                                     _ body: (JSONMember) -> Void) throws(JSONSyntaxError)
    {
        var cursor = Cursor(bytes)
        if let range {
            cursor.position = range.lowerBound
            cursor.end = range.upperBound
        }
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: "{") else { throw cursor.error("expected a JSON object") }
        let objectStart = cursor.position
        cursor.position += 1
        cursor.skipWhitespace()
        if cursor.peek() == UInt8(ascii: "}") {
            cursor.position += 1
        } else {
            while true {
                cursor.skipWhitespace()
                let memberStart = cursor.position
                guard cursor.peek() == UInt8(ascii: "\"") else { throw cursor.error("expected a member name") }
                let keyRange = try cursor.skipString()
                cursor.skipWhitespace()
                guard cursor.peek() == UInt8(ascii: ":") else { throw cursor.error("expected ':'") }
                cursor.position += 1
                cursor.skipWhitespace()
                let valueRange = try cursor.skipValue(depth: 1)
                cursor.skipWhitespace()
                let next = cursor.peek()
                if next == UInt8(ascii: ",") {
                    cursor.position += 1
                    // Removal takes the member and the comma after it.
                    var after = cursor.position
                    while after < cursor.end, isWhitespace(bytes[after]) { after += 1 }
                    body(JSONMember(keyRange: keyRange, valueRange: valueRange, removalRange: memberStart..<after))
                } else if next == UInt8(ascii: "}") {
                    // The last member: removal takes the comma before it, if any.
                    var before = memberStart
                    var probe = memberStart - 1
                    while probe > objectStart, isWhitespace(bytes[probe]) { probe -= 1 }
                    if probe > objectStart, bytes[probe] == UInt8(ascii: ",") { before = probe }
                    body(JSONMember(keyRange: keyRange, valueRange: valueRange, removalRange: before..<valueRange.upperBound))
                    cursor.position += 1
                    break
                } else {
                    throw cursor.error("expected ',' or '}'")
                }
            }
        }
        if range == nil {
            cursor.skipWhitespace()
            if cursor.position != bytes.count { throw cursor.error("unexpected data after the JSON value") }
        }
    }

    /// Whether `member`'s key is `name` (the raw, still-escaped key bytes).
    @inlinable
    public static func key(of member: JSONMember, in bytes: UnsafeRawBufferPointer, is name: StaticString) -> Bool {
        rawBytes(bytes, member.keyRange, are: name)
    }

    /// The first member named `name` (compared against the raw, still-escaped key bytes).
    public static func member(named name: StaticString, in members: [JSONMember],
                              of bytes: UnsafeRawBufferPointer) -> JSONMember?
    {
        members.first { key(of: $0, in: bytes, is: name) }
    }

    /// The elements of the array whose value occupies `range`.
    public static func elements(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>)
        throws(JSONSyntaxError) -> [Range<Int>]
    {
        var cursor = Cursor(bytes)
        cursor.position = range.lowerBound
        cursor.end = range.upperBound
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: "[") else { throw cursor.error("expected a JSON array") }
        cursor.position += 1
        var result: [Range<Int>] = []
        cursor.skipWhitespace()
        if cursor.peek() == UInt8(ascii: "]") { return result }
        while true {
            cursor.skipWhitespace()
            result.append(try cursor.skipValue(depth: 1))
            cursor.skipWhitespace()
            let next = cursor.peek()
            cursor.position += 1
            if next == UInt8(ascii: "]") { return result }
            if next != UInt8(ascii: ",") { throw cursor.error("expected ',' or ']'") }
        }
    }

    /// Decodes the JSON string whose value (with quotes) occupies `range`; nil if it is not a string.
    public static func string(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        return unescape(bytes, (range.lowerBound + 1)..<(range.upperBound - 1))
    }

    /// Decodes an escaped JSON string body (without quotes).
    public static func unescape(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        // Skip words with nothing to look at, then look byte by byte for a backslash.
        var hasEscape = false
        var scan = range.lowerBound
        if let base = bytes.baseAddress {
            scan = skipPlainStringBytes(UnsafeRawPointer(base), from: scan, to: range.upperBound)
        }
        while scan < range.upperBound {
            if bytes[scan] == UInt8(ascii: "\\") {
                hasEscape = true
                break
            }
            scan += 1
        }
        if !hasEscape {
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        var output: [UInt8] = []
        output.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            if byte != UInt8(ascii: "\\") {
                output.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < range.upperBound else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "u"):
                guard index + 4 <= range.upperBound, var scalar = hexValue(bytes, index) else { break }
                index += 4
                if (0xD800..<0xDC00).contains(scalar), index + 6 <= range.upperBound,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                   let low = hexValue(bytes, index + 2), (0xDC00..<0xE000).contains(low)
                {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                output.append(contentsOf: Array(String(Character(unicode)).utf8))
            default: output.append(escape) // \" \\ \/
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// True when the value at `range` is the literal `true`.
    public static func isTrue(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Bool {
        range.count == 4 && bytes[range.lowerBound] == UInt8(ascii: "t")
    }

    /// The integer at `range`, if it is one.
    public static func integer(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Int64? {
        var value: Int64 = 0
        var negative = false
        var index = range.lowerBound
        if index < range.upperBound, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < range.upperBound else { return nil }
        while index < range.upperBound {
            let digit = bytes[index]
            guard digit >= 0x30, digit <= 0x39 else { return nil }
            let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(Int64(digit - 0x30))
            if overflow1 || overflow2 { return nil }
            value = added
            index += 1
        }
        return negative ? -value : value
    }

    static func hexValue(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<4 {
            let byte = bytes[start + offset]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: return nil
            }
            value = value << 4 | digit
        }
        return value
    }
}

/// The first position in `start..<end` at or after which a JSON string scan must look byte by
/// byte: 16 bytes at a time with SSE2 compares, then 8 at a time, while no byte is a quote, a
/// backslash or a control byte. Returns a position whose next 8 bytes (or fewer, at the end) hold
/// such a byte, so callers finish byte by byte. A megabyte of message text is mostly such plain
/// bytes: the 8-byte loop alone took about 0.6 ms per megabyte, scanned once by the host and once
/// by the provider plugin.
@inline(__always)
package func skipPlainStringBytes(_ base: UnsafeRawPointer, from start: Int, to end: Int) -> Int {
    var position = Int(prism_skip_plain_string_bytes(base.assumingMemoryBound(to: UInt8.self), start, end))
    #if arch(x86_64)
    // With 16 or more bytes left, the vector scan stopped at a byte that needs a look: the word
    // loop would only find it again (most strings are short, so this was a fifth of their scan).
    if position + 16 <= end { return position }
    #endif
    while position + 8 <= end, !wordNeedsEscapeCheck((base + position).loadUnaligned(as: UInt64.self)) {
        position += 8
    }
    return position
}

/// True when any of the 8 bytes of `word` is a quote, a backslash or a control byte (< 0x20): the
/// bytes a JSON string scan must stop at. Word-at-a-time ("SWAR") tests: exact, no false negatives.
@inline(__always)
func wordNeedsEscapeCheck(_ word: UInt64) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    let below20 = (word &- ones &* 0x20) & ~word & highs
    let quote = word ^ (ones &* 0x22)
    let backslash = word ^ (ones &* 0x5C)
    let hasQuote = (quote &- ones) & ~quote & highs
    let hasBackslash = (backslash &- ones) & ~backslash & highs
    return (below20 | hasQuote | hasBackslash) != 0
}

@inline(__always)
func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
}

/// Whether the raw bytes at `range` are `name` (a key compared as written, still escaped).
/// Inlinable, and one `memcmp`: the plugins ask it several times for every member of every
/// stream event, and a byte loop with a bounds check per byte, behind a call into this module,
/// cost about 90 instructions for a five-letter key.
@inlinable @inline(__always)
func rawBytes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, are name: StaticString) -> Bool {
    guard range.count == name.utf8CodeUnitCount else { return false }
    if range.isEmpty { return true }
    guard let base = bytes.baseAddress, range.lowerBound >= 0, range.upperBound <= bytes.count else { return false }
    return prism_bytes_equal(base + range.lowerBound, name.utf8Start, range.count) != 0
}

/// The scanning state: a position in a byte buffer.
@usableFromInline
struct Cursor {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    /// The same bytes without bounds checks: every read below is guarded by `position < end`.
    let base: UnsafePointer<UInt8>
    var position = 0
    var end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.end = bytes.count
        // An empty buffer may have no address; any non-null pointer works, as nothing is read.
        base = bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) }
            ?? UnsafePointer(bitPattern: 1)!
    }

    /// Deeper nesting than this is refused (JSONValue recurses; the C skip tracks its depth).
    static let maximumDepth = Int(PRISM_JSON_MAXIMUM_DEPTH)

    func error(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: position, reason: reason) }

    @inline(__always)
    func peek() -> UInt8? { position < end ? base[position] : nil }

    @inline(__always)
    mutating func skipWhitespace() {
        // Compact JSON has none: one compare ends the common case (every byte above 0x20).
        while position < end, base[position] <= 0x20, isWhitespace(base[position]) { position += 1 }
    }

    /// Skips one value (nested `depth` deep already) and returns its range. The grammar and
    /// its errors are CPrismWireScan's `prism_json_skip_value`, one loop in C.
    mutating func skipValue(depth: Int) throws(JSONSyntaxError) -> Range<Int> {
        let start = position
        // A string, the commonest member value, by the (inlined) string step alone: the same code
        // and offset as the general skip, without its call and dispatch.
        if position < end, base[position] == UInt8(ascii: "\"") {
            let code = prism_json_skip_string(base, &position, end)
            guard code == 0 else { throw error(Cursor.reason(code)) }
            return start..<position
        }
        let code = prism_json_skip_value(base, &position, end, Int32(truncatingIfNeeded: depth))
        guard code == 0 else { throw error(Cursor.reason(code)) }
        return start..<position
    }

    /// Skips the string at the opening quote; returns the range between the quotes (still escaped).
    mutating func skipString() throws(JSONSyntaxError) -> Range<Int> {
        let start = position + 1
        let code = prism_json_skip_string(base, &position, end)
        guard code == 0 else { throw error(Cursor.reason(code)) }
        return start..<(position - 1)
    }

    static func reason(_ code: Int32) -> String {
        switch Int(code) {
        case PRISM_JSON_END: "unexpected end of JSON"
        case PRISM_JSON_DEPTH: "JSON nested too deeply"
        case PRISM_JSON_MEMBER_NAME: "expected a member name"
        case PRISM_JSON_COLON: "expected ':'"
        case PRISM_JSON_OBJECT_NEXT: "expected ',' or '}'"
        case PRISM_JSON_ARRAY_NEXT: "expected ',' or ']'"
        case PRISM_JSON_LITERAL: "invalid literal"
        case PRISM_JSON_NUMBER: "invalid number"
        case PRISM_JSON_CHARACTER: "unexpected character"
        case PRISM_JSON_UNICODE_ESCAPE: "invalid \\u escape"
        case PRISM_JSON_ESCAPE: "invalid escape"
        case PRISM_JSON_CONTROL: "control character in string"
        default: "unterminated string"
        }
    }

    /// Skips the literal the byte at the cursor starts (`true`, `false` or `null`).
    mutating func skipLiteral() throws(JSONSyntaxError) {
        let code = prism_json_skip_literal(base, &position, end)
        guard code == 0 else { throw error(Cursor.reason(code)) }
    }

    mutating func skipNumber() throws(JSONSyntaxError) {
        let code = prism_json_skip_number(base, &position, end)
        guard code == 0 else { throw error(Cursor.reason(code)) }
    }
}
