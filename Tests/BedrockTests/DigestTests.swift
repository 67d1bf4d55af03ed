import AWSKit
import PrismWire
import XCTest
import PluginKit

/// SHA-256, HMAC-SHA256 and CRC-32 against published vectors.
final class DigestTests: XCTestCase {
    func hex(_ text: String) -> String { Hex.encode(SHA256.hash(text)) }

    /// NIST FIPS 180-2 Appendix B and the NIST CSRC examples (SHA256.pdf): "abc", the two-block
    /// 448-bit message, one million "a"; the 896-bit message from the SHA-2 additional examples.
    func testSHA256NISTVectors() {
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        XCTAssertEqual(Hex.encode(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths around the padding boundaries (55/56 bytes: one or two final blocks); expected
    /// values from Python's hashlib for bytes (7·i) mod 256.
    func testSHA256PaddingBoundaries() {
        let expected: [Int: String] = [
            55: "576a1bf8d4478657e6dc4af9398544765c2a92cde28478b019235cfed315fc09",
            56: "9b20501dfd1d99161c257950f3444f3e49230c351c5c8e0943ef369f85f5205d",
            57: "a5534a9d0694341dfde5b1bb3d8addcb38bd46f44a629dc97b3f8fb2721b0720",
            63: "30b345906b493f06f69444b6521113511c242f30e29840462950035043682f1e",
            64: "d8bc63b4fc1156e5e7d95a418b9bf54cd3174bedbc2db40f74895349b229b3c0",
            65: "1ee23b0fbcaecc1aff4a9e8f1645f35ab2c8e13609cd73b68df8b5e3f63ce073",
            119: "7a6589821178918ca8d9edaba5abfc1e9b2669564f4469b66885379c1530b2c8",
            120: "655250427d56b1b0eeb8497d21428704273458a01772d6881b65c0abac0f8a98",
            127: "67d79933e3c9aa8e89f481e071cfca1e9a16c09d7263b5efa3bb01f1a9f8d065",
            128: "54c9eb041badfd7064645067b107661fed6113197ce2dd066ba69618abd3732f",
        ]
        for (length, digest) in expected {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 7) }
            XCTAssertEqual(Hex.encode(SHA256.hash(bytes)), digest, "length \(length)")
        }
    }

    /// Feeding the input in pieces of any size gives the same digest as one call.
    func testSHA256IncrementalUpdates() {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = SHA256.hash(bytes)
        for piece in [1, 3, 63, 64, 65, 128, 299] {
            var hasher = SHA256()
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + piece, bytes.count)
                hasher.update(Array(bytes[offset..<end]))
                offset = end
            }
            XCTAssertEqual(hasher.finalize(), whole, "pieces of \(piece)")
        }
    }

    /// RFC 4231 §4.2–4.8, HMAC-SHA-256 (test case 5 is truncated to 128 bits by the RFC).
    func testHMACSHA256RFC4231() {
        let cases: [([UInt8], [UInt8], String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            ([UInt8](repeating: 0xaa, count: 131),
             Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ]
        for (index, (key, message, expected)) in cases.enumerated() {
            XCTAssertEqual(Hex.encode(HMACSHA256.authenticationCode(key: key, message: message)), expected, "case \(index)")
        }
        let truncated = HMACSHA256.authenticationCode(key: [UInt8](repeating: 0x0c, count: 20),
                                                      message: Array("Test With Truncation".utf8))
        XCTAssertEqual(Hex.encode(Array(truncated.prefix(16))), "a3b6167473100ee06e0c796c2955552b")
    }

    /// The CRC-32 check value ("123456789" → 0xCBF43926) and zlib's crc32 of a pangram.
    func testCRC32() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        let pangram = Array("The quick brown fox jumps over the lazy dog".utf8)
        XCTAssertEqual(CRC32.checksum(pangram), 0x414F_A339)
        let continued = pangram[20...].withUnsafeBytes { rest in
            CRC32.checksum(rest, continuing: CRC32.checksum(Array(pangram[..<20])))
        }
        XCTAssertEqual(continued, 0x414F_A339)
    }

    func testHexRoundTrip() {
        XCTAssertEqual(Hex.encode([0x00, 0x7f, 0x80, 0xff]), "007f80ff")
        XCTAssertEqual(Hex.decode("007F80ff"), [0x00, 0x7f, 0x80, 0xff])
        XCTAssertNil(Hex.decode("abc"))
        XCTAssertNil(Hex.decode("zz"))
    }
}
