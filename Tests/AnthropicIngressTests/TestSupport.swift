import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

extension JSONValue {
    /// A JSON literal as a value (test convenience).
    init(_ text: String) { self = try! JSONValue.parse(text) }
}

/// Runs decode on a fresh (or the given) exchange.
@discardableResult
func decode(_ json: String, api: String = "anthropic.messages", headers: [String: String] = [:],
            exchange: AnthropicExchange = AnthropicExchange()) -> DecodeResult
{
    let bytes = Array(json.utf8)
    let result = bytes.withUnsafeBytes { body in
        exchange.decode(IngressRequest(api: api, path: api == "anthropic.messages" ? "/v1/messages" : "/v1/messages/count_tokens",
                                       body: body, headers: headers)) { _ in
            XCTFail("decode must decide at once")
        }
    }
    guard let result else {
        XCTFail("decode returned nil")
        return .failure(PluginError.internalError("nil"))
    }
    return result
}

/// The canonical request decode forwards (fails the test otherwise).
func canonical(_ json: String, headers: [String: String] = [:], exchange: AnthropicExchange = AnthropicExchange(),
               file: StaticString = #filePath, line: UInt = #line) -> (body: JSONValue, headers: [ClientAnswer.Header])
{
    switch decode(json, headers: headers, exchange: exchange) {
    case let .forward(request), let .forwardTranslated(request):
        return (JSONValue(String(decoding: request.body, as: UTF8.self)), request.headers)
    case let .nativeOnly(_, error):
        XCTFail("only native: \(error.message)", file: file, line: line)
    case let .answer(answer):
        XCTFail("answered: \(String(decoding: answer.body, as: UTF8.self))", file: file, line: line)
    case let .failure(error):
        XCTFail("failed: \(error.message)", file: file, line: line)
    }
    return (.null, [])
}

/// The error decode refuses the request with (fails the test otherwise).
func refusal(_ json: String, api: String = "anthropic.messages", file: StaticString = #filePath,
             line: UInt = #line) -> PluginError?
{
    switch decode(json, api: api) {
    case let .failure(error), let .nativeOnly(_, error):
        XCTAssertEqual(error.httpStatus, 400, file: file, line: line)
        XCTAssertEqual(error.type, "invalid_request_error", file: file, line: line)
        return error
    case .forward, .forwardTranslated, .answer:
        XCTFail("accepted: \(json)", file: file, line: line)
        return nil
    }
}

/// Splits SSE bytes into (event, data JSON) pairs, checking each frame's shape on the way.
func frames(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> [(event: String, data: JSONValue)] {
    let text = String(decoding: bytes, as: UTF8.self)
    XCTAssertTrue(text.isEmpty || text.hasSuffix("\n\n"), "frames end with a blank line", file: file, line: line)
    var result: [(String, JSONValue)] = []
    for frame in text.components(separatedBy: "\n\n") where !frame.isEmpty {
        let lines = frame.components(separatedBy: "\n")
        XCTAssertEqual(lines.count, 2, "one event and one data line: \(frame)", file: file, line: line)
        guard lines.count == 2, lines[0].hasPrefix("event: "), lines[1].hasPrefix("data: ") else {
            XCTFail("bad frame: \(frame)", file: file, line: line)
            continue
        }
        let event = String(lines[0].dropFirst(7))
        let data = JSONValue(String(lines[1].dropFirst(6)))
        XCTAssertEqual(data["type"]?.stringValue, event, "data.type equals the event name", file: file, line: line)
        result.append((event, data))
    }
    return result
}

extension AnthropicExchange {
    /// Feeds canonical chunks (JSON texts) and returns the client's bytes.
    func stream(_ chunks: [String], finishUsage: Usage? = nil) throws -> [UInt8] {
        var out: [UInt8] = []
        for chunk in chunks {
            try Array(chunk.utf8).withUnsafeBytes { buffer throws in try encodeEvent(buffer, into: &out) }
        }
        if let finishUsage { try finishStream(usage: finishUsage, into: &out) }
        return out
    }

    /// encodeResponse over a JSON text.
    func respond(_ json: String) throws -> ClientAnswer {
        try Array(json.utf8).withUnsafeBytes { buffer throws in try encodeResponse(status: 200, body: buffer) }
    }
}
