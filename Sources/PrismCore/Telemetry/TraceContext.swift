import PrismWire
import Synchronization

/// A W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header):
/// `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`, lower-case hex only.
package struct TraceParent: Equatable, Sendable {
    package var traceHigh: UInt64
    package var traceLow: UInt64
    /// The sender's span (our parent).
    package var spanID: UInt64
    package var sampled: Bool

    package init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
        self.sampled = sampled
    }

    /// Parses a header value; nil for anything the specification says to ignore (a bad length or
    /// separator, upper-case or non-hex digits, an all-zero trace or span id, version `ff`).
    /// Versions after 00 are read by their first four fields, as the specification asks.
    package static func parse(_ value: String) -> TraceParent? {
        var value = value
        return value.withUTF8 { raw -> TraceParent? in
            var bytes = raw[...]
            while let first = bytes.first, first == 0x20 || first == 0x09 { bytes = bytes.dropFirst() }
            while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
            let start = bytes.startIndex
            guard bytes.count >= 55 else { return nil }
            func digits(_ offset: Int, _ count: Int) -> UInt64? {
                var result: UInt64 = 0
                for index in (start + offset)..<(start + offset + count) {
                    let byte = bytes[index]
                    // Lower case only: `A`-`F` make the header invalid.
                    guard byte < UInt8(ascii: "A") || byte > UInt8(ascii: "F"), let digit = Hex.value(byte) else { return nil }
                    result = result << 4 | UInt64(digit)
                }
                return result
            }
            guard let version = digits(0, 2), version != 0xFF,
                  bytes[start + 2] == UInt8(ascii: "-"), bytes[start + 35] == UInt8(ascii: "-"),
                  bytes[start + 52] == UInt8(ascii: "-"),
                  let high = digits(3, 16), let low = digits(19, 16), high | low != 0,
                  let span = digits(36, 16), span != 0, let flags = digits(53, 2)
            else { return nil }
            // Version 00 is exactly 55 characters; a later version may append `-…` fields.
            if version == 0 ? bytes.count != 55 : (bytes.count > 55 && bytes[start + 55] != UInt8(ascii: "-")) {
                return nil
            }
            return TraceParent(traceHigh: high, traceLow: low, spanID: span, sampled: flags & 1 == 1)
        }
    }

    /// The header value for a span of this trace (version 00).
    package static func format(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool) -> String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            TraceIDs.writeHex(traceHigh, into: buffer, at: 3)
            TraceIDs.writeHex(traceLow, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            TraceIDs.writeHex(spanID, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            buffer[53] = UInt8(ascii: "0")
            buffer[54] = sampled ? UInt8(ascii: "1") : UInt8(ascii: "0")
            return 55
        }
    }
}

/// Trace and span ids: SplitMix64 over a per-process random seed and an atomic counter. One atomic
/// add per id (no system call); ids never repeat within a process (the mix is a bijection of the
/// counter) and differ between processes by the seed. They identify, they do not authenticate.
package enum TraceIDs {
    private static let seed: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()

    private static let counter = Atomic<UInt64>(0)

    /// A non-zero 64-bit id.
    package static func next() -> UInt64 {
        var z = seed &+ counter.add(1, ordering: .relaxed).newValue &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z == 0 ? 1 : z
    }

    private static let alphabet: [UInt8] = Array("0123456789abcdef".utf8)

    /// 16 lower-case hex digits of `value` at `offset`.
    static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var remaining = value
        for index in stride(from: offset + 15, through: offset, by: -1) {
            buffer[index] = alphabet[Int(remaining & 0xF)]
            remaining >>= 4
        }
    }

    /// `value` as 16 lower-case hex digits (a span id in OTLP JSON).
    package static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            writeHex(value, into: buffer, at: 0)
            return 16
        }
    }

    /// A trace id as 32 lower-case hex digits.
    static func hex(high: UInt64, low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            writeHex(high, into: buffer, at: 0)
            writeHex(low, into: buffer, at: 16)
            return 32
        }
    }
}
