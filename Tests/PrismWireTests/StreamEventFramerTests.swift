import XCTest

import PrismWire

final class StreamEventFramerTests: XCTestCase {
    private func feed(_ framer: inout StreamEventFramer, _ text: String?) throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        try framer.feed(text.map { Array($0.utf8) }) { events.append($0) }
        return events
    }

    func testServerSentEventsAcrossChunksAndTheEnd() throws {
        var framer = StreamEventFramer(mode: .serverSentEvents)
        XCTAssertEqual(try feed(&framer, "event: a\ndata: {\"x\""), [])
        XCTAssertTrue(framer.holdsPartialEvent)
        XCTAssertEqual(try feed(&framer, ":1}\n\ndata: 2\r\n\r\ndata: tail"),
                       [ServerSentEvent(event: "a", data: Array("{\"x\":1}".utf8)), ServerSentEvent(data: Array("2".utf8))])
        XCTAssertTrue(framer.holdsPartialEvent)
        // The end delivers what was held.
        XCTAssertEqual(try feed(&framer, nil), [ServerSentEvent(data: Array("tail".utf8))])
        XCTAssertFalse(framer.holdsPartialEvent)
    }

    func testLinesAreEventsWithOnlyData() throws {
        var framer = StreamEventFramer(mode: .lines)
        XCTAssertEqual(try feed(&framer, "{\"a\":1}\n{\"b\""), [ServerSentEvent(data: Array("{\"a\":1}".utf8))])
        XCTAssertTrue(framer.holdsPartialEvent)
        XCTAssertEqual(try feed(&framer, ":2}\n"), [ServerSentEvent(data: Array("{\"b\":2}".utf8))])
        XCTAssertFalse(framer.holdsPartialEvent)
        XCTAssertEqual(try feed(&framer, "{\"c\":3}"), [])
        XCTAssertEqual(try feed(&framer, nil), [ServerSentEvent(data: Array("{\"c\":3}".utf8))])
    }
}
