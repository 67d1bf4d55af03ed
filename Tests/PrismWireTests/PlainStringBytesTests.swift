import PrismWire
import XCTest

final class PlainStringBytesTests: XCTestCase {
    /// The vector and word skips never pass a quote, a backslash or a control byte, and stop no
    /// further than 8 bytes before one (the byte loop that follows finds it).
    func testNeverSkipsAByteAJSONStringScanMustSee() {
        var generator = SystemRandomNumberGenerator()
        let stops: [UInt8] = [0x22, 0x5C, 0x00, 0x0A, 0x1F]
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<200, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0x20...0xFF, using: &generator) }
                .map { $0 == 0x22 || $0 == 0x5C ? 0x41 : $0 }
            if length > 0, Bool.random(using: &generator) {
                bytes[Int.random(in: 0..<length, using: &generator)] = stops.randomElement(using: &generator)!
            }
            let start = length == 0 ? 0 : Int.random(in: 0...length, using: &generator)
            let stopped = bytes.withUnsafeBytes { skipPlainStringBytes($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, from: start, to: length) }
            XCTAssertGreaterThanOrEqual(stopped, start)
            XCTAssertLessThanOrEqual(stopped, length)
            XCTAssertFalse(bytes[start..<stopped].contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C })
            let next = bytes[stopped..<min(stopped + 8, length)]
            XCTAssertTrue(stopped + 8 > length || next.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C })
        }
    }

    func testAMegabyteStringScansAndWritesBackUnchanged() throws {
        let text = String(repeating: "lorem ipsum ", count: 90_000) + "é\\n\"end"
        let json = JSONValue.object([("content", .string(text))]).jsonBytes
        let parsed = try JSONValue.parse(json)
        XCTAssertEqual(parsed["content"]?.stringValue, text)
    }
}
