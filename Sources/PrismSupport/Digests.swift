import CCrypto
import PrismWire

/// Lower-case hex of a text's SHA-256 (client keys in the admin store) or SHA-1 (the names Redis
/// gives Lua scripts, for EVALSHA), through libcrypto.
package func digestHex(_ text: String, sha1: Bool) -> String {
    let bytes = Array(text.utf8)
    var digest = [UInt8](repeating: 0, count: 32)
    guard prism_digest(sha1 ? 1 : 0, bytes, bytes.count, &digest) == 1 else {
        preconditionFailure("libcrypto could not compute a digest") // only fails when out of memory
    }
    return Hex.encode(Array(digest.prefix(sha1 ? 20 : 32)))
}
