import AWSKit
import PrismWire
import XCTest
import PluginKit
import PrismProviderBedrock

/// The event-stream decoder and the ConverseStream translation, on a recorded stream.
final class EventStreamTests: XCTestCase {
    func decodeAll(_ chunks: [ArraySlice<UInt8>]) throws -> [AWSEventStream.Message] {
        var decoder = AWSEventStreamDecoder()
        var messages: [AWSEventStream.Message] = []
        for chunk in chunks {
            decoder.append(Array(chunk))
            while let message = try decoder.next() { messages.append(message) }
        }
        XCTAssertFalse(decoder.hasPartialFrame)
        return messages
    }

    func testDecodesRecordedStream() throws {
        let messages = try decodeAll([RecordedStream.bytes[...]])
        XCTAssertEqual(messages.count, RecordedStream.frames.count)
        for (message, (type, payload)) in zip(messages, RecordedStream.frames) {
            XCTAssertEqual(message.string(":event-type"), type)
            XCTAssertEqual(message.string(":message-type"), "event")
            XCTAssertEqual(message.string(":content-type"), "application/json")
            XCTAssertEqual(String(decoding: message.payload, as: UTF8.self), payload)
        }
    }

    /// Swift's encoder writes the same bytes as the independent Python encoder did.
    func testEncoderMatchesRecordedBytes() {
        var encoded: [UInt8] = []
        for (type, payload) in RecordedStream.frames {
            encoded += AWSEventStream.encode(headers: [(":event-type", type), (":content-type", "application/json"),
                                                       (":message-type", "event")], payload: Array(payload.utf8))
        }
        XCTAssertEqual(encoded, RecordedStream.bytes)
    }

    func testFramesSplitAtEveryByteOffset() throws {
        let bytes = RecordedStream.bytes
        let whole = try decodeAll([bytes[...]]).map(\.payload)
        for offset in 0...bytes.count {
            XCTAssertEqual(try decodeAll([bytes[..<offset], bytes[offset...]]).map(\.payload), whole, "split at \(offset)")
        }
        XCTAssertEqual(try decodeAll(bytes.indices.map { bytes[$0...$0] }).map(\.payload), whole, "one byte at a time")
    }

    func testCorruptionIsDetected() {
        let bytes = RecordedStream.bytes
        // Every byte of the first frame (174 bytes), flipped in turn, is caught by one of the CRCs.
        for index in 0..<174 {
            var corrupt = bytes
            corrupt[index] ^= 0x20
            var decoder = AWSEventStreamDecoder()
            decoder.append(corrupt)
            XCTAssertThrowsError(try decoder.next(), "byte \(index): a corrupt frame was accepted")
        }
        var decoder = AWSEventStreamDecoder()
        var payloadFlip = bytes
        payloadFlip[100] ^= 1
        decoder.append(payloadFlip)
        XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual(($0 as? AWSEventStream.DecodingError)?.reason, "message CRC mismatch") }
        decoder = AWSEventStreamDecoder()
        var preludeFlip = bytes
        preludeFlip[9] ^= 1
        decoder.append(preludeFlip)
        XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual(($0 as? AWSEventStream.DecodingError)?.reason, "prelude CRC mismatch") }
    }

    func testOversizedFrameIsRefused() {
        var frame: [UInt8] = []
        AWSEventStream.appendBigEndian(UInt32(64 * 1024 * 1024), to: &frame)
        AWSEventStream.appendBigEndian(UInt32(0), to: &frame)
        AWSEventStream.appendBigEndian(CRC32.checksum(frame), to: &frame)
        var decoder = AWSEventStreamDecoder()
        decoder.append(frame)
        XCTAssertThrowsError(try decoder.next())
    }

    func testHeaderValueTypes() throws {
        // bool true/false, int8, int16, int32, int64, bytes, timestamp, uuid, string.
        var headers: [UInt8] = []
        func name(_ text: String, _ type: UInt8) { headers.append(UInt8(text.utf8.count)); headers += text.utf8; headers.append(type) }
        name("t", 0); name("f", 1)
        name("i8", 2); headers += [0xFF]
        name("i16", 3); headers += [0x80, 0x00]
        name("i32", 4); headers += [0x00, 0x00, 0x01, 0x00]
        name("i64", 5); headers += [0, 0, 0, 0, 0, 0, 0, 7]
        name("b", 6); headers += [0, 2, 0xAB, 0xCD]
        name("ts", 8); headers += [0, 0, 1, 0x8F, 0, 0, 0, 0]
        name("id", 9); headers += [UInt8](repeating: 9, count: 16)
        name(":event-type", 7); headers += [0, 4]; headers += "ping".utf8
        var frame: [UInt8] = []
        AWSEventStream.appendBigEndian(UInt32(headers.count + 16 + 2), to: &frame)
        AWSEventStream.appendBigEndian(UInt32(headers.count), to: &frame)
        AWSEventStream.appendBigEndian(CRC32.checksum(frame), to: &frame)
        frame += headers + Array("{}".utf8)
        AWSEventStream.appendBigEndian(CRC32.checksum(frame), to: &frame)
        var decoder = AWSEventStreamDecoder()
        decoder.append(frame)
        let message = try XCTUnwrap(try decoder.next())
        XCTAssertEqual(message.headers.map(\.1), [.bool(true), .bool(false), .integer(-1), .integer(-32768), .integer(256),
                                                  .integer(7), .bytes([0xAB, 0xCD]), .timestamp(0x18F_0000_0000),
                                                  .uuid([UInt8](repeating: 9, count: 16)), .string("ping")])
        XCTAssertEqual(message.string(":event-type"), "ping")
        XCTAssertEqual(message.payload, Array("{}".utf8))
    }

    // MARK: ConverseStream → OpenAI chunks

    func translate(_ chunks: [ArraySlice<UInt8>], includeUsage: Bool = true) throws -> Host.Stream {
        let stream = Host.Stream()
        var translator = BedrockStream(id: "chatcmpl-req-1", model: "anthropic.claude-3-5-sonnet-20240620-v1:0",
                                       created: 1_787_313_600, includeUsage: includeUsage)
        try Host.withSink(stream) { sink in
            for chunk in chunks { try Array(chunk).withUnsafeBytes { try translator.feed($0, client: sink) } }
            try translator.finish(client: sink)
        }
        return stream
    }

    static let expectedChunks = [
        #"{"role":"assistant","content":""}"#,
        #"{"content":"Let me check"}"#,
        #"{"content":" the weather in París ☀️."}"#,
        #"{"tool_calls":[{"index":0,"id":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
        #"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]}"#,
        #"{"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]}"#,
        "{}",
    ]

    func testTranslatesRecordedStream() throws {
        let stream = try translate([RecordedStream.bytes[...]])
        XCTAssertEqual(stream.events.count, EventStreamTests.expectedChunks.count + 1)
        for (event, delta) in zip(stream.events, EventStreamTests.expectedChunks) {
            XCTAssertEqual(event["object"]?.stringValue, "chat.completion.chunk")
            XCTAssertEqual(event["id"]?.stringValue, "chatcmpl-req-1")
            XCTAssertEqual(event["model"]?.stringValue, "anthropic.claude-3-5-sonnet-20240620-v1:0")
            XCTAssertJSON(event["choices"]?.arrayValue?.first?["delta"] ?? .null, delta)
        }
        XCTAssertEqual(stream.events[6]["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, "tool_calls")
        XCTAssertJSON(stream.events[7]["choices"] ?? .null, "[]")
        XCTAssertJSON(stream.events[7]["usage"] ?? .null, """
            {"prompt_tokens":512,"completion_tokens":57,"total_tokens":569,"prompt_tokens_details":{"cached_tokens":100},
             "completion_tokens_details":{"reasoning_tokens":0}}
            """)
        XCTAssertEqual(stream.usage?.input_tokens, 512)
        XCTAssertEqual(stream.usage?.cached_input_tokens, 100)
        XCTAssertEqual(stream.usage?.output_tokens, 57)
    }

    /// The same client chunks whatever the chunking of the upstream bytes.
    func testTranslationSplitAtEveryByteOffset() throws {
        let bytes = RecordedStream.bytes
        let whole = try translate([bytes[...]]).events
        for offset in 0...bytes.count {
            XCTAssertEqual(try translate([bytes[..<offset], bytes[offset...]]).events, whole, "split at \(offset)")
        }
        XCTAssertEqual(try translate(bytes.indices.map { bytes[$0...$0] }).events, whole, "one byte at a time")
    }

    func testUsageChunkOnlyWhenAsked() throws {
        let stream = try translate([RecordedStream.bytes[...]], includeUsage: false)
        XCTAssertEqual(stream.events.count, EventStreamTests.expectedChunks.count)
        XCTAssertEqual(stream.usage?.output_tokens, 57, "usage is still reported to the host")
    }

    func frame(_ type: String, _ payload: String, messageType: String = "event") -> [UInt8] {
        let typeHeader = messageType == "exception" ? ":exception-type" : ":event-type"
        return AWSEventStream.encode(headers: [(typeHeader, type), (":content-type", "application/json"),
                                               (":message-type", messageType)], payload: Array(payload.utf8))
    }

    func testExceptionFramesBecomeErrors() {
        let cases: [(String, UInt32, String)] = [
            ("throttlingException", 429, "rate_limit_error"),
            ("validationException", 400, "invalid_request_error"),
            ("serviceUnavailableException", 503, "overloaded_error"),
            ("internalServerException", 502, "provider_error"),
            ("modelStreamErrorException", 502, "provider_error"),
        ]
        for (name, status, type) in cases {
            let bytes = frame("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#)
                + frame(name, #"{"message":"Too many tokens, please wait.","originalStatusCode":529}"#, messageType: "exception")
            XCTAssertThrowsError(try translate([bytes[...]]), name) { error in
                let error = error as! PluginError
                XCTAssertEqual(error.httpStatus, status, name)
                XCTAssertEqual(error.type, type, name)
                XCTAssertTrue(error.message.contains("Too many tokens, please wait. (\(name)"), error.message)
            }
        }
        let errorFrame = AWSEventStream.encode(headers: [(":message-type", "error"), (":error-code", "InternalFailure"),
                                                         (":error-message", "boom")], payload: [])
        XCTAssertThrowsError(try translate([errorFrame[...]])) { error in
            XCTAssertEqual((error as! PluginError).message, "upstream stream failed: boom (InternalFailure)")
        }
    }

    func testTruncatedStreamsFail() {
        let bytes = RecordedStream.bytes
        // Cut inside a frame, and cut cleanly between frames before messageStop.
        XCTAssertThrowsError(try translate([bytes[..<1000]])) {
            XCTAssertTrue(($0 as! PluginError).message.contains("inside an event-stream frame"))
        }
        let beforeStop = try! decodeAll([bytes[...]]).count // 11 frames; messageStop is the 10th
        XCTAssertEqual(beforeStop, 11)
        let firstNine = RecordedStream.frames.prefix(9).flatMap { frame($0.0, $0.1) }
        XCTAssertThrowsError(try translate([firstNine[...]])) {
            XCTAssertTrue(($0 as! PluginError).message.contains("ended before messageStop"))
        }
        // messageStop without metadata: finish sends the usage chunk anyway.
        let noMetadata = RecordedStream.frames.prefix(10).flatMap { frame($0.0, $0.1) }
        let stream = try! translate([noMetadata[...]])
        XCTAssertEqual(stream.events.last?["usage"]?["completion_tokens"]?.integerValue, 0)
    }

    func testStopReasonsInStreams() throws {
        let cases = [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                     ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
                     ("model_context_window_exceeded", "length")]
        for (reason, finish) in cases {
            let bytes = frame("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#)
                + frame("messageStop", #"{"stopReason":"\#(reason)"}"#)
            let stream = try translate([bytes[...]], includeUsage: false)
            XCTAssertEqual(stream.events.last?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, finish, reason)
        }
        let malformed = frame("messageStop", #"{"stopReason":"malformed_tool_use"}"#)
        XCTAssertThrowsError(try translate([malformed[...]]))
    }
}
