/// ASCII-lowercases header-name bytes into a String (header names are ASCII tokens).
package func asciiLowercased(_ bytes: UnsafeRawBufferPointer) -> String {
    String(unsafeUninitializedCapacity: bytes.count) { buffer in
        for index in 0..<bytes.count {
            let byte = bytes[index]
            buffer[index] = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
        }
        return bytes.count
    }
}

extension String {
    /// Lower-case for ASCII header names without Unicode case mapping.
    package var asciiLowercased: String {
        var copy = self
        return copy.withUTF8 { PrismSupport.asciiLowercased(UnsafeRawBufferPointer($0)) }
    }
}

extension StringProtocol {
    /// Whether `needle` (lower-case ASCII) occurs in this text, ASCII letters compared without case:
    /// a header value test with no lower-cased copy and no searcher allocated (once per answer).
    package func containsASCIICaseInsensitive(_ needle: StaticString) -> Bool {
        needle.withUTF8Buffer { needle in
            let pattern = UnsafeRawBufferPointer(needle)
            if let found = utf8.withContiguousStorageIfAvailable({ asciiCaseInsensitiveSearch(UnsafeRawBufferPointer($0), pattern) }) {
                return found
            }
            return Array(utf8).withUnsafeBytes { asciiCaseInsensitiveSearch($0, pattern) }
        }
    }
}

private func asciiCaseInsensitiveSearch(_ text: UnsafeRawBufferPointer, _ pattern: UnsafeRawBufferPointer) -> Bool {
    guard !pattern.isEmpty else { return true }
    guard text.count >= pattern.count else { return false }
    for start in 0...(text.count - pattern.count) {
        var index = 0
        while index < pattern.count {
            let byte = text[start + index]
            if (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) != pattern[index] { break }
            index += 1
        }
        if index == pattern.count { return true }
    }
    return false
}
