import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

final class ResponseTests: XCTestCase {
    private func exchange(stops: [String] = []) -> AnthropicExchange {
        let exchange = AnthropicExchange()
        let stopList = stops.map { "\"\($0)\"" }.joined(separator: ",")
        decode(#"{"model":"claude-sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"stop_sequences":["# + stopList + "]}",
               exchange: exchange)
        return exchange
    }

    private func message(_ json: String, stops: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        let answer = try exchange(stops: stops).respond(json)
        XCTAssertEqual(answer.status, 200, file: file, line: line)
        XCTAssertEqual(answer.headers, [ClientAnswer.Header("content-type", "application/json")], file: file, line: line)
        return JSONValue(String(decoding: answer.body, as: UTF8.self))
    }

    func testText() throws {
        let result = try message(#"""
        {"id":"chatcmpl-abc","object":"chat.completion","created":1,"model":"gpt-4o",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello there."},"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":30,"completion_tokens":5,"total_tokens":35,"prompt_tokens_details":{"cached_tokens":12}}}
        """#)
        XCTAssertEqual(result, JSONValue(#"""
        {"id":"msg_chatcmpl-abc","type":"message","role":"assistant","model":"gpt-4o",
         "content":[{"type":"text","text":"Hello there."}],
         "stop_reason":"end_turn","stop_sequence":null,
         "usage":{"input_tokens":18,"cache_creation_input_tokens":0,"cache_read_input_tokens":12,"output_tokens":5}}
        """#))
    }

    func testToolCallsAndLength() throws {
        let result = try message(#"""
        {"id":"msg_01X","model":"claude-sonnet-4-5",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":[1,2]}"}},
            {"id":"","type":"function","function":{"name":"noop","arguments":""}}]},
           "finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":100,"completion_tokens":20,"cache_creation_input_tokens":30,"prompt_tokens_details":{"cached_tokens":50}}}
        """#)
        XCTAssertEqual(result, JSONValue(#"""
        {"id":"msg_01X","type":"message","role":"assistant","model":"claude-sonnet-4-5",
         "content":[{"type":"text","text":"Checking."},
                    {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","days":[1,2]}},
                    {"type":"tool_use","id":"toolu_01X_1","name":"noop","input":{}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":20,"cache_creation_input_tokens":30,"cache_read_input_tokens":50,"output_tokens":20}}
        """#))

        let cut = try message(#"""
        {"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Long"},"finish_reason":"length"}]}
        """#)
        XCTAssertEqual(cut["stop_reason"], .string("max_tokens"))
        XCTAssertEqual(cut["usage"], JSONValue(#"{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#))
    }

    func testThinkingWithSignature() throws {
        let result = try message(#"""
        {"id":"msg_9","model":"claude-opus",
         "choices":[{"index":0,"message":{"role":"assistant","content":"42.","reasoning_content":"Think.Redacted",
            "thinking_blocks":[{"type":"thinking","thinking":"Think.","signature":"sig=="},{"type":"redacted_thinking","data":"ENC"}]},
           "finish_reason":"stop"}],
         "usage":{"prompt_tokens":10,"completion_tokens":7}}
        """#)
        XCTAssertEqual(result, JSONValue(#"""
        {"id":"msg_9","type":"message","role":"assistant","model":"claude-opus",
         "content":[{"type":"thinking","thinking":"Think.","signature":"sig=="},
                    {"type":"redacted_thinking","data":"ENC"},
                    {"type":"text","text":"42."}],
         "stop_reason":"end_turn","stop_sequence":null,
         "usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}}
        """#))

        // Reasoning text without blocks (DeepSeek-style providers): an unsigned thinking block.
        let bare = try message(#"""
        {"id":"r1","model":"deepseek-reasoner",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Yes.","reasoning_content":"Hmm."},"finish_reason":"stop"}]}
        """#)
        XCTAssertEqual(bare["content"], JSONValue(#"[{"type":"thinking","thinking":"Hmm."},{"type":"text","text":"Yes."}]"#))
    }

    func testStopSequenceAndFallbacks() throws {
        let result = try message(#"""
        {"id":"","model":"","choices":[{"index":0,"message":{"role":"assistant","content":"Done"},"finish_reason":"stop","stop_reason":"END"}]}
        """#, stops: ["END"])
        XCTAssertEqual(result["id"], .string("msg_req-test"))
        XCTAssertEqual(result["model"], .string("claude-sonnet"))
        XCTAssertEqual(result["stop_reason"], .string("stop_sequence"))
        XCTAssertEqual(result["stop_sequence"], .string("END"))

        let refused = try message(#"""
        {"id":"a","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"stop"}]}
        """#)
        XCTAssertEqual(refused["content"], JSONValue(#"[{"type":"text","text":"I can't."}]"#))
        XCTAssertEqual(refused["stop_reason"], .string("refusal"))
    }

    func testInvalidCanonicalAnswer() {
        XCTAssertThrowsError(try exchange().respond("<html>")) { error in
            XCTAssertEqual((error as? PluginError)?.httpStatus, 502)
        }
        XCTAssertThrowsError(try exchange().respond(#"{"choices":[]}"#)) { error in
            XCTAssertEqual((error as? PluginError)?.message, "the answer has no choices")
        }
    }

    // MARK: Errors

    func testErrorAnswers() {
        let cases: [(UInt32, String)] = [
            (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"),
            (403, "permission_error"), (404, "not_found_error"), (409, "invalid_request_error"),
            (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"),
            (503, "overloaded_error"), (504, "api_error"), (529, "overloaded_error"),
        ]
        for (status, type) in cases {
            let answer = AnthropicExchange().encodeError(
                IngressError(status: status, type: "whatever", code: "c", message: "Boom \"quoted\""), inStream: false)
            XCTAssertEqual(answer.status, status)
            XCTAssertEqual(answer.headers, [ClientAnswer.Header("content-type", "application/json")])
            XCTAssertEqual(String(decoding: answer.body, as: UTF8.self),
                           #"{"type":"error","error":{"type":""# + type + #"","message":"Boom \"quoted\""}}"#, "\(status)")
        }
    }

    func testErrorInStream() {
        let answer = AnthropicExchange().encodeError(
            IngressError(status: 503, type: "overloaded_error", code: "provider_overloaded", message: "Overloaded"), inStream: true)
        XCTAssertEqual(String(decoding: answer.body, as: UTF8.self),
                       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
    }

    func testKeepAlive() {
        var out: [UInt8] = []
        AnthropicExchange().keepAlive(into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "event: ping\ndata: {\"type\": \"ping\"}\n\n")
    }

    // MARK: Pass-through usage

    private func observe(_ event: String, _ json: String, _ usage: inout Usage) {
        Array(json.utf8).withUnsafeBytes { AnthropicExchange().observeNative(event: event, data: $0, usage: &usage) }
    }

    func testObserveNativeStream() {
        var usage = Usage()
        observe("message_start", #"""
        {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],
         "stop_reason":null,"stop_sequence":null,
         "usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":400,"output_tokens":1}}}
        """#, &usage)
        XCTAssertEqual(usage, Usage(inputTokens: 525, outputTokens: 1, cachedInputTokens: 400, cacheWriteTokens: 100))
        observe("ping", #"{"type": "ping"}"#, &usage)
        observe("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#, &usage)
        observe("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
                &usage)
        XCTAssertEqual(usage, Usage(inputTokens: 525, outputTokens: 42, cachedInputTokens: 400, cacheWriteTokens: 100))
        observe("message_stop", #"{"type":"message_stop"}"#, &usage)
        XCTAssertEqual(usage.outputTokens, 42)
    }

    func testObserveNativeMessage() {
        var usage = Usage()
        observe("", #"""
        {"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hi"}],
         "stop_reason":"end_turn","stop_sequence":null,
         "usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,"output_tokens":3}}
        """#, &usage)
        XCTAssertEqual(usage, Usage(inputTokens: 15, outputTokens: 3, cachedInputTokens: 5, cacheWriteTokens: 0))
        var untouched = Usage(inputTokens: 1)
        observe("", "not json", &untouched)
        observe("", #"{"type":"error","error":{"type":"api_error","message":"x"}}"#, &untouched)
        XCTAssertEqual(untouched, Usage(inputTokens: 1))
    }
}
