import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

final class StreamTests: XCTestCase {
    private func streamingExchange(stops: String = "") -> AnthropicExchange {
        let exchange = AnthropicExchange()
        decode(#"{"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]"# + stops + "}",
               exchange: exchange)
        return exchange
    }

    private static func chunk(_ delta: String, finish: String? = nil, id: String = "chatcmpl-1", extra: String = "") -> String {
        #"{"id":""# + id + #"","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":"#
            + delta + #","logprobs":null,"finish_reason":"# + (finish.map { "\"\($0)\"" } ?? "null") + extra + "}]}"
    }

    private func assertEvents(_ actual: [(event: String, data: JSONValue)], _ expected: [String],
                              file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertEqual(actual.count, expected.count, actual.map { $0.data.jsonText }.joined(separator: "\n"), file: file, line: line)
        for (index, (got, want)) in zip(actual, expected).enumerated() {
            let wanted = JSONValue(want)
            XCTAssertEqual(got.event, wanted["type"]?.stringValue, "event \(index)", file: file, line: line)
            XCTAssertEqual(got.data, wanted, "event \(index): \(got.data.jsonText)", file: file, line: line)
        }
    }

    func testTextThenToolCallWithUsageChunk() throws {
        let exchange = streamingExchange()
        let bytes = try exchange.stream([
            StreamTests.chunk(#"{"role":"assistant","content":""}"#),
            StreamTests.chunk(#"{"content":"Hel"}"#),
            StreamTests.chunk(#"{"content":"lo"}"#),
            StreamTests.chunk(#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}"#),
            StreamTests.chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#),
            StreamTests.chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#),
            StreamTests.chunk("{}", finish: "tool_calls"),
            #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":12,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":10}}}"#,
        ], finishUsage: Usage(inputTokens: 999, outputTokens: 999))

        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_chatcmpl-1\","), text)
        XCTAssertTrue(text.contains("\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_start\n"), text)
        XCTAssertTrue(text.hasSuffix("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), text)

        assertEvents(frames(bytes), [
            #"{"type":"message_start","message":{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}"#,
            #"{"type": "ping"}"#,
            #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#,
            #"{"type":"content_block_stop","index":0}"#,
            #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_1","name":"get_weather","input":{}}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
            #"{"type":"content_block_stop","index":1}"#,
            #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":12}}"#,
            #"{"type":"message_stop"}"#,
        ])
    }

    /// The events come out as the chunks go in: nothing is held back but the closing pair.
    func testEventsAreIncremental() throws {
        let exchange = streamingExchange()
        XCTAssertEqual(frames(try exchange.stream([StreamTests.chunk(#"{"role":"assistant","content":""}"#)])).map(\.event),
                       ["message_start", "ping"])
        XCTAssertEqual(frames(try exchange.stream([StreamTests.chunk(#"{"content":"A"}"#)])).map(\.event),
                       ["content_block_start", "content_block_delta"])
        XCTAssertEqual(frames(try exchange.stream([StreamTests.chunk("{}", finish: "stop")])).map(\.event),
                       ["content_block_stop"])
        XCTAssertEqual(frames(try exchange.stream([], finishUsage: Usage(inputTokens: 7, outputTokens: 2))).map(\.data), [
            JSONValue(#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}"#),
            JSONValue(#"{"type":"message_stop"}"#),
        ])
        // Nothing after the end.
        XCTAssertEqual(try exchange.stream([StreamTests.chunk(#"{"content":"late"}"#)], finishUsage: Usage()), [])
    }

    func testThinkingThenTextWithHostUsage() throws {
        let exchange = streamingExchange()
        let bytes = try exchange.stream([
            StreamTests.chunk(#"{"role":"assistant","content":""}"#, id: "msg_01A"),
            StreamTests.chunk(#"{"reasoning_content":"Let me"}"#, id: "msg_01A"),
            StreamTests.chunk(#"{"reasoning_content":" think."}"#, id: "msg_01A"),
            StreamTests.chunk(#"{"thinking_blocks":[{"type":"thinking","thinking":"Let me think.","signature":"EqSig"}]}"#, id: "msg_01A"),
            StreamTests.chunk(#"{"thinking_blocks":[{"type":"redacted_thinking","data":"ENC"}]}"#, id: "msg_01A"),
            StreamTests.chunk(#"{"content":"Answer"}"#, id: "msg_01A"),
            StreamTests.chunk("{}", finish: "length", id: "msg_01A"),
        ], finishUsage: Usage(inputTokens: 50, outputTokens: 9, cachedInputTokens: 20, cacheWriteTokens: 5))
        assertEvents(frames(bytes), [
            #"{"type":"message_start","message":{"id":"msg_01A","type":"message","role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}"#,
            #"{"type": "ping"}"#,
            #"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" think."}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqSig"}}"#,
            #"{"type":"content_block_stop","index":0}"#,
            #"{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"ENC"}}"#,
            #"{"type":"content_block_stop","index":1}"#,
            #"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}"#,
            #"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Answer"}}"#,
            #"{"type":"content_block_stop","index":2}"#,
            #"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":20,"output_tokens":9}}"#,
            #"{"type":"message_stop"}"#,
        ])
    }

    /// A whole signed block with no streamed reasoning before it (a provider that sends blocks only).
    func testWholeThinkingBlockAndParallelToolCalls() throws {
        let exchange = streamingExchange()
        let bytes = try exchange.stream([
            StreamTests.chunk(#"{"thinking_blocks":[{"type":"thinking","thinking":"Plan.","signature":"S"}]}"#),
            StreamTests.chunk(#"{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":"{\"x\":1}"}}]}"#),
            StreamTests.chunk("{}", finish: "stop"),
        ], finishUsage: Usage())
        assertEvents(Array(frames(bytes).dropFirst(2)), [
            #"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Plan."}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"S"}}"#,
            #"{"type":"content_block_stop","index":0}"#,
            #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"a","name":"f","input":{}}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            #"{"type":"content_block_stop","index":1}"#,
            #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"b","name":"g","input":{}}}"#,
            #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"x\":1}"}}"#,
            #"{"type":"content_block_stop","index":2}"#,
            // "stop" with tool calls is a tool_use stop for Anthropic clients.
            #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#,
            #"{"type":"message_stop"}"#,
        ])
    }

    func testStopSequence() throws {
        let exchange = streamingExchange(stops: #","stop_sequences":["\n\nHuman:"]"#)
        let events = frames(try exchange.stream([
            StreamTests.chunk(#"{"content":"Hi"}"#),
            StreamTests.chunk("{}", finish: "stop", extra: #","matched_stop":"\n\nHuman:""#),
        ], finishUsage: Usage()))
        XCTAssertEqual(events.last?.event, "message_stop")
        XCTAssertEqual(events.dropLast().last?.data["delta"],
                       JSONValue(#"{"stop_reason":"stop_sequence","stop_sequence":"\n\nHuman:"}"#))
    }

    func testEmptyStream() throws {
        let exchange = streamingExchange()
        assertEvents(frames(try exchange.stream([], finishUsage: Usage())), [
            #"{"type":"message_start","message":{"id":"msg_req-test","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}"#,
            #"{"type": "ping"}"#,
            #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#,
            #"{"type":"message_stop"}"#,
        ])
    }

    func testUsageKnownAtStart() throws {
        let exchange = streamingExchange()
        let events = frames(try exchange.stream([
            #"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"usage":{"prompt_tokens":8,"completion_tokens":1}}"#,
        ]))
        XCTAssertEqual(events.first?.data["message"]?["usage"],
                       JSONValue(#"{"input_tokens":8,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#))
    }

    func testInvalidChunk() {
        XCTAssertThrowsError(try streamingExchange().stream(["{oops"])) { error in
            XCTAssertEqual((error as? PluginError)?.httpStatus, 502)
        }
    }
}
