import CCrypto

/// SHA-256 and HMAC-SHA256 for plugins (request signing, cache keys, hashed client keys), from
/// OpenSSL's libcrypto: the library the host already has loaded for libcurl, so a plugin carries
/// no digest code of its own. Verified in Tests/BedrockTests against NIST and RFC 4231 vectors.
public struct SHA256 {
    public static let digestLength = 32
    public static let blockLength = 64

    /// The EVP context, freed with the last copy of the hasher (or by finalize).
    private final class Context {
        var pointer: OpaquePointer?

        init() {
            pointer = prism_sha256_begin()
            // Only out of memory makes libcrypto refuse a SHA-256 context.
            precondition(pointer != nil, "libcrypto could not start a SHA-256 digest")
        }

        deinit { if let pointer { prism_sha256_abandon(pointer) } }
    }

    private let context = Context()

    public init() {}

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let pointer = context.pointer, let base = data.baseAddress, data.count > 0 else { return }
        precondition(prism_sha256_update(pointer, base, data.count) == 1, "libcrypto could not digest")
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public mutating func update(_ text: String) {
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The digest; the hasher must not be used afterwards.
    public mutating func finalize() -> [UInt8] {
        guard let pointer = context.pointer else { preconditionFailure("SHA256.finalize called twice") }
        context.pointer = nil
        var digest = [UInt8](repeating: 0, count: SHA256.digestLength)
        precondition(prism_sha256_finish(pointer, &digest) == 1, "libcrypto could not finish a digest")
        return digest
    }

    public static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: SHA256.digestLength)
        let empty: UInt8 = 0
        let ok = withUnsafePointer(to: empty) { fallback in
            prism_digest(0, data.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback, data.count, &digest)
        }
        precondition(ok == 1, "libcrypto could not digest")
        return digest
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { hash($0) } }

    public static func hash(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }
}

/// HMAC with SHA-256 (RFC 2104).
public enum HMACSHA256 {
    public static func authenticationCode(key: [UInt8], message: UnsafeRawBufferPointer) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: SHA256.digestLength)
        let empty: UInt8 = 0
        let ok = withUnsafePointer(to: empty) { fallback in
            prism_hmac_sha256(key, key.count, message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? fallback,
                              message.count, &code)
        }
        precondition(ok == 1, "libcrypto could not compute an HMAC")
        return code
    }

    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { authenticationCode(key: key, message: $0) }
    }

    public static func authenticationCode(key: [UInt8], message: String) -> [UInt8] {
        var message = message
        return message.withUTF8 { authenticationCode(key: key, message: UnsafeRawBufferPointer($0)) }
    }
}
