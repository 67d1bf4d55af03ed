import PrismCore
import PrismPluginABI
import PrismSupport
import XCTest

/// The request body's storage: appended to as it arrives, then read in place by plugins.
final class PinnedBytesTests: XCTestCase {
    func testAppendsAcrossGrowthKeepEveryByteInOrder() {
        let bytes = PinnedBytes(capacity: 3)
        var expected: [UInt8] = []
        for round in 0..<200 {
            let piece = (0..<(round % 17 + 1)).map { UInt8(truncatingIfNeeded: round &* 31 &+ $0) }
            piece.withUnsafeBytes { bytes.append($0) }
            expected += piece
        }
        XCTAssertEqual(bytes.count, expected.count)
        XCTAssertEqual(bytes.array, expected)
        bytes.append(UnsafeRawBufferPointer(start: nil, count: 0)) // nothing to append
        XCTAssertEqual(bytes.count, expected.count)
    }

    func testEmptyHasNoBytes() {
        XCTAssertTrue(PinnedBytes().isEmpty)
        XCTAssertEqual(PinnedBytes().array, [])
        XCTAssertEqual(PinnedBytes([1, 2, 3]).array, [1, 2, 3])
    }

    /// Plugins read the request's own bytes: the view points at them instead of at a copy.
    func testTheRequestViewPointsAtTheBodyItself() {
        let body = PinnedBytes(Array(#"{"model":"m","messages":[]}"#.utf8))
        let view = RequestView(api: "chat.completions", method: "POST", path: "/v1/chat/completions",
                               headers: [("Content-Type", "application/JSON")], body: body, model: "m", requestID: "r")
        let seen = view.pointer.pointee.body
        // Header names reach plugins lower-cased, values as they came.
        let header = view.pointer.pointee.headers[0]
        XCTAssertEqual(String(decoding: UnsafeRawBufferPointer(start: header.name.data, count: header.name.length), as: UTF8.self),
                       "content-type")
        XCTAssertEqual(String(decoding: UnsafeRawBufferPointer(start: header.value.data, count: header.value.length), as: UTF8.self),
                       "application/JSON")
        XCTAssertEqual(String(decoding: UnsafeRawBufferPointer(start: view.pointer.pointee.path.data,
                                                               count: view.pointer.pointee.path.length), as: UTF8.self),
                       "/v1/chat/completions")
        XCTAssertEqual(UnsafeRawPointer(seen.data), body.bytes.baseAddress)
        XCTAssertEqual(seen.length, body.count)
        // An empty body still gets a non-NULL pointer (a C plugin may not expect NULL with length 0).
        let empty = RequestView(api: "models.list", method: "GET", path: "/v1/models", headers: [], body: [],
                                model: "", requestID: "r")
        XCTAssertNotNil(empty.pointer.pointee.body.data)
        XCTAssertEqual(empty.pointer.pointee.body.length, 0)
    }

    /// The model lives in the view's block while it fits there; a longer one moves out, and every
    /// change leaves the other fields where they were.
    func testTheModelCanBeSetAgainLongerOrShorter() {
        let view = RequestView(api: "chat.completions", method: "POST", path: "/v1/chat/completions",
                               headers: [("X-A", "1"), ("X-B", "two")], body: [], model: "fast", requestID: "req-1")
        func text(_ string: prism_string) -> String {
            String(decoding: UnsafeRawBufferPointer(start: string.data, count: string.length), as: UTF8.self)
        }
        let models = ["fast", "gpt-4o-mini-2024-07-18", String(repeating: "m", count: 300), "", "claude-3-5-haiku",
                      String(repeating: "n", count: 500), "x"]
        for model in models {
            view.setModel(model)
            XCTAssertEqual(text(view.pointer.pointee.model), model)
            XCTAssertNotNil(view.pointer.pointee.model.data)
            XCTAssertEqual(text(view.pointer.pointee.request_id), "req-1")
            XCTAssertEqual(text(view.pointer.pointee.api), "chat.completions")
            XCTAssertEqual(text(view.pointer.pointee.headers[1].name), "x-b")
            XCTAssertEqual(text(view.pointer.pointee.headers[1].value), "two")
        }
    }
}
