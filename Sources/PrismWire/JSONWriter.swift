/// Writes compact JSON into a byte array. Commas are inserted automatically between members and
/// elements; callers state structure (begin/end, key, value) and never write separators.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    /// One bit per open container (innermost = bit 0): whether it already holds a member or
    /// element. A bit stack, not an array: this is touched for every value written. Containers
    /// nested deeper than 64 keep their bits in `deeperBits`.
    private var commaBits: UInt64 = 0
    private var depth = 0
    private var deeperBits: [Bool] = []

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        pushContainer()
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        popContainer()
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        pushContainer()
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        popContainer()
    }

    @inline(__always)
    private mutating func pushContainer() {
        if depth >= 64 { deeperBits.append(commaBits >> 63 != 0) }
        commaBits <<= 1
        depth += 1
    }

    @inline(__always)
    private mutating func popContainer() {
        depth -= 1
        commaBits >>= 1
        if depth >= 64, let bit = deeperBits.popLast() { commaBits |= bit ? 1 << 63 : 0 }
    }

    /// Writes a member name; the next value call writes its value.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        valueFollows = true
    }

    /// Kept for symmetry with array building; commas are automatic, so this does nothing.
    public mutating func comma() {}

    public mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
    }

    public mutating func string(_ key: String, _ value: String) {
        self.key(key)
        string(value)
    }

    public mutating func optionalString(_ key: String, _ value: String?) {
        self.key(key)
        if let value { string(value) } else { raw("null") }
    }

    public mutating func integer(_ value: Int64) {
        separate()
        appendDecimal(value)
    }

    public mutating func integer(_ key: String, _ value: Int64) {
        self.key(key)
        integer(value)
    }

    public mutating func number(_ value: Double) {
        separate()
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            appendDecimal(Int64(value))
        } else if value.isFinite {
            bytes.append(contentsOf: Array("\(value)".utf8))
        } else {
            bytes.append(contentsOf: Array("null".utf8))
        }
    }

    public mutating func number(_ key: String, _ value: Double) {
        self.key(key)
        number(value)
    }

    public mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    public mutating func bool(_ key: String, _ value: Bool) {
        self.key(key)
        bool(value)
    }

    public mutating func null() { raw("null") }

    public mutating func null(_ key: String) {
        self.key(key)
        null()
    }

    /// Writes already-encoded JSON (a value) as is.
    public mutating func raw(_ json: String) {
        separate()
        bytes.append(contentsOf: json.utf8)
    }

    /// Writes already-encoded JSON bytes (a value) as is.
    public mutating func raw<Bytes: Collection>(bytes json: Bytes) where Bytes.Element == UInt8 {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Writes already-encoded JSON bytes (a value) as is.
    public mutating func raw(bytes json: UnsafeRawBufferPointer) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Writes already-encoded JSON bytes (a value) as is.
    public mutating func raw(bytes json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Writes already-encoded JSON bytes (a value) as is.
    public mutating func raw(bytes json: ArraySlice<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Writes a member given as encoded JSON (`"type":"text"`): a constant, written without a
    /// look at its bytes.
    public mutating func member(_ json: StaticString) {
        separate()
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: json.utf8Start, count: json.utf8CodeUnitCount))
    }

    /// `key(_:)` for a name that needs no escaping (a literal): the next value call writes its value.
    public mutating func key(literal name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        valueFollows = true
    }

    /// `string(_:)` for a value that needs no escaping (a literal).
    public mutating func string(literal value: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
    }

    /// Writes JSON at the end of `buffer` (no copy): for JSON framed inside other bytes (an SSE
    /// event). `body` starts with a fresh writer state.
    public static func append(to buffer: inout [UInt8], _ body: (inout JSONWriter) throws -> Void) rethrows {
        var writer = JSONWriter(capacity: 0)
        swap(&writer.bytes, &buffer)
        defer { swap(&writer.bytes, &buffer) }
        try body(&writer)
    }

    /// Writes the JSON value at `range` of `bytes` as a JSON string holding its text, whitespace
    /// outside strings removed (a tool call's `arguments` from an input object). `range` must
    /// hold valid JSON (as JSONReader or JSONScanner returned it).
    public mutating func compactJSONString(of source: UnsafeRawBufferPointer, in range: Range<Int>) {
        separate()
        bytes.reserveCapacity(bytes.count + range.count + 16)
        bytes.append(UInt8(ascii: "\""))
        var inString = false
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            let byte = source[index]
            index += 1
            if inString {
                if byte == UInt8(ascii: "\\") {
                    // An escape: its backslash escaped again, and the escaped byte if it needs it.
                    bytes.append(UInt8(ascii: "\\"))
                    bytes.append(UInt8(ascii: "\\"))
                    let next = source[index]
                    index += 1
                    if next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                    bytes.append(next)
                    continue
                }
                if byte == UInt8(ascii: "\"") {
                    inString = false
                    bytes.append(UInt8(ascii: "\\"))
                }
                bytes.append(byte)
                continue
            }
            switch byte {
            case 0x20, 0x0A, 0x0D, 0x09: continue
            case UInt8(ascii: "\""):
                inString = true
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    // MARK: Internals

    private var valueFollows = false

    private mutating func separate() {
        if valueFollows {
            valueFollows = false
            return
        }
        guard depth > 0 else { return }
        if commaBits & 1 != 0 {
            bytes.append(UInt8(ascii: ","))
        } else {
            commaBits |= 1
        }
    }

    private mutating func appendDecimal(_ value: Int64) {
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(truncatingIfNeeded: magnitude % 10) + 0x30
                magnitude /= 10
                count += 1
            }
        }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        withUnsafeBytes(of: &digits) { buffer in
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func appendQuoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            // Fast path: most strings need no escaping; find that out many bytes at a time.
            var clean = 0
            if let base = utf8.baseAddress {
                clean = skipPlainStringBytes(UnsafeRawPointer(base), from: 0, to: utf8.count)
            }
            var runStart = 0
            for index in clean..<utf8.count {
                let byte = utf8[index]
                if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") { continue }
                if runStart < index {
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                }
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                default:
                    bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30,
                                              JSONWriter.hexDigits[Int(byte >> 4)],
                                              JSONWriter.hexDigits[Int(byte & 0xF)]])
                }
            }
            if runStart < utf8.count {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
