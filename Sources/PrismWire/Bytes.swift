// Small byte utilities shared by the host and plugins (through PluginKit): hex, and comparison
// in constant time for secrets.

/// Lower-case hexadecimal.
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes of a hex string (either case); nil for an odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            output.append(high << 4 | low)
            index += 2
        }
        return output
    }

    /// One hex digit's value (either case); nil for anything else.
    public static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Comparison of secrets in time that depends only on the lengths, never on where the bytes
/// differ (client keys, admin tokens).
public enum ConstantTime {
    public static func equal(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        for index in 0..<max(left.count, right.count) {
            difference |= (index < left.count ? left[index] : 0) ^ (index < right.count ? right[index] : 0)
        }
        return difference == 0
    }
}

/// Where `needle` first occurs in `haystack[start..<end]` (`end`: the whole buffer when nil); nil
/// when it does not. The byte search the model patterns and the priced-usage check share.
@inlinable
public func firstOccurrence(of needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int = 0,
                            before end: Int? = nil) -> Int?
{
    let end = min(end ?? haystack.count, haystack.count)
    guard let first = needle.first else { return start <= end ? start : nil }
    var index = max(start, 0)
    while index + needle.count <= end {
        if haystack[index] == first {
            var matched = 1
            while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
            if matched == needle.count { return index }
        }
        index += 1
    }
    return nil
}
