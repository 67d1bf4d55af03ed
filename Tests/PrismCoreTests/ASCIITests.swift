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
}
