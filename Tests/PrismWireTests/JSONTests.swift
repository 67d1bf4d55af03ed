import XCTest
import PrismWire

final class JSONScannerTests: XCTestCase {
    func members(_ text: String) throws -> (bytes: [UInt8], members: [JSONMember]) {
        let bytes = Array(text.utf8)
        let members = try bytes.withUnsafeBytes { try JSONScanner.members($0) }
        return (bytes, members)
    }

    func testFindsTopLevelMembersWithoutDescendingIntoValues() throws {
        let (bytes, found) = try members(#" {"model":"gpt-4o","messages":[{"model":"inner"}],"stream":true} "#)
        XCTAssertEqual(found.count, 3)
        bytes.withUnsafeBytes { raw in
            let model = JSONScanner.member(named: "model", in: found, of: raw)!
            XCTAssertEqual(JSONScanner.string(raw, in: model.valueRange), "gpt-4o")
            let stream = JSONScanner.member(named: "stream", in: found, of: raw)!
            XCTAssertTrue(JSONScanner.isTrue(raw, in: stream.valueRange))
        }
    }

    func testRejectsInvalidDocuments() {
        for invalid in ["", "{", #"{"a":}"#, #"{"a":1,}"#, #"{"a":tru}"#, "[1,2", #"{"a":"\x"}"#, #"{"a":01}"#,
                        "{} {}", #"{"a":"unterminated}"#, "{\"a\":\"tab\there\"}"] {
            XCTAssertThrowsError(try Array(invalid.utf8).withUnsafeBytes { try JSONScanner.validate($0) }, invalid)
        }
    }

    func testRefusesDeepNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try Array(deep.utf8).withUnsafeBytes { try JSONScanner.validate($0) })
    }

    func testUnescapesStringsIncludingSurrogatePairs() throws {
        let value = try JSONValue.parse(#"{"text":"a\"b\\c\nd\u00e9\ud83d\ude00"}"#)
        XCTAssertEqual(value["text"]?.stringValue, "a\"b\\c\nd\u{e9}\u{1F600}")
    }

    func testTreeRoundTripKeepsOrderAndNumbers() throws {
        let text = #"{"b":1.50,"a":[true,false,null,"x"],"c":{"d":-2e3}}"#
        let value = try JSONValue.parse(text)
        XCTAssertEqual(value.jsonText, text)
    }

    func testWriterEscapesControlCharacters() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.string("k", "line\nbreak \"quoted\" \u{01}")
        writer.integer("n", -42)
        writer.endObject()
        XCTAssertEqual(writer.text, #"{"k":"line\nbreak \"quoted\" \u0001","n":-42}"#)
        XCTAssertNoThrow(try JSONValue.parse(writer.bytes))
    }

    func testErrorBodyHasEveryOpenAIField() throws {
        let body = try JSONValue.parse(OpenAIErrorBody.make(message: "m", type: "t", code: "c"))
        XCTAssertEqual(body["error"]?["message"]?.stringValue, "m")
        XCTAssertEqual(body["error"]?["type"]?.stringValue, "t")
        XCTAssertEqual(body["error"]?["code"]?.stringValue, "c")
        XCTAssertEqual(body["error"]?["param"], .null)
    }
}

final class ServerSentEventTests: XCTestCase {
    let stream = Array("data: {\"a\":1}\n\n: keep-alive\n\nevent: message_delta\r\ndata: first\r\ndata: second\r\n\r\nid: 7\ndata: [DONE]\n\n".utf8)

    func parseAll(splitAt split: Int?) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        if let split {
            try parser.feed(Array(stream[..<split])) { events.append($0) }
            try parser.feed(Array(stream[split...])) { events.append($0) }
        } else {
            for byte in stream { try parser.feed([byte]) { events.append($0) } }
        }
        try parser.finish { events.append($0) }
        return events
    }

    func testParsesEventsWhateverTheChunkBoundaries() throws {
        let expected = [
            ServerSentEvent(data: Array("{\"a\":1}".utf8)),
            ServerSentEvent(event: "message_delta", data: Array("first\nsecond".utf8)),
            ServerSentEvent(data: Array("[DONE]".utf8), id: "7"),
        ]
        XCTAssertEqual(try parseAll(splitAt: nil), expected, "one byte at a time")
        for split in 0...stream.count {
            XCTAssertEqual(try parseAll(splitAt: split), expected, "split at \(split)")
        }
    }

    func testBareCarriageReturnsEndLinesAtAnyChunkBoundary() throws {
        let text = Array("event: a\rdata: x\rdata: y\r\rdata: z\n\n".utf8)
        for split in 0...text.count {
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            try parser.feed(Array(text[..<split])) { events.append($0) }
            try parser.feed(Array(text[split...])) { events.append($0) }
            XCTAssertEqual(events, [ServerSentEvent(event: "a", data: Array("x\ny".utf8)), ServerSentEvent(data: Array("z".utf8))],
                           "split at \(split)")
        }
    }

    func testDispatchesAFinalEventWithoutTrailingBlankLine() throws {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        try parser.feed(Array("data: last".utf8)) { events.append($0) }
        XCTAssertTrue(events.isEmpty)
        try parser.finish { events.append($0) }
        XCTAssertEqual(events, [ServerSentEvent(data: Array("last".utf8))])
    }

    func testLineSplitterJoinsAcrossChunks() {
        var splitter = LineSplitter()
        var lines: [String] = []
        for chunk in ["{\"a\"", ":1}\n{\"b\":2}\r\n{\"c", "\":3}"] {
            Array(chunk.utf8).withUnsafeBytes { raw in splitter.feed(raw) { lines.append(String(decoding: $0, as: UTF8.self)) } }
        }
        splitter.finish { lines.append(String(decoding: $0, as: UTF8.self)) }
        XCTAssertEqual(lines, [#"{"a":1}"#, #"{"b":2}"#, #"{"c":3}"#])
    }
}

final class JSONWriterNestingTests: XCTestCase {
    func testCommasStayRightBeyondSixtyFourLevels() throws {
        var text = ""
        for _ in 0..<100 { text += "[1," }
        text += "0"
        for _ in 0..<100 { text += ",2]" }
        let value = try JSONValue.parse(text)
        XCTAssertEqual(value.jsonText, text)
    }
}
