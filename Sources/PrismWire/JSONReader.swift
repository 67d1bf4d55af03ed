/// A validating pull reader over raw JSON bytes: the caller walks the structure it cares about
/// (entering objects and arrays) and skips the rest, so every byte is scanned and validated once,
/// without building a tree or allocating. Ranges it returns index `bytes`, for raw copies.
///
///     var reader = JSONReader(bytes)
///     try reader.enterObject()
///     while let key = try reader.nextKey() {
///         if reader.key(key, is: "messages") { try reader.enterArray(); ... } else { _ = try reader.skipValue() }
///     }
///     try reader.finish()
public struct JSONReader {
    @usableFromInline var cursor: Cursor
    /// One bit per open container (innermost = bit 0): whether it already had a member/element.
    private var seenBits: UInt64 = 0
    private var depth = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        cursor = Cursor(bytes)
    }

    /// A reader over the value that occupies `range` (a range an earlier read returned).
    public init(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) {
        cursor = Cursor(bytes)
        cursor.position = range.lowerBound
        cursor.end = range.upperBound
    }

    public var bytes: UnsafeRawBufferPointer { cursor.bytes }
    public var position: Int { cursor.position }

    /// The first byte of the next value (after whitespace): `{`, `[`, `"`, `t`, `f`, `n`, a digit or `-`.
    public mutating func peek() -> UInt8? {
        cursor.skipWhitespace()
        return cursor.peek()
    }

    /// Consumes `{`; throws when the next value is not an object.
    public mutating func enterObject() throws(JSONSyntaxError) {
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: "{") else { throw cursor.error("expected a JSON object") }
        try push()
    }

    /// Consumes `[`; throws when the next value is not an array.
    public mutating func enterArray() throws(JSONSyntaxError) {
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: "[") else { throw cursor.error("expected a JSON array") }
        try push()
    }

    /// The next member's key (raw, still-escaped bytes between the quotes), its `:` consumed; nil
    /// when the object ends (its `}` consumed).
    public mutating func nextKey() throws(JSONSyntaxError) -> Range<Int>? {
        cursor.skipWhitespace()
        guard let byte = cursor.peek() else { throw cursor.error("unexpected end of JSON") }
        if byte == UInt8(ascii: "}") {
            pop()
            return nil
        }
        if seenBits & 1 != 0 {
            guard byte == UInt8(ascii: ",") else { throw cursor.error("expected ',' or '}'") }
            cursor.position += 1
            cursor.skipWhitespace()
        } else {
            seenBits |= 1
        }
        guard cursor.peek() == UInt8(ascii: "\"") else { throw cursor.error("expected a member name") }
        let key = try cursor.skipString()
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: ":") else { throw cursor.error("expected ':'") }
        cursor.position += 1
        return key
    }

    /// True when another element follows (read it next); false when the array ends (`]` consumed).
    public mutating func nextElement() throws(JSONSyntaxError) -> Bool {
        cursor.skipWhitespace()
        guard let byte = cursor.peek() else { throw cursor.error("unexpected end of JSON") }
        if seenBits & 1 != 0 {
            if byte == UInt8(ascii: "]") {
                pop()
                return false
            }
            guard byte == UInt8(ascii: ",") else { throw cursor.error("expected ',' or ']'") }
            cursor.position += 1
            return true
        }
        if byte == UInt8(ascii: "]") {
            pop()
            return false
        }
        seenBits |= 1
        return true
    }

    /// Skips (and validates) the next value; returns its range.
    public mutating func skipValue() throws(JSONSyntaxError) -> Range<Int> {
        cursor.skipWhitespace()
        return try cursor.skipValue(depth: depth)
    }

    /// After the outermost value: only whitespace may follow.
    public mutating func finish() throws(JSONSyntaxError) {
        cursor.skipWhitespace()
        if cursor.position != cursor.end { throw cursor.error("unexpected data after the JSON value") }
    }

    /// Whether the raw key bytes at `range` are `name`.
    @inlinable @inline(__always)
    public func key(_ range: Range<Int>, is name: StaticString) -> Bool {
        rawBytes(cursor.bytes, range, are: name)
    }

    /// Whether the value at `range` is the JSON string `name` written without escapes.
    @inline(__always)
    public func value(_ range: Range<Int>, is name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount + 2, cursor.base[range.lowerBound] == UInt8(ascii: "\"") else { return false }
        return key((range.lowerBound + 1)..<(range.upperBound - 1), is: name)
    }

    private mutating func push() throws(JSONSyntaxError) {
        guard depth < 63 else { throw cursor.error("JSON nested too deeply") }
        cursor.position += 1
        seenBits <<= 1
        depth += 1
    }

    private mutating func pop() {
        cursor.position += 1
        seenBits >>= 1
        depth -= 1
    }
}

