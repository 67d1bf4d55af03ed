import PrismWire

/// A model-name pattern from a provider plugin (ABI 1.4 model_patterns): `*` matches any run of
/// characters (`claude-*`, `anthropic.*`, `accounts/fireworks/models/*`), everything else itself.
/// Split once at `*`, so a match is a few byte comparisons (resolution stays within microseconds
/// with a hundred providers).
public struct ModelPattern: Sendable, Equatable {
    public let text: String
    private let parts: [[UInt8]]

    public init(_ text: String) {
        self.text = text
        parts = text.utf8.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false).map(Array.init)
    }

    public func matches(_ model: String) -> Bool {
        var model = model
        return model.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    package func matches(_ name: UnsafeRawBufferPointer) -> Bool {
        guard parts.count > 1 else { return equal(name, 0, parts[0]) && name.count == parts[0].count }
        // The first part is a prefix, the last a suffix, the middle ones appear in order between.
        let first = parts[0], last = parts[parts.count - 1]
        guard name.count >= first.count + last.count, equal(name, 0, first),
              equal(name, name.count - last.count, last)
        else { return false }
        var position = first.count
        let end = name.count - last.count
        for part in parts[1..<(parts.count - 1)] where !part.isEmpty {
            guard let found = firstOccurrence(of: part, in: name, from: position, before: end) else { return false }
            position = found + part.count
        }
        return true
    }

    private func equal(_ name: UnsafeRawBufferPointer, _ at: Int, _ part: [UInt8]) -> Bool {
        guard at >= 0, at + part.count <= name.count else { return false }
        for index in 0..<part.count where name[at + index] != part[index] { return false }
        return true
    }
}
