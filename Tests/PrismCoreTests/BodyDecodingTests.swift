import Foundation
import PrismCore
import XCTest

/// Content-Encoding decoding of request bodies (Server/BodyDecoding.swift), in process: each coding,
/// stacks of them, the decoded-size bound (a bomb), and what is refused. The compressed inputs were
/// made with Python's gzip, zlib and zstandard modules.
final class BodyDecodingTests: XCTestCase {
    let plain = Array(#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#.utf8)

    func bytes(_ base64: String) -> [UInt8] { Array(Data(base64Encoded: base64)!) }

    let gzip = "H4sIAAAAAAACA6tWys1PSc1RslLKVdJRyk0tLk5MTy1WsoquVirKz0kFipcWpxYBpZLz80pS80qAAhmpOTn5SrWxtQAtxLI0PAAAAA=="
    let zlib = "eJyrVsrNT0nNUbJSylXSUcpNLS5OTE8tVrKKrlYqys9JBYqXFqcWAaWS8/NKUvNKgAIZqTk5+Uq1sbUAWEEUGw=="
    let rawDeflate = "q1bKzU9JzVGyUspV0lHKTS0uTkxPLVayiq5WKsrPSQWKlxanFgGlkvPzSlLzSoACGak5OflKtbG1AA=="
    let zstd = "KLUv/SA84QEAeyJtb2RlbCI6Im0iLCJtZXNzYWdlcyI6W3sicm9sZSI6InVzZXIiLCJjb250ZW50IjoiaGVsbG8ifV19"
    /// zstd of gzip of the body: `Content-Encoding: gzip, zstd`.
    let stacked = "KLUv/SBMYQIAH4sIAAAAAAACA6tWys1PSc1RslLKVdJRyk0tLk5MTy1WsoquVirKz0kFipcWpxYBpZLz80pS80qAAhmpOTn5SrWxtQAtxLI0PAAAAA=="

    func testEachCodingDecodes() throws {
        XCTAssertEqual(try BodyDecoding.decode(bytes(gzip), contentEncoding: "gzip", limit: 1 << 20), plain)
        XCTAssertEqual(try BodyDecoding.decode(bytes(gzip), contentEncoding: "x-gzip", limit: 1 << 20), plain)
        XCTAssertEqual(try BodyDecoding.decode(bytes(zlib), contentEncoding: "deflate", limit: 1 << 20), plain)
        XCTAssertEqual(try BodyDecoding.decode(bytes(rawDeflate), contentEncoding: "Deflate", limit: 1 << 20), plain)
        XCTAssertEqual(try BodyDecoding.decode(bytes(zstd), contentEncoding: "zstd", limit: 1 << 20), plain)
        XCTAssertEqual(try BodyDecoding.decode(plain, contentEncoding: "identity", limit: 1 << 20), plain)
    }

    func testCodingsApplyInOrder() throws {
        XCTAssertEqual(try BodyDecoding.decode(bytes(stacked), contentEncoding: "gzip, zstd", limit: 1 << 20), plain)
        XCTAssertThrowsError(try BodyDecoding.decode(bytes(stacked), contentEncoding: "zstd, gzip", limit: 1 << 20))
    }

    func testTheLimitBoundsTheDecodedSize() {
        for (input, coding) in [(gzip, "gzip"), (zstd, "zstd"), (zlib, "deflate")] {
            XCTAssertThrowsError(try BodyDecoding.decode(bytes(input), contentEncoding: coding, limit: plain.count - 1)) { error in
                XCTAssertEqual(error as? BodyDecoding.Failure, .tooLarge, coding)
            }
            XCTAssertEqual(try? BodyDecoding.decode(bytes(input), contentEncoding: coding, limit: plain.count), plain, coding)
        }
    }

    func testUnknownCorruptAndTruncatedBodies() {
        XCTAssertThrowsError(try BodyDecoding.decode(plain, contentEncoding: "br", limit: 1 << 20)) { error in
            XCTAssertEqual(error as? BodyDecoding.Failure, .unsupported("br"))
        }
        for coding in ["gzip", "deflate", "zstd"] {
            XCTAssertThrowsError(try BodyDecoding.decode(plain, contentEncoding: coding, limit: 1 << 20)) { error in
                guard case .corrupt? = error as? BodyDecoding.Failure else { return XCTFail("\(coding): \(error)") }
            }
        }
        for (input, coding) in [(gzip, "gzip"), (zstd, "zstd")] {
            let cut = Array(bytes(input).dropLast(6))
            XCTAssertThrowsError(try BodyDecoding.decode(cut, contentEncoding: coding, limit: 1 << 20)) { error in
                guard case .corrupt? = error as? BodyDecoding.Failure else { return XCTFail("\(coding): \(error)") }
            }
        }
    }
}
