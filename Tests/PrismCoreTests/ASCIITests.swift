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

    func testLowerCasingLeavesNonLettersAlone() {
        XCTAssertEqual("Content-Type_1".asciiLowercased, "content-type_1")
        XCTAssertEqual("ÄB".asciiLowercased, "Äb")
    }
}
