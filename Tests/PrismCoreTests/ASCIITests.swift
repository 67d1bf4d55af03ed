import PrismSupport
import XCTest

/// The ASCII helpers header handling uses instead of Unicode case mapping.
final class ASCIITests: XCTestCase {
    func testCaseInsensitiveContains() {
        XCTAssertTrue("text/event-stream; charset=utf-8".containsASCIICaseInsensitive("event-stream"))
        XCTAssertTrue("Text/Event-Stream".containsASCIICaseInsensitive("event-stream"))
        XCTAssertTrue("event-stream".containsASCIICaseInsensitive("event-stream"))
        XCTAssertFalse("application/json".containsASCIICaseInsensitive("event-stream"))
        XCTAssertFalse("event-strea".containsASCIICaseInsensitive("event-stream"))
        XCTAssertFalse("".containsASCIICaseInsensitive("event-stream"))
        XCTAssertTrue("anything".containsASCIICaseInsensitive(""))
        // Only ASCII letters fold: a non-ASCII byte never matches.
        XCTAssertFalse("text/évent-stream".containsASCIICaseInsensitive("event-stream"))
        XCTAssertTrue("x-EVENT-STREAMy"[...].containsASCIICaseInsensitive("event-stream"))
    }

    /// Clipping counts characters, as `prefix` does, whatever the fast path for short text.
    func testClippingKeepsWholeCharacters() {
        XCTAssertEqual("bench-client-7".clipped(toCharacters: 256), "bench-client-7")
        XCTAssertEqual("".clipped(toCharacters: 3), "")
        XCTAssertEqual("abcdef".clipped(toCharacters: 3), "abc")
        XCTAssertEqual("abc"[...].clipped(toCharacters: 3), "abc")
        // Two bytes a character: more bytes than the limit, no more characters.
        XCTAssertEqual("éééé".clipped(toCharacters: 4), "éééé")
        XCTAssertEqual("ééééé".clipped(toCharacters: 4), "éééé")
        // One character of many bytes (a family emoji) is kept or dropped whole.
        let family = "👨‍👩‍👧"
        XCTAssertEqual((family + family + "x").clipped(toCharacters: 2), family + family)
        XCTAssertEqual(String(repeating: "ü", count: 300).clipped(toCharacters: 256).count, 256)
    }

    func testLowerCasingLeavesNonLettersAlone() {
        XCTAssertEqual("Content-Type_1".asciiLowercased, "content-type_1")
        XCTAssertEqual("ÄB".asciiLowercased, "Äb")
    }

    /// Header fields kept as bytes: names lower-cased as stored, values as given, looked up by
    /// whole name or prefix, emptied for a new head while keeping the first one's room.
    func testHeaderBlock() {
        var block = HeaderBlock([("Content-Type", "Text/Plain"), ("X-RateLimit-Remaining", "7"), ("content-type", "second")])
        XCTAssertEqual(block.count, 3)
        XCTAssertEqual(block.value(of: "content-type"), "Text/Plain") // the first of a repeated name
        XCTAssertNil(block.value(of: "content"))
        XCTAssertTrue(block.name(at: 1, hasPrefix: "x-ratelimit"))
        XCTAssertFalse(block.name(at: 0, hasPrefix: "x-ratelimit"))
        XCTAssertTrue(block.name(at: 1, is: "x-ratelimit-remaining"))
        XCTAssertFalse(block.name(at: 1, is: "x-ratelimit"))
        XCTAssertEqual(block.pairs.map { "\($0.0)=\($0.1)" }, ["content-type=Text/Plain", "x-ratelimit-remaining=7", "content-type=second"])
        block.removeAll()
        XCTAssertTrue(block.isEmpty)
        let room = block.bytes.capacity
        let name = Array("Retry-After".utf8), value = Array("  2 ".utf8)
        name.withUnsafeBytes { name in value.withUnsafeBytes { block.append(name: name, value: $0) } }
        XCTAssertEqual(block.name(at: 0), "retry-after")
        XCTAssertEqual(block.value(at: 0), "  2 ") // values are kept as given (the transport trims them)
        XCTAssertEqual(block.bytes.capacity, room)
        XCTAssertTrue(HeaderBlock().pairs.isEmpty)
        // A line as the transport hands it: kept whole, the name lower-cased in place; bytes
        // that are not UTF-8 are stored repaired, as a String would hold them.
        var answer = HeaderBlock()
        answer.removeAll()
        for line in ["Content-Type: application/json", "X-Name: caf\u{E9}"] {
            let bytes = Array(line.utf8), colon = bytes.firstIndex(of: UInt8(ascii: ":"))!
            bytes.withUnsafeBytes { answer.append(line: $0, name: 0..<colon, value: (colon + 2)..<bytes.count) }
        }
        let broken: [UInt8] = Array("X-Raw: a".utf8) + [0xFF, 0x62]
        broken.withUnsafeBytes { answer.append(line: $0, name: 0..<5, value: 7..<broken.count) }
        XCTAssertEqual(answer.pairs.map { "\($0.0)=\($0.1)" },
                       ["content-type=application/json", "x-name=caf\u{E9}", "x-raw=a\u{FFFD}b"])
        XCTAssertEqual(Array(answer.bytes[answer.fields[2].value]), Array("a\u{FFFD}b".utf8))
        var empty = HeaderBlock([("", "")])
        empty.removeAll()
        XCTAssertTrue(empty.isEmpty)
    }
}
