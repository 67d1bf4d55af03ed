/// One byte lower-cased if it is an ASCII capital, unchanged otherwise (no Unicode case mapping).
@inline(__always)
package func asciiLowercased(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

/// Copies `bytes` to `destination` ASCII-lowercased (header names are ASCII tokens).
package func copyASCIILowercased(_ bytes: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer) {
    for index in 0..<bytes.count {
        destination.storeBytes(of: asciiLowercased(bytes[index]), toByteOffset: index, as: UInt8.self)
    }
}

/// ASCII-lowercases header-name bytes into a String.
package func asciiLowercased(_ bytes: UnsafeRawBufferPointer) -> String {
    String(unsafeUninitializedCapacity: bytes.count) { buffer in
        if let base = buffer.baseAddress { copyASCIILowercased(bytes, to: UnsafeMutableRawPointer(base)) }
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
            if asciiLowercased(text[start + index]) != pattern[index] { break }
            index += 1
        }
        if index == pattern.count { return true }
    }
    return false
}
