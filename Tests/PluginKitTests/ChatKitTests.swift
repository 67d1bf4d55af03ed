import PrismPluginABI
import PrismWire
import XCTest
import PluginKit

final class ChatKitTests: XCTestCase {
    func testParsesMessagesImagesToolsAndParameters() throws {
        let body = #"""
        {"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":64,"max_tokens":9,
         "stop":"END","temperature":0.5,"tool_choice":{"type":"function","function":{"name":"lookup"}},
         "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"},"strict":true}},
         "tools":[{"type":"function","function":{"name":"lookup","description":"d","parameters":{"type":"object"}}}],
         "messages":[{"role":"system","content":"be brief"},
                     {"role":"user","content":[{"type":"text","text":"what is this?"},
                       {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                       {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]},
                     {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":1}"}}]},
                     {"role":"tool","tool_call_id":"call_1","content":"42"}]}
        """#
        let request = try Array(body.utf8).withUnsafeBytes { try ChatRequest.parse($0) }
        XCTAssertTrue(request.stream && request.includeUsage)
        XCTAssertEqual(request.maxTokens, 64, "max_completion_tokens wins over max_tokens")
        XCTAssertEqual(request.stop, ["END"])
        XCTAssertEqual(request.toolChoice, .function("lookup"))
        XCTAssertEqual(request.tools.first?.name, "lookup")
        XCTAssertEqual(request.systemText, "be brief")
        guard case let .image(inline, _) = request.messages[1].content[1],
              case let .image(remote, detail) = request.messages[1].content[2] else { return XCTFail("images") }
        XCTAssertEqual(inline, .inline(mediaType: "image/png", base64: "iVBORw0KGgo="))
        XCTAssertEqual(remote, .remote("https://example.com/cat.jpg"))
        XCTAssertEqual(detail, "low")
        XCTAssertEqual(request.messages[2].toolCalls, [ToolCall(id: "call_1", name: "lookup", arguments: #"{"q":1}"#)])
        XCTAssertEqual(request.messages[3].toolCallID, "call_1")
        if case let .jsonSchema(name, _, strict)? = request.responseFormat {
            XCTAssertEqual(name, "r")
            XCTAssertTrue(strict)
        } else {
            XCTFail("response_format")
        }
    }

    func testRejectsMessagesWithoutRole() {
        XCTAssertThrowsError(try Array(#"{"model":"m","messages":[{"content":"x"}]}"#.utf8).withUnsafeBytes {
            try ChatRequest.parse($0)
        })
    }

    /// Collects what a plugin emits through a stream sink.
    final class Collected {
        var events: [JSONValue] = []
        var usage: prism_usage?
    }

    func withSink(_ body: (StreamSink) -> Void) -> Collected {
        let collected = Collected()
        var sink = prism_stream_sink(
            struct_size: UInt32(MemoryLayout<prism_stream_sink>.size),
            context: Unmanaged.passUnretained(collected).toOpaque(),
            emit_event: { context, data in
                let box = Unmanaged<Collected>.fromOpaque(context!).takeUnretainedValue()
                box.events.append(try! JSONValue.parse(Array(data.buffer)))
                return PRISM_OK
            },
            report_usage: { context, usage in
                Unmanaged<Collected>.fromOpaque(context!).takeUnretainedValue().usage = usage?.pointee
            },
            set_response_model: { _, _ in })
        withUnsafePointer(to: &sink) { body(StreamSink($0)) }
        return collected
    }

    func testStreamWriterProducesOpenAIToolCallDeltas() {
        var writer = ChatStreamWriter(id: "chatcmpl-1", model: "m", created: 7)
        let collected = withSink { sink in
            writer.text("Let me look.", client: sink)
            writer.startToolCall(key: "block-1", id: "toolu_1", name: "lookup", client: sink)
            writer.toolArguments(key: "block-1", fragment: #"{"q":"#, client: sink)
            writer.toolArguments(key: "block-1", fragment: "1}", client: sink)
            writer.startToolCall(key: "block-2", id: "toolu_2", name: "other", client: sink)
            writer.finish(reason: "tool_calls", client: sink)
            writer.finish(reason: "stop", client: sink)
            writer.usage(Usage(inputTokens: 3, outputTokens: 4), includeChunk: true, client: sink)
        }
        let deltas = collected.events.map { $0["choices"]?.arrayValue?.first?["delta"] }
        XCTAssertEqual(deltas[0]?["role"]?.stringValue, "assistant")
        XCTAssertEqual(deltas[1]?["content"]?.stringValue, "Let me look.")
        let first = deltas[2]?["tool_calls"]?.arrayValue?.first
        XCTAssertEqual(first?["index"]?.integerValue, 0)
        XCTAssertEqual(first?["id"]?.stringValue, "toolu_1")
        XCTAssertEqual(first?["function"]?["name"]?.stringValue, "lookup")
        XCTAssertEqual(first?["function"]?["arguments"]?.stringValue, "")
        XCTAssertNil(deltas[3]?["tool_calls"]?.arrayValue?.first?["id"], "fragments carry no id")
        XCTAssertEqual(deltas[3]?["tool_calls"]?.arrayValue?.first?["function"]?["arguments"]?.stringValue, #"{"q":"#)
        XCTAssertEqual(deltas[5]?["tool_calls"]?.arrayValue?.first?["index"]?.integerValue, 1)
        let finishes = collected.events.compactMap { $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue }
        XCTAssertEqual(finishes, ["tool_calls"], "finish_reason is sent once")
        XCTAssertEqual(collected.events.last?["choices"]?.arrayValue?.count, 0)
        XCTAssertEqual(collected.events.last?["usage"]?["total_tokens"]?.integerValue, 7)
        XCTAssertEqual(collected.usage?.output_tokens, 4)
    }

    func testCompletionAndBase64() throws {
        let completion = ChatCompletion(id: "c", model: "m", created: 1, text: nil,
                                        toolCalls: [ToolCall(id: "t", name: "f", arguments: "{}")],
                                        finishReason: "tool_calls", usage: Usage(inputTokens: 1, outputTokens: 2))
        let value = try JSONValue.parse(completion.jsonBytes)
        let message = value["choices"]?.arrayValue?.first?["message"]
        XCTAssertEqual(message?["content"], .null)
        XCTAssertEqual(message?["tool_calls"]?.arrayValue?.first?["function"]?["name"]?.stringValue, "f")
        XCTAssertEqual(Base64.encode(Array("Man".utf8)), "TWFu")
        XCTAssertEqual(Base64.encode(Array("Ma".utf8)), "TWE=")
        XCTAssertEqual(Base64.encode(Array("M".utf8)), "TQ==")
        XCTAssertEqual(EmbeddingResponse.base64Float32([1.0]), "AACAPw==")
    }
}
