/// Header fields kept as their bytes rather than as `String` pairs. An upstream answer's headers
/// arrive as bytes, and most of them are only handed on as pointers (to the provider plugin), so
/// one buffer with the ranges of each name and value takes the place of two `String`s a field
/// (often two allocations, and an array of tuples to grow and destroy). Names are kept
/// lower-cased; values as they came. A `String` is made only for what asks for one.
package struct HeaderBlock: Sendable {
    package struct Field: Sendable {
        package let name: Range<Int>
        package let value: Range<Int>
    }

    /// Every name and value, back to back, in the order they were added.
    package private(set) var bytes: [UInt8] = []
    package private(set) var fields: [Field] = []

    package init() {}

    /// Names given here are lower-cased as they are stored.
    package init(_ pairs: [(String, String)]) {
        for (name, value) in pairs { append(name: name, value: value) }
    }

    package var count: Int { fields.count }
    package var isEmpty: Bool { fields.isEmpty }

    /// Empties the block, keeping its room; room for a typical answer's head the first time.
    package mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        if bytes.capacity == 0 {
            bytes.reserveCapacity(512)
            fields.reserveCapacity(16)
        }
    }

    package mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let nameStart = bytes.count
        bytes.append(contentsOf: name)
        bytes.append(contentsOf: value)
        record(name: nameStart..<(nameStart + name.count), value: (nameStart + name.count)..<bytes.count)
    }

    /// One header line as it arrived, with where its name and value are in it: the line is kept
    /// whole (one copy), the name lower-cased in place. A line with bytes that are not UTF-8 has
    /// its name and value stored repaired (U+FFFD), as `String` would: plugins are promised UTF-8.
    package mutating func append(line: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>) {
        guard isASCII(line) else {
            return append(name: String(decoding: UnsafeRawBufferPointer(rebasing: line[name]), as: UTF8.self),
                          value: String(decoding: UnsafeRawBufferPointer(rebasing: line[value]), as: UTF8.self))
        }
        let start = bytes.count
        bytes.append(contentsOf: line)
        record(name: (start + name.lowerBound)..<(start + name.upperBound),
               value: (start + value.lowerBound)..<(start + value.upperBound))
    }

    /// No byte at or above 0x80, eight at a time (header lines are nearly always ASCII).
    private func isASCII(_ line: UnsafeRawBufferPointer) -> Bool {
        guard let base = line.baseAddress else { return true }
        var index = 0
        while index + 8 <= line.count {
            if base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < line.count {
            if base.load(fromByteOffset: index, as: UInt8.self) >= 0x80 { return false }
            index += 1
        }
        return true
    }

    private mutating func record(name: Range<Int>, value: Range<Int>) {
        bytes.withUnsafeMutableBytes { stored in
            guard let base = stored.baseAddress else { return }
            for index in name { base.storeBytes(of: asciiLowercased(base.load(fromByteOffset: index, as: UInt8.self)), toByteOffset: index, as: UInt8.self) }
        }
        fields.append(Field(name: name, value: value))
    }

    package mutating func append(name: String, value: String) {
        var name = name, value = value
        name.withUTF8 { name in value.withUTF8 { append(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer($0)) } }
    }

    package func name(at index: Int) -> String { text(fields[index].name) }
    package func value(at index: Int) -> String { text(fields[index].value) }

    /// Whether field `index`'s name is `name` (lower-case).
    package func name(at index: Int, is name: StaticString) -> Bool {
        matches(fields[index].name, name, prefix: false)
    }

    /// Whether field `index`'s name starts with `prefix` (lower-case).
    package func name(at index: Int, hasPrefix prefix: StaticString) -> Bool {
        matches(fields[index].name, prefix, prefix: true)
    }

    /// The value of the first field named `name` (lower-case).
    package func value(of name: StaticString) -> String? {
        for index in fields.indices where self.name(at: index, is: name) { return value(at: index) }
        return nil
    }

    /// The fields as pairs (for the few callers that want `String`s).
    package var pairs: [(String, String)] { fields.indices.map { (name(at: $0), value(at: $0)) } }

    private func text(_ range: Range<Int>) -> String {
        bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }

    private func matches(_ range: Range<Int>, _ name: StaticString, prefix: Bool) -> Bool {
        let length = name.utf8CodeUnitCount
        guard prefix ? range.count >= length : range.count == length else { return false }
        return bytes.withUnsafeBufferPointer { stored in
            for offset in 0..<length where stored[range.lowerBound + offset] != name.utf8Start[offset] { return false }
            return true
        }
    }
}
