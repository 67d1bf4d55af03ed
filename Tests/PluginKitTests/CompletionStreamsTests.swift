import PrismWire
import XCTest
import PluginKit

/// A cache stores whole answers: a streamed answer is folded into one, and a stored one is
/// replayed as a stream. Both directions must keep text, tool calls, finish reason and usage.
final class CompletionStreamsTests: XCTestCase {
    let chunks = [
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Let me "},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"check."},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#,
    ]

    func assemble(_ events: [String]) -> JSONValue? {
        var assembler = ChatStreamAssembler()
        for event in events { Array(event.utf8).withUnsafeBytes { assembler.add($0) } }
        return assembler.completion().flatMap { try? JSONValue.parse($0) }
    }

    func testFoldsAStreamIntoAWholeAnswer() throws {
        let whole = try XCTUnwrap(assemble(chunks))
        XCTAssertEqual(whole["object"]?.stringValue, "chat.completion")
        XCTAssertEqual(whole["id"]?.stringValue, "chatcmpl-1")
        let choice = try XCTUnwrap(whole["choices"]?.arrayValue?.first)
        XCTAssertEqual(choice["finish_reason"]?.stringValue, "tool_calls")
        XCTAssertEqual(choice["message"]?["content"]?.stringValue, "Let me check.")
        let call = try XCTUnwrap(choice["message"]?["tool_calls"]?.arrayValue?.first)
        XCTAssertEqual(call["id"]?.stringValue, "call_1")
        XCTAssertEqual(call["function"]?["name"]?.stringValue, "get_weather")
        XCTAssertEqual(call["function"]?["arguments"]?.stringValue, #"{"city":"Paris"}"#)
        XCTAssertEqual(whole["usage"]?["total_tokens"]?.integerValue, 18)
    }

    func testAnUnfinishedOrMultiChoiceStreamIsNotFolded() {
        XCTAssertNil(assemble(Array(chunks.prefix(5))), "no finish_reason: the stream broke off")
        let second = #"{"id":"x","choices":[{"index":1,"delta":{"content":"b"},"finish_reason":"stop"}]}"#
        XCTAssertNil(assemble(chunks + [second]))
    }

    func testReplayIsAWellFormedStreamThatFoldsBackToTheSameAnswer() throws {
        let whole = try XCTUnwrap(assemble(chunks))
        let body = try XCTUnwrap(ChatCompletionReplay.streamBody(whole, includeUsage: true))
        var events: [String] = []
        var parser = ServerSentEventParser()
        try body.withUnsafeBytes { raw in
            try parser.feed(raw) { event in events.append(String(decoding: event.data, as: UTF8.self)) }
        }
        XCTAssertEqual(events.last, "[DONE]")
        let replayed = Array(events.dropLast())
        let first = try JSONValue.parse(replayed[0])
        XCTAssertEqual(first["choices"]?.arrayValue?.first?["delta"]?["role"]?.stringValue, "assistant")
        let finishes = replayed.compactMap { try? JSONValue.parse($0) }.filter {
            $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue != nil
        }
        XCTAssertEqual(finishes.count, 1)
        XCTAssertEqual(assemble(replayed), whole, "replay then fold gives the stored answer back")
        let withoutUsage = try XCTUnwrap(ChatCompletionReplay.streamBody(whole, includeUsage: false))
        XCTAssertFalse(String(decoding: withoutUsage, as: UTF8.self).contains("\"choices\":[]"))
    }
}
