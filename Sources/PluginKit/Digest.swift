/// Message digests plugins need for request signing and binary framings, without Foundation or a
/// crypto library: SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104), CRC-32 (IEEE 802.3, zlib's) and
/// lower-case hex. Verified in Tests/BedrockTests against NIST and RFC 4231 vectors.
public struct SHA256: Sendable {
    public static let digestLength = 32
    public static let blockLength = 64

    typealias State = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    private var state: State =
        (0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
    /// An incomplete block waiting for more input, kept inline (no allocation per hash).
    private var pending: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var pendingCount = 0
    private var length: UInt64 = 0

    public init() {}

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard var base = data.baseAddress, data.count > 0 else { return }
        var remaining = data.count
        length &+= UInt64(remaining)
        if pendingCount > 0 {
            let take = min(SHA256.blockLength - pendingCount, remaining)
            let count = pendingCount
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.advanced(by: count).copyMemory(from: base, byteCount: take) }
            pendingCount += take
            base += take
            remaining -= take
            guard pendingCount == SHA256.blockLength else { return }
            compressPending()
        }
        while remaining >= SHA256.blockLength {
            SHA256.compress(&state, base)
            base += SHA256.blockLength
            remaining -= SHA256.blockLength
        }
        if remaining > 0 {
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: base, byteCount: remaining) }
            pendingCount = remaining
        }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public mutating func update(_ text: String) {
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    private mutating func compressPending() {
        var block = pending
        withUnsafeBytes(of: &block) { SHA256.compress(&state, $0.baseAddress!) }
        pendingCount = 0
    }

    /// The digest; the hasher must not be used afterwards.
    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        // 0x80, zeros up to 56 mod 64, then the message length in bits (big-endian).
        var count = pendingCount
        withUnsafeMutableBytes(of: &pending) { block in
            block[count] = 0x80
            for index in (count + 1)..<SHA256.blockLength { block[index] = 0 }
        }
        count += 1
        if count > 56 {
            compressPending()
            pending = (0, 0, 0, 0, 0, 0, 0, 0)
        }
        pending.7 = bits.bigEndian
        compressPending()
        return withUnsafeBytes(of: &state) { words in
            [UInt8](unsafeUninitializedCapacity: SHA256.digestLength) { digest, initialized in
                for index in 0..<8 {
                    let word = words.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self).bigEndian
                    withUnsafeBytes(of: word) { bytes in
                        for byte in 0..<4 { digest[index * 4 + byte] = bytes[byte] }
                    }
                }
                initialized = SHA256.digestLength
            }
        }
    }

    public static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data)
        return hasher.finalize()
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { hash($0) } }

    public static func hash(_ text: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(text)
        return hasher.finalize()
    }

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    @inline(__always)
    private static func rotate(_ value: UInt32, _ count: UInt32) -> UInt32 { (value >> count) | (value << (32 - count)) }

    /// One round (FIPS 180-4 §6.2.2 step 3), with the variables' roles rotated by the caller
    /// instead of moving eight values every round.
    @inline(__always)
    private static func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32, _ e: UInt32, _ f: UInt32,
                              _ g: UInt32, _ h: inout UInt32, _ constantPlusWord: UInt32)
    {
        let temporary1 = h &+ (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) &+ (g ^ (e & (f ^ g))) &+ constantPlusWord
        let temporary2 = (rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)) &+ ((a & b) | (c & (a | b)))
        d = d &+ temporary1
        h = temporary1 &+ temporary2
    }

    /// One 64-byte block into the state; the message schedule lives in a 16-word ring.
    private static func compress(_ state: inout State, _ block: UnsafeRawPointer) {
        roundConstants.withUnsafeBufferPointer { constants in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { schedule in
                for index in 0..<16 {
                    schedule[index] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
                }
                var (a, b, c, d, e, f, g, h) = state
                var base = 0
                // W[t] for t = base + slot: the block's words first, then σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16].
                @inline(__always) func word(_ slot: Int) -> UInt32 {
                    if base == 0 { return constants[slot] &+ schedule[slot] }
                    let early = schedule[(slot + 1) & 15], late = schedule[(slot + 14) & 15]
                    let value = schedule[slot] &+ (rotate(early, 7) ^ rotate(early, 18) ^ (early >> 3))
                        &+ schedule[(slot + 9) & 15] &+ (rotate(late, 17) ^ rotate(late, 19) ^ (late >> 10))
                    schedule[slot] = value
                    return constants[base + slot] &+ value
                }
                while base < 64 {
                    round(a, b, c, &d, e, f, g, &h, word(0))
                    round(h, a, b, &c, d, e, f, &g, word(1))
                    round(g, h, a, &b, c, d, e, &f, word(2))
                    round(f, g, h, &a, b, c, d, &e, word(3))
                    round(e, f, g, &h, a, b, c, &d, word(4))
                    round(d, e, f, &g, h, a, b, &c, word(5))
                    round(c, d, e, &f, g, h, a, &b, word(6))
                    round(b, c, d, &e, f, g, h, &a, word(7))
                    round(a, b, c, &d, e, f, g, &h, word(8))
                    round(h, a, b, &c, d, e, f, &g, word(9))
                    round(g, h, a, &b, c, d, e, &f, word(10))
                    round(f, g, h, &a, b, c, d, &e, word(11))
                    round(e, f, g, &h, a, b, c, &d, word(12))
                    round(d, e, f, &g, h, a, b, &c, word(13))
                    round(c, d, e, &f, g, h, a, &b, word(14))
                    round(b, c, d, &e, f, g, h, &a, word(15))
                    base += 16
                }
                state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d,
                         state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
            }
        }
    }
}

/// HMAC with SHA-256 (RFC 2104).
public enum HMACSHA256 {
    public static func authenticationCode(key: [UInt8], message: UnsafeRawBufferPointer) -> [UInt8] {
        let key = key.count > SHA256.blockLength ? SHA256.hash(key) : key
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: SHA256.blockLength) { pad in
            for index in 0..<SHA256.blockLength { pad[index] = (index < key.count ? key[index] : 0) ^ 0x36 }
            var inner = SHA256()
            inner.update(UnsafeRawBufferPointer(pad))
            inner.update(message)
            let innerDigest = inner.finalize()
            for index in 0..<SHA256.blockLength { pad[index] = (index < key.count ? key[index] : 0) ^ 0x5c }
            var outer = SHA256()
            outer.update(UnsafeRawBufferPointer(pad))
            outer.update(innerDigest)
            return outer.finalize()
        }
    }

    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { authenticationCode(key: key, message: $0) }
    }

    public static func authenticationCode(key: [UInt8], message: String) -> [UInt8] {
        var message = message
        return message.withUTF8 { authenticationCode(key: key, message: UnsafeRawBufferPointer($0)) }
    }
}

/// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320): the checksum of AWS event-stream
/// frames, gzip and PNG.
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    /// The checksum of `data`, continuing from `previous` (the checksum of the bytes before it).
    public static func checksum(_ data: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        var crc = ~previous
        table.withUnsafeBufferPointer { table in
            for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return ~crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}
