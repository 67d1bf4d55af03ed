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
